"""Camera + vision-tactile ingestion: the nodes of config/profiles/sensors.yaml (same as `vla-stack up sensors`).

    ros2 launch vla_stack sensors.launch.py [namespace:=robot1]
"""

from vla_stack.launch_helpers import profile_launch_description


def generate_launch_description():
    return profile_launch_description("sensors")
