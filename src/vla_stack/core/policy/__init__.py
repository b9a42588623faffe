"""policy (ROS-free)."""
