"""Simulated Panda with mugs: the nodes of config/profiles/sim_robot.yaml (same as `vla-stack up sim_robot`).

    ros2 launch vla_stack sim_robot.launch.py [namespace:=robot1] [use_sim_time:=true]
"""

from vla_stack.launch_helpers import profile_launch_description


def generate_launch_description():
    return profile_launch_description("sim_robot")
