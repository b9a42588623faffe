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


def test_rt_priority_prefix_is_chrt_or_a_warning(tmp_path):
    from vla_stack.bringup import realtime_prefix

    assert realtime_prefix(0) == []
    lines = []
    prefix = realtime_prefix(50, lines.append, "safety_controller")
    # root here: chrt works; elsewhere a clear warning and normal scheduling
    assert (prefix[-2:] == ["-f", "50"] and not lines) or (prefix == [] and "normal scheduling" in lines[0])
    prof = tmp_path / "p.yaml"
    prof.write_text("nodes:\n  - executable: safety_controller_node\n    rt_priority: 40\n")
    assert load_profile(prof).nodes[0].rt_priority == 40


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
