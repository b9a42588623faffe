"""Bring-up profiles: one source of truth for `vla-stack up` and `ros2 launch`."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from vla_stack.bringup import NodeSpec, load_profile, node_command, profile_names
from vla_stack.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _setup_nodes(monkeypatch):
    """Expose setup.py's NODES list as a module, without running setup()."""
    src = (ROOT / "setup.py").read_text()
    nodes_src = src[src.index("NODES = ["): src.index("]", src.index("NODES = [")) + 1]
    mod = types.ModuleType("setup_nodes")
    exec(nodes_src, mod.__dict__)
    monkeypatch.setitem(sys.modules, "setup_nodes", mod)


def test_profiles_reference_console_scripts_and_existing_files():
    import setup_nodes

    assert "sim" in profile_names()
    for name in profile_names():
        prof = load_profile(name)
        for node in prof.nodes:
            assert node.executable in setup_nodes.NODES, f"{name}: {node.executable} is not a console script"
            assert all(p.is_file() for p in node.parameters)
            assert (ROOT / "src" / "vla_stack" / "ros" / f"{node.executable}.py").is_file()


def test_node_command_is_what_ros2_run_would_run(tmp_path):
    spec = NodeSpec("sim_node", "my_sim", (tmp_path / "p.yaml",), {"seed": 3, "flag": True}, {"joint_states": "/r/js"})
    argv = node_command(spec, namespace="robot1", use_sim_time=True)
    assert Path(argv[0]).name in ("sim_node", "python", "python3") or argv[0].endswith("python")
    ros_args = argv[argv.index("--ros-args"):]
    assert ros_args == [
        "--ros-args", "-r", "__node:=my_sim", "-r", "__ns:=/robot1", "--params-file", str(tmp_path / "p.yaml"),
        "-p", "seed:=3", "-p", "flag:=true", "-p", "use_sim_time:=true", "-r", "joint_states:=/r/js",
    ]


