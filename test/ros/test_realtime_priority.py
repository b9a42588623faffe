"""Real-time priority: the node process applies it to itself, and degrades to a warning without CAP_SYS_NICE.

Issue 12: `ros2 launch` prefixed `chrt -f N`, so without CAP_SYS_NICE the safety controller died at
start ("Operation not permitted") and the launch output named it `chrt-2`. Now `vla-stack up` and
launch pass `VLA_STACK_RT_PRIORITY` and the node calls `sched_setscheduler` on itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from vla_stack.bringup import ProcessGroup, load_profile
from vla_stack.paths import config_path

pytestmark = pytest.mark.ros

NO_SYS_NICE = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice"]
"""argv prefix that runs a command without CAP_SYS_NICE (util-linux), as on a default lab PC."""


def _fifo_allowed() -> bool:
    chrt = shutil.which("chrt")
    return chrt is not None and subprocess.run([chrt, "-f", "1", "true"], capture_output=True).returncode == 0


def _policies(pid: int) -> dict[int, tuple[int, int]]:
    """(policy, priority) of every thread of process `pid`."""
    out = {}
    for tid in (int(t) for t in os.listdir(f"/proc/{pid}/task")):
        try:
            out[tid] = (os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority)
        except ProcessLookupError:
            pass
    return out


def _wait_for_node(ros_node, name: str, timeout: float = 60.0) -> bool:
    """True once a node called `name` is in the ROS graph (the process kept its node name)."""
    return ros_node.wait_until(lambda: name in ros_node.node.get_node_names(), timeout=timeout, period=0.2)


@pytest.mark.skipif(not _fifo_allowed(), reason="needs root or CAP_SYS_NICE to grant SCHED_FIFO")
def test_up_sim_runs_safety_and_expert_with_their_fifo_priorities(ros_env, ros_node):
    """`vla-stack up sim`: the safety controller runs at SCHED_FIFO 50 and the expert at 40, every thread."""
    lines: list[str] = []
    group = ProcessGroup(load_profile("sim"), sink=lines.append, only=["safety_controller", "action_expert"],
                         env={"ROS_DOMAIN_ID": ros_env["ROS_DOMAIN_ID"]})
    group.start()
    try:
        for name, priority in (("safety_controller", 50), ("action_expert", 40)):
            assert _wait_for_node(ros_node, name), "\n".join(lines[-40:])
            proc = group.process(name)
            assert os.path.basename(proc.argv[0]) != "chrt"
            assert any(f"[{name}] [INFO] [{name}]: running with real-time priority SCHED_FIFO {priority}" in ln
                       for ln in lines), "\n".join(lines[-40:])
            policies = _policies(proc.pid)
            assert len(policies) > 1  # DDS and executor threads exist by now
            assert set(policies.values()) == {(os.SCHED_FIFO, priority)}, (name, policies)
        assert not group.check()  # both still running
    finally:
        codes = group.stop()
    assert set(codes) == {"safety_controller", "action_expert"}


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop CAP_SYS_NICE")
def test_without_cap_sys_nice_the_node_warns_and_runs(start_node, ros_node):
    """No CAP_SYS_NICE: the safety controller asked for FIFO 50 starts, says why it runs without it, and works."""
    # the old mechanism fails here: this is the machine the issue describes
    old = subprocess.run(NO_SYS_NICE + ["chrt", "-f", "50", "true"], capture_output=True, text=True)
    assert old.returncode != 0 and "Operation not permitted" in old.stderr
    node = start_node("safety_controller_node", name="safety_controller", param_files=[config_path("safety_controller.yaml")],
                      rt_priority=50, prefix=NO_SYS_NICE)
    assert node.wait_for_output("cannot use real-time priority 50", timeout=60), node.text()
    warning = next(ln for ln in node.output if "cannot use real-time priority 50" in ln)
    assert "[WARN] [safety_controller]" in warning and "CAP_SYS_NICE" in warning and "normal scheduling" in warning
    assert _wait_for_node(ros_node, "safety_controller"), node.text()
    assert node.wait_for_output("waiting for joint_states", timeout=60), node.text()
    assert {policy for policy, _ in _policies(node.pid).values()} == {os.SCHED_OTHER}
    assert node.alive(), node.text()  # with a `chrt` prefix it died at start


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop CAP_SYS_NICE")
def test_namespaced_without_cap_sys_nice_keeps_its_parameters_and_stops_with_0(start_node, ros_node):
    """The lab PC of issue 12 all at once: no CAP_SYS_NICE, namespace robot1, shipped parameter file. The
    safety controller warns and runs at normal priority, has its shipped obstacle box (the table) under
    /robot1, and Ctrl-C ends it with exit code 0, twice in a row."""
    for _ in range(2):
        node = start_node("safety_controller_node", name="safety_controller", namespace="robot1",
                          param_files=[config_path("safety_controller.yaml")], rt_priority=50, prefix=NO_SYS_NICE)
        assert node.wait_for_output("cannot use real-time priority 50", timeout=60), node.text()
        values = ros_node.get_parameters("/robot1/safety_controller/get_parameters", ["obstacle_boxes", "workspace_min"])
        assert len(values["obstacle_boxes"]) == 6 and values["obstacle_boxes"][5] == 0.0, values
        assert list(values["workspace_min"]) == [-0.6, -0.8, 0.0], values
        assert node.wait_for_output("waiting for joint_states", timeout=60), node.text()
        assert node.stop(timeout=10.0) == 0, node.text()
        assert "Traceback" not in node.text(), node.text()
