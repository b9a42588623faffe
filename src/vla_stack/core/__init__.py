"""ROS-free core of vla_stack. Nothing under this package imports rclpy or a message package
(test/unit/test_core_is_ros_free.py enforces it)."""
