"""Nodes of config/profiles/arm_sim_camera.yaml (same as `vla-stack up arm_sim_camera`); see the profile for what to start first.

    ros2 launch vla_stack arm_sim_camera.launch.py [namespace:=robot1] [use_sim_time:=true]
"""

from vla_stack.launch_helpers import profile_launch_description


def generate_launch_description():
    return profile_launch_description("arm_sim_camera")
