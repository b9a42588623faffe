"""Build a ROS 2 LaunchDescription from a bring-up profile (config/profiles/*.yaml).

`launch/<profile>.launch.py` files call `profile_launch_description(name)`, so `ros2 launch`
starts the same nodes, parameter files and remaps as `vla-stack up <profile>`: both read the
profile through `vla_stack.bringup.load_profile`. Needs `launch` and `launch_ros` (a ROS 2
install); nothing else in the package imports this module.
"""

from __future__ import annotations

from vla_stack.bringup import PACKAGE, RUN_ID_ENV, NodeSpec, load_profile, new_run_id


def node_kwargs(spec: NodeSpec) -> dict:
    """Keyword arguments of `launch_ros.actions.Node` for one profile node (minus launch substitutions).

    Real-time priority goes in as `additional_env` (`VLA_STACK_RT_PRIORITY`), exactly as `vla-stack up`
    passes it: the node applies it to itself and warns instead of dying without CAP_SYS_NICE, and
    no `chrt` prefix renames the process in the launch output.
    """
    parameters: list = [str(p) for p in spec.parameters]
    if spec.overrides:
        parameters.append(dict(spec.overrides))
    return {
        "package": PACKAGE,
        "executable": spec.executable,
        "name": spec.name,
        "parameters": parameters,
        "remappings": list(spec.remappings.items()),
        "arguments": list(spec.arguments),
        "respawn": spec.respawn,
        "respawn_delay": spec.respawn_delay,
        "output": "screen",
        **({"additional_env": spec.process_environment()} if spec.process_environment() else {}),
    }


def profile_launch_description(profile_name: str):
    """LaunchDescription with arguments `namespace` and `use_sim_time` and one Node per profile node."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    profile = load_profile(profile_name)
    actions = [
        DeclareLaunchArgument("namespace", default_value="", description="ROS namespace for every node"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (simulation time)"),
    ]
    actions += [SetEnvironmentVariable(k, v) for k, v in profile.environment.items()]
    # one run id per `ros2 launch` (respawned nodes keep it): the planner resumes only this run's task
    actions.append(SetEnvironmentVariable(RUN_ID_ENV, new_run_id()))
    for spec in profile.nodes:
        kwargs = node_kwargs(spec)
        if "use_sim_time" not in spec.overrides:  # a profile that fixes it (sim nodes) wins
            kwargs["parameters"] = kwargs["parameters"] + [{"use_sim_time": LaunchConfiguration("use_sim_time")}]
        actions.append(Node(namespace=LaunchConfiguration("namespace"), **kwargs))
    return LaunchDescription(actions)
