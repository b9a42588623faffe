"""kinematics (ROS-free)."""
