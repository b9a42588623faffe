"""sensors (ROS-free)."""
