"""`vla-stack up`: real node processes from a profile, clean start and stop, dead nodes reported."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sensor_msgs.msg import JointState

from vla_stack.bringup import ProcessGroup, load_profile

pytestmark = pytest.mark.ros


def test_up_sim_starts_and_stops_cleanly(ros_env, ros_node):
    """`vla-stack up sim_robot` brings the sim up (joint_states flow over DDS) and Ctrl-C ends every process."""
    exe = Path(sys.executable).parent / "vla-stack"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "vla_stack.cli"]
    proc = subprocess.Popen(cmd + ["up", "sim_robot"], env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        states = ros_node.subscribe("joint_states", JointState)
        assert ros_node.wait_until(lambda: len(states) >= 5, timeout=90), "no joint_states from `vla-stack up sim_robot`"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "SIGINT received" in out and "stopped: sim_node=" in out
    # nothing left publishing
    n = len(states)
    time.sleep(1.0)
    assert len(states) - n <= 2


def test_process_group_reports_a_dead_node(ros_env):
    """A node killed from outside is reported once with its exit code; the others keep running."""
    lines = []
    group = ProcessGroup(load_profile("sim_robot"), sink=lines.append, env={k: ros_env[k] for k in ("ROS_DOMAIN_ID",)})
    group.start()
    try:
        sim = group.process("sim_node")
        deadline = time.monotonic() + 60
        while not any("[sim_node]" in ln for ln in lines) and time.monotonic() < deadline:
            time.sleep(0.1)
        sim.signal(signal.SIGKILL)
        deadline = time.monotonic() + 20
        died = []
        while not died and time.monotonic() < deadline:
            died = group.check()
            time.sleep(0.1)
        assert died == [("sim_node", -signal.SIGKILL)]
        assert group.check() == []  # reported once
        assert any("node sim_node exited with code" in ln for ln in lines)
    finally:
        group.stop()