def test_bad_profiles_are_rejected_with_reasons(tmp_path):
    with pytest.raises(FileNotFoundError, match="known:"):
        load_profile("no_such_profile")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: []\n")
    with pytest.raises(ValueError, match="non-empty list"):
        load_profile(bad)
    bad.write_text("nodes:\n  - executable: sim_node\n    colour: red\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_profile(bad)
    bad.write_text("nodes:\n  - executable: sim_node\n    parameters: [nope.yaml]\n")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_profile(bad)


def _fake_launch_modules(monkeypatch):
    """Minimal stand-ins for the `launch`/`launch_ros` packages (not on PyPI) that record what the
    launch file builds. This checks the launch file's wiring, not ROS launch itself."""
    created = []

    class Rec:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs
            created.append(self)

    def mod(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, m)
        return m

    class LaunchConfiguration(Rec):
        pass

    class Node(Rec):
        pass

    mod("launch", LaunchDescription=lambda actions: list(actions))
    mod("launch.actions", DeclareLaunchArgument=Rec, SetEnvironmentVariable=Rec)
    mod("launch.substitutions", LaunchConfiguration=LaunchConfiguration)
    mod("launch_ros")
    mod("launch_ros.actions", Node=Node)
    return Node


@pytest.mark.parametrize("launch_file", sorted((ROOT / "launch").glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_files_start_exactly_the_profile_nodes(monkeypatch, launch_file):
    node_cls = _fake_launch_modules(monkeypatch)
    spec = importlib.util.spec_from_file_location("launch_under_test", launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    actions = module.generate_launch_description()
    nodes = [a for a in actions if isinstance(a, node_cls)]
    profile = load_profile(launch_file.name.removesuffix(".launch.py"))
    assert [n.kwargs["name"] for n in nodes] == [s.name for s in profile.nodes]
    for node, s in zip(nodes, profile.nodes, strict=True):
        assert node.kwargs["executable"] == s.executable and node.kwargs["package"] == "vla_stack"
        files = [p for p in node.kwargs["parameters"] if isinstance(p, str)]
        assert files == [str(p) for p in s.parameters]
        assert dict(node.kwargs["remappings"]) == dict(s.remappings)


def test_cli_help_lists_commands(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "up" in out and "demo" in out


def test_rt_priority_goes_to_the_node_as_environment_on_both_paths(tmp_path):
    """rt_priority reaches the node as VLA_STACK_RT_PRIORITY (launch and `vla-stack up`), never as a `chrt` prefix."""
    from vla_stack.bringup import ProcessGroup
    from vla_stack.launch_helpers import node_kwargs
    from vla_stack.realtime import RT_PRIORITY_ENV

    prof = tmp_path / "p.yaml"
    prof.write_text("nodes:\n  - executable: safety_controller_node\n    name: safety_controller\n    rt_priority: 40\n"
                    "  - executable: sim_node\n")
    profile = load_profile(prof)
    safety, sim = profile.nodes
    assert safety.rt_priority == 40 and sim.rt_priority == 0
    # ros2 launch: no prefix (a `chrt` prefix dies without CAP_SYS_NICE and names the process chrt-N)
    kwargs = node_kwargs(safety)
    assert "prefix" not in kwargs and kwargs["name"] == "safety_controller"
    assert kwargs["executable"] == "safety_controller_node"
    assert kwargs["additional_env"] == {RT_PRIORITY_ENV: "40"}
    assert "prefix" not in node_kwargs(sim) and "additional_env" not in node_kwargs(sim)
    # vla-stack up: the same variable, the node's own executable first in argv
    group = ProcessGroup(profile, sink=lambda line: None)
    up_safety, up_sim = group.processes
    assert up_safety.env[RT_PRIORITY_ENV] == "40" and RT_PRIORITY_ENV not in up_sim.env
    assert Path(up_safety.argv[0]).name != "chrt" and "chrt" not in up_safety.argv
    assert up_safety.argv == node_command(safety)


def test_sim_profile_asks_for_realtime_priority_of_safety_and_expert():
    """`vla-stack up sim` keeps SCHED_FIFO 50 for the safety loop and 40 for the expert (now via the environment)."""
    from vla_stack.realtime import RT_PRIORITY_ENV

    envs = {s.name: s.process_environment() for s in load_profile("sim").nodes}
    assert envs["safety_controller"] == {RT_PRIORITY_ENV: "50"} and envs["action_expert"] == {RT_PRIORITY_ENV: "40"}
    assert envs["sim_node"] == {} and envs["grounding_node"] == {}


def test_realtime_priority_degrades_to_a_warning(monkeypatch):
    """No CAP_SYS_NICE: apply_realtime_priority warns (naming the node and the fix) and returns False."""
    import os

    from vla_stack import realtime

    def refuse(*_args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setenv(realtime.RT_PRIORITY_ENV, "50")
    lines: list[str] = []
    assert realtime.apply_realtime_priority(argv=["x", "--ros-args", "-r", "__node:=safety_controller"],
                                            warn=lines.append) is False
    assert len(lines) == 1 and "CAP_SYS_NICE" in lines[0] and "normal scheduling" in lines[0]
    monkeypatch.setenv(realtime.RT_PRIORITY_ENV, "fast")
    assert realtime.apply_realtime_priority(warn=lines.append) is False and "integer" in lines[1]
    monkeypatch.delenv(realtime.RT_PRIORITY_ENV)
    assert realtime.apply_realtime_priority(warn=lines.append) is False and len(lines) == 2


def test_shipped_parameter_files_apply_under_any_namespace():
    """Every node parameter file is keyed `/**/<node>:` (a bare `<node>:` misses `/robot1/<node>`), and
    `vla-stack up --namespace robot1` starts each profile node under /robot1 with such files."""
    import yaml

    from vla_stack.bringup import node_parameters
    from vla_stack.paths import config_path

    files = [p for p in sorted(config_path().rglob("*.yaml")) if "ros__parameters" in p.read_text()]
    assert len(files) >= 7
    for path in files:
        for key in yaml.safe_load(path.read_text()):
            assert str(key).startswith("/**/"), f"{path.name}: key '{key}' only matches the root namespace; use '/**/{key}'"
    for name in profile_names():
        for spec in load_profile(name).nodes:
            argv = node_command(spec, namespace="robot1")
            assert argv[argv.index("__ns:=/robot1") - 1] == "-r"
            for path in spec.parameters:
                keys = {str(k) for k in yaml.safe_load(path.read_text())}
                assert f"/**/{spec.name}" in keys, f"profile {name}: {path.name} has no section for node {spec.name}"
                assert node_parameters(path, spec.name)


def test_every_bring_up_gets_its_own_run_id_shared_by_its_nodes(monkeypatch):
    """The planner resumes only a task of the same run (VLA_STACK_RUN_ID): each `vla-stack up` /
    demo bring-up (ProcessGroup) and each `ros2 launch` gets a fresh id, even when the calling shell
    still has one exported; every node and every respawn of a bring-up share it."""
    from vla_stack.bringup import RUN_ID_ENV, ProcessGroup

    monkeypatch.setenv(RUN_ID_ENV, "stale-from-the-shell")
    profile = load_profile("sim")
    first, second = ProcessGroup(profile), ProcessGroup(profile)
    ids = {first.env[RUN_ID_ENV], second.env[RUN_ID_ENV]}
    assert len(ids) == 2 and "stale-from-the-shell" not in ids and "" not in ids
    assert {p.env[RUN_ID_ENV] for p in first.processes} == {first.env[RUN_ID_ENV]}  # respawns reuse p.env
    assert ProcessGroup(profile, env={RUN_ID_ENV: "given"}).env[RUN_ID_ENV] == "given"

    # ros2 launch: one SetEnvironmentVariable(VLA_STACK_RUN_ID, <fresh id>) per launch description
    _fake_launch_modules(monkeypatch)
    from vla_stack.launch_helpers import profile_launch_description

    def launch_run_id() -> str:
        return next(a.args[1] for a in profile_launch_description("sim") if getattr(a, "args", ())[:1] == (RUN_ID_ENV,))

    assert launch_run_id() != launch_run_id()
