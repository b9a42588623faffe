"""Simulated Panda behind the safety controller: config/profiles/sim_safety.yaml (same as `vla-stack up sim_safety`).

    ros2 launch vla_stack sim_safety.launch.py [namespace:=robot1]
"""

from vla_stack.launch_helpers import profile_launch_description


def generate_launch_description():
    return profile_launch_description("sim_safety")
