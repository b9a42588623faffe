"""Every node process stops cleanly on SIGINT / SIGTERM: exit code 0 and no traceback, every time.

ros2 launch and systemd treat any other exit as a crash. The nodes are started as the profiles
start them (executable, shipped parameter file, sim time where the profile sets it) and signalled
at different moments, all nodes of a round at once so the rounds overlap their start-up:

1. right after start, SIGINT and (another round) SIGTERM, as systemd and `vla-stack up` send it:
   as soon as the process has its signal handlers (SIGTERM caught, read from /proc/<pid>/status),
   i.e. while the node is still being built (models loading). On the old code rclpy's handler shut
   the context down under the constructor: every node died with `RCLError: error creating node`.
2. up and busy, SIGINT twice (the second one arrives while the node is stopping): the sim stepping
   and publishing, the safety controller running its 250 Hz loop on the sim's clock, the planner
   signalled as soon as its status shows the plan, i.e. while its worker computes the plan's latent
   and is about to publish it (deterministic: the embedding takes tens to hundreds of ms). On the old
   code the context was shut down under the worker (`RCLError: Failed to publish: publisher's
   context is invalid`), the second SIGINT aborted the planner (`terminate called without an active
   exception`, exit -6) and killed other nodes mid-shutdown (exit -2).

"Up" means the node answers its parameter service, i.e. it is built and its executor spins.
"""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import ListParameters
from std_msgs.msg import String

from vla_stack.bringup import executable_path
from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import diagnostics_to_dict

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

SIM = {"camera_rate": 2.0, "wrist_camera_rate": 0.0, "segmentation_rate": 0.0, "camera_width": 160,
       "camera_height": 120, "seed": 1}
SIM_TIME = {"use_sim_time": True}


def node_table(tmp: Path) -> dict[str, tuple[str, str, dict]]:
    """name -> (executable, shipped parameter file or "", overrides), as the profiles start them."""
    return {
        "sim_node": ("sim_node", "sim_node.yaml", SIM),
        "safety_controller": ("safety_controller_node", "safety_controller.yaml", SIM_TIME),
        "grounding_node": ("grounding_node", "grounding_node.yaml", {**SIM_TIME, "memory_root": str(tmp / "memory")}),
        # plans the raw instruction at once (no grounding node in this test)
        "planner_node": ("planner_node", "planner_node.yaml", {**SIM_TIME, "use_grounding": False}),
        "action_expert": ("action_expert_node", "action_expert_node.yaml", SIM_TIME),
        "camera_node": ("camera_node", "camera_node.yaml", {"backend": "synthetic"}),
        "tactile_node": ("tactile_node", "tactile_node.yaml", {"backend": "synthetic"}),
        "recorder_node": ("recorder_node", "", {"output": str(tmp / "rec.mcap"), "topics": ["joint_states"]}),
        "scripted_pick_node": ("scripted_pick_node", "", SIM_TIME),
    }


def runnable(executable: str) -> bool:
    """False when the installed console script imports a module this checkout does not have (a venv
    shared with a branch that moved the node: e.g. scripted_pick_node into vla_stack.lab)."""
    script = executable_path(executable)[-1]
    match = re.search(r"^from (\S+) import main", Path(script).read_text(errors="replace"), re.M) if Path(script).is_file() else None
    if match is None:
        return True
    try:
        return importlib.util.find_spec(match.group(1)) is not None
    except ModuleNotFoundError:  # its package is missing
        return False


def start_all(start_node, tmp: Path) -> dict:
    procs = {}
    for name, (exe, param_file, params) in node_table(tmp).items():
        if runnable(exe):
            files = [config_path(param_file)] if param_file else []
            procs[name] = start_node(exe, name=name, param_files=files, params=params)
    return procs


