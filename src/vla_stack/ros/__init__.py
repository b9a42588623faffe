"""ROS 2 side of vla_stack: the only package that imports rclpy and messages."""
