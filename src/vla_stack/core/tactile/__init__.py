"""tactile (ROS-free)."""