def caught_signals(proc) -> int:
    """Bit mask of the signals the process has handlers for (SigCgt); 0 if it is gone."""
    try:
        for line in Path(f"/proc/{proc._managed.pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def handles_sigterm(proc) -> bool:
    return bool(caught_signals(proc) & (1 << (signal.SIGTERM - 1)))


def spinning(ros_node, name: str) -> bool:
    """True once /<name> answers its parameter service (built and spinning)."""
    client = ros_node.node.create_client(ListParameters, f"/{name}/list_parameters")
    try:
        if not client.wait_for_service(timeout_sec=0.5):
            return False
        future = client.call_async(ListParameters.Request(depth=1))
        return ros_node.wait_until(future.done, timeout=5.0)
    finally:
        ros_node.node.destroy_client(client)


def wait_exit(proc, timeout: float = 30.0) -> int | None:
    try:
        return proc._managed.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def assert_clean(procs: dict, moment: str) -> None:
    problems = []
    for name, proc in procs.items():
        code = wait_exit(proc)
        proc._managed._reader.join(timeout=5.0)  # all output read
        text = proc.text()
        if code != 0 or "Traceback" in text:
            problems.append(f"--- {name} ({moment}): exit code {code}\n{text[-3000:]}")
    assert not problems, "\n".join(problems)


def planner_state(statuses) -> str:
    if not statuses:
        return ""
    return diagnostics_to_dict(statuses[-1])["planner"]["values"].get("state", "")


def make_planner_busy(ros_node, statuses, instruction_pub) -> None:
    """Send an instruction and return while the planner's worker is planning it."""
    assert ros_node.wait_until(lambda: instruction_pub.get_subscription_count() > 0, timeout=30)
    instruction_pub.publish(String(data="bring the cup to the tray"))
    assert ros_node.wait_until(lambda: planner_state(statuses) in ("planning", "executing"), timeout=60), planner_state(statuses)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_right_after_start(start_node, ros_node, tmp_path, sig):
    procs = start_all(start_node, tmp_path)
    pending = dict(procs)
    deadline = time.monotonic() + 90
    while pending and time.monotonic() < deadline:
        for name, proc in list(pending.items()):
            if handles_sigterm(proc) or not proc.alive():
                proc._managed.signal(sig)
                del pending[name]
        time.sleep(0.01)
    assert not pending, f"no signal handlers after 90 s: {list(pending)}"
    assert_clean(procs, f"{sig.name} right after start")


def test_sigint_twice_while_up_and_busy(start_node, ros_node, tmp_path):
    status_t = itf.status("planner")
    statuses = ros_node.subscribe(status_t.name, DiagnosticArray, status_t.sub_qos)
    joint_states = ros_node.subscribe(itf.JOINT_STATES.name, itf.JOINT_STATES.msg_type, itf.JOINT_STATES.sub_qos)
    instruction_pub = ros_node.publisher(itf.INSTRUCTION.name, String, itf.INSTRUCTION.pub_qos)
    procs = start_all(start_node, tmp_path)
    for name, proc in procs.items():
        assert ros_node.wait_until(lambda name=name: spinning(ros_node, name), timeout=120), f"{name} not up:\n{proc.text()[-3000:]}"
    # busy: the sim steps and publishes, the safety controller runs on its clock, the planner plans
    assert ros_node.wait_until(lambda: len(joint_states) > 10, timeout=30)
    assert ros_node.wait_until(lambda: planner_state(statuses) == "idle"
                               and diagnostics_to_dict(statuses[-1])["planner"]["values"].get("model_ready") == "True",
                               timeout=120), procs["planner_node"].text()[-3000:]
    make_planner_busy(ros_node, statuses, instruction_pub)
    order = ["planner_node"] + [n for n in procs if n not in ("planner_node", "sim_node")] + ["sim_node"]  # sim last: clock
    for _ in range(2):  # the second SIGINT reaches nodes that are already stopping
        for name in order:
            procs[name]._managed.signal(signal.SIGINT)
    assert_clean(procs, "SIGINT twice while up and busy")
