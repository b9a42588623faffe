"""The whole stack on the simulated Panda: the nodes of config/profiles/sim.yaml (same as `vla-stack up sim`).

    ros2 launch vla_stack sim.launch.py [namespace:=robot1] [use_sim_time:=true]
"""

from vla_stack.launch_helpers import profile_launch_description


def generate_launch_description():
    return profile_launch_description("sim")
