"""Nodes of config/profiles/arm.yaml (same as `vla-stack up arm`); see the profile for what to start first.

    ros2 launch vla_stack arm.launch.py [namespace:=robot1] [use_sim_time:=true]
"""

from vla_stack.launch_helpers import profile_launch_description


def generate_launch_description():
    return profile_launch_description("arm")
