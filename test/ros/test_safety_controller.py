"""safety_controller_node as a real process against the simulated arm (sim_node), over DDS.

- chunks stream into smooth motion (the commands it publishes stay within the scaled
  velocity/acceleration limits from tick to tick, and the simulated arm follows);
- a malformed chunk is rejected and logged while the motion continues;
- e-stop stops the arm, reset is refused while the e-stop is pressed, and after release +
  reset new chunks move the arm again;
- a wrist-force spike over the contact limit stops the arm and backs it off along its
  commanded path, then chunks move it again;
- killing the chunk publisher (SIGKILL of a separate process) mid-motion ends in a
  controlled hold (watchdog).
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from vla_stack.core.safety.limits import load_robot_profile
from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import diagnostics_to_dict, seconds_to_duration, stamp_to_seconds

pytestmark = pytest.mark.ros

ARM = [f"panda_joint{i}" for i in range(1, 8)]
READY = np.array([0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398])
SIM_PARAMS = {"camera_rate": 0.0, "wrist_camera_rate": 0.0, "segmentation_rate": 0.0, "seed": 1}
SAFETY_PARAMS = {"use_sim_time": True, "state_timeout": 1.0}


def motion(t: float, t0: float, base: np.ndarray) -> np.ndarray:
    """The target motion: joints 1 and 4 swing slowly away from `base` (rad), starting at `base` at t0."""
    q = np.array(base, dtype=np.float64)
    q[0] += 0.35 * math.sin(2 * math.pi * 0.25 * (t - t0))
    q[3] += 0.2 * math.sin(2 * math.pi * 0.2 * (t - t0))
    return q


def chunk(stamp: float, t0: float, base: np.ndarray, horizon: int = 20, spacing: float = 0.05) -> JointTrajectory:
    """A chunk observed at `stamp` (sim time), points along `motion`."""
    msg = JointTrajectory()
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9)) % 1_000_000_000
    msg.joint_names = ARM
    for k in range(1, horizon + 1):
        p = JointTrajectoryPoint()
        p.positions = [float(v) for v in motion(stamp + k * spacing, t0, base)]
        p.time_from_start = seconds_to_duration(k * spacing)
        msg.points.append(p)
    return msg


class Harness:
    """Subscriptions and helpers shared by the tests."""

    def __init__(self, ros_node) -> None:
        self.node = ros_node
        self.states = ros_node.subscribe("joint_states", JointState)
        self.status = ros_node.subscribe(itf.status("safety").name, DiagnosticArray, itf.status("safety").sub_qos)
        # deep reader queue: every published command is kept (nothing is lost on localhost)
        self.commands = ros_node.subscribe(itf.ARM_TRAJECTORY.name, JointTrajectory, QoSProfile(depth=5000))
        self.chunk_pub = ros_node.publisher(itf.ACTION_CHUNK.name, JointTrajectory, itf.ACTION_CHUNK.pub_qos)
        self.estop_pub = ros_node.publisher(itf.ESTOP.name, Bool, itf.ESTOP.pub_qos)
        self.reset_client = ros_node.node.create_client(Trigger, "safety/reset")

    def last_state(self) -> tuple[float, np.ndarray, np.ndarray]:
        with self.node.lock:
            msg = self.states[-1]
        idx = {n: i for i, n in enumerate(msg.name)}
        pos = np.array([msg.position[idx[n]] for n in ARM])
        vel = np.array([msg.velocity[idx[n]] for n in ARM]) if len(msg.velocity) else np.zeros(7)
        return stamp_to_seconds(msg.header.stamp), pos, vel

    def last_status(self) -> dict:
        with self.node.lock:
            if not self.status:
                return {}
            msg = self.status[-1]
        d = diagnostics_to_dict(msg)["safety_controller"]
        return {"message": d["message"], **d["values"]}

    def diag(self) -> dict:
        """Status values that explain a failure (counters, last reason, loop timing)."""
        st = self.last_status()
        keep = ("state", "message", "last_code", "last_reason", "chunk_age_s", "joint_states_age_s")
        return {k: v for k, v in st.items() if k in keep or k.startswith("count.") or k.startswith("loop.")}

    def count(self, code: str) -> int:
        return int(self.last_status().get(f"count.{code}", 0))

    def stream(self, seconds: float, t0: float, base: np.ndarray, rate: float = 10.0) -> None:
        """Publish chunks stamped with the latest joint_states (observation) time."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            stamp, _, _ = self.last_state()
            self.chunk_pub.publish(chunk(stamp, t0, base))
            time.sleep(1.0 / rate)

    def reset(self, node_process=None) -> Trigger.Response:
        assert self.reset_client.wait_for_service(timeout_sec=10.0)
        future = self.reset_client.call_async(Trigger.Request())
        done = self.node.wait_until(future.done, timeout=10.0)
        assert done, "no reply from safety/reset" + (f"; node output:\n{node_process.text()[-3000:]}" if node_process else "")
        return future.result()


def start_stack(start_node, ros_node, **safety_params):
    sim = start_node("sim_node", param_files=[config_path("sim_node.yaml")], params=SIM_PARAMS)
    safety = start_node(
        "safety_controller_node", name="safety_controller",
        param_files=[config_path("safety_controller.yaml")], params={**SAFETY_PARAMS, **safety_params},
    )
    h = Harness(ros_node)
    ok = ros_node.wait_until(lambda: len(h.states) > 20 and h.last_status().get("state") == "HOLDING", timeout=60)
    assert ok, f"stack did not come up\nsim:\n{sim.text()[-3000:]}\nsafety:\n{safety.text()[-3000:]}"
    return sim, safety, h


def test_streaming_malformed_chunk_and_estop_reset(start_node, ros_node):
    sim, safety, h = start_stack(start_node, ros_node)
    markers = ros_node.subscribe(itf.SAFETY_MARKERS.name, MarkerArray, itf.SAFETY_MARKERS.sub_qos)
    assert ros_node.wait_until(lambda: len(markers) >= 1, timeout=10), "no safety/markers (latched)"
    with ros_node.lock:
        kinds = [m.type for m in markers[-1].markers]
    assert Marker.LINE_LIST in kinds and Marker.CUBE in kinds  # workspace box + the table obstacle
    limits = load_robot_profile("panda").limits
    scale = float(h.last_status()["scaling"])
    t0, q_start, _ = h.last_state()

    # --- chunks stream into smooth motion
    n_before = len(h.states)
    h.stream(2.5, t0, q_start)
    st = h.last_status()
    assert st["state"] == "ACTIVE", (st, safety.text()[-2000:])
    with ros_node.lock:
        seen = [np.array(m.position[:7]) for m in h.states[n_before:]]
    excursion = np.max(np.abs(np.array(seen) - q_start), axis=0)
    assert excursion[0] > 0.1, ("the simulated arm did not follow", excursion, h.last_state()[0] - t0, h.diag())

    # --- a malformed chunk (NaN) is rejected and logged while the motion continues
    bad = chunk(h.last_state()[0], t0, q_start)
    bad.points[3].positions[2] = float("nan")
    h.chunk_pub.publish(bad)
    h.stream(1.0, t0, q_start)
    assert ros_node.wait_until(lambda: h.count("nan") >= 1, timeout=15), h.diag()
    assert safety.wait_for_output("rejected action chunk [nan]", timeout=15), safety.text()[-2000:]
    assert h.last_status()["state"] == "ACTIVE", (h.last_status(), safety.text()[-2000:])
    _, q_a, _ = h.last_state()
    h.stream(0.5, t0, q_start)
    _, q_b, _ = h.last_state()
    assert np.max(np.abs(q_b - q_a)) > 1e-3, "motion did not continue after the rejected chunk"

    # the published commands were continuous and within the scaled limits, message to message
    # (the core advances one control period per message, so consecutive first points are one
    # period apart whatever the timer jitter)
    with ros_node.lock:
        cmds = [(np.array(m.points[0].positions), np.array(m.points[0].velocities)) for m in h.commands if m.points]
    assert len(cmds) > 200, f"only {len(cmds)} commands received"
    dt = 1.0 / 250.0
    vmax, amax = limits.velocity * scale, limits.acceleration * scale
    for (pa, va), (pb, vb) in zip(cmds, cmds[1:], strict=False):
        assert np.all(np.abs(vb) <= vmax * (1 + 1e-6))
        assert np.all(np.abs(vb - va) <= amax * dt * (1 + 1e-6) + 1e-9), (va, vb)
        assert np.all(np.abs(pb - pa) <= vmax * dt * (1 + 1e-6) + 1e-9), (pa, pb)

    # --- e-stop: stop, stay stopped, refuse chunks and a reset while pressed
    h.estop_pub.publish(Bool(data=True))
    assert ros_node.wait_until(lambda: h.last_status().get("state") == "ESTOP", timeout=15), h.last_status()
    h.stream(1.0, t0, q_start)
    assert h.count("estop_active") >= 1
    assert ros_node.wait_until(lambda: np.max(np.abs(h.last_state()[2])) < 1e-2, timeout=15), h.last_state()
    _, q_stop, _ = h.last_state()
    time.sleep(0.5)
    assert np.max(np.abs(h.last_state()[1] - q_stop)) < 5e-3, "the arm moved while e-stopped"
    resp = h.reset(safety)
    assert not resp.success and "still pressed" in resp.message
    assert h.last_status()["state"] == "ESTOP"

    # --- release + reset: chunks move the arm again
    h.estop_pub.publish(Bool(data=False))
    assert ros_node.wait_until(lambda: h.last_status().get("estop_pressed") == "false", timeout=15)
    resp = h.reset(safety)
    assert resp.success, resp.message
    t1, q_reset, _ = h.last_state()
    # restart the motion from where the arm is (a chunk must start near the current command)
    h.stream(2.0, t1, q_reset)
    assert h.last_status().get("state") == "ACTIVE", (h.last_status(), safety.text()[-2000:])
    assert np.max(np.abs(h.last_state()[1] - q_reset)) > 0.02, "no motion after reset"
    assert sim.alive() and safety.alive()


PUBLISHER = textwrap.dedent(
    """
    import math, sys, time
    import rclpy
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
    from vla_stack.ros import interfaces as itf
    from vla_stack.ros.conversions import seconds_to_duration, seconds_to_stamp, stamp_to_seconds
    rclpy.init()
    node = rclpy.create_node("chunk_publisher")
    last = {}
    node.create_subscription(JointState, "joint_states", lambda m: last.update(m=m), itf.JOINT_STATES.sub_qos)
    pub = node.create_publisher(JointTrajectory, itf.ACTION_CHUNK.name, itf.ACTION_CHUNK.pub_qos)
    ready = [0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398]
    t0 = None
    while rclpy.ok():
        rclpy.spin_once(node, timeout_sec=0.1)
        if "m" not in last:
            continue
        stamp = stamp_to_seconds(last["m"].header.stamp)
        t0 = stamp if t0 is None else t0
        msg = JointTrajectory()
        msg.header.stamp = seconds_to_stamp(stamp)
        msg.joint_names = [f"panda_joint{i}" for i in range(1, 8)]
        for k in range(1, 21):
            t = stamp + 0.05 * k
            q = list(ready)
            q[0] += 0.4 * math.sin(2 * math.pi * 0.3 * (t - t0))
            p = JointTrajectoryPoint(positions=q, time_from_start=seconds_to_duration(0.05 * k))
            msg.points.append(p)
        pub.publish(msg)
        print("published", flush=True)
    """
)


def test_killing_the_chunk_publisher_ends_in_a_controlled_hold(start_node, ros_node, ros_env):
    sim, safety, h = start_stack(start_node, ros_node)
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=ros_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    try:
        moving = ros_node.wait_until(
            lambda: h.last_status().get("state") == "ACTIVE" and np.max(np.abs(h.last_state()[2])) > 0.05, timeout=30)
        assert moving, (h.last_status(), safety.text()[-2000:])
        publisher.send_signal(signal.SIGKILL)
        publisher.wait(5)
        # the last chunk runs out (<= 1 s), then the watchdog holds: at rest, state HOLDING
        held = ros_node.wait_until(
            lambda: h.count("watchdog") >= 1 and h.last_status().get("state") == "HOLDING"
            and np.max(np.abs(h.last_state()[2])) < 1e-2,
            timeout=20)
        assert held, (h.diag(), h.last_state())
        _, q_hold, _ = h.last_state()
        time.sleep(1.0)
        assert np.max(np.abs(h.last_state()[1] - q_hold)) < 5e-3, "the arm drifted while holding"
        assert h.last_status()["state"] == "HOLDING"
        assert safety.alive()
    finally:
        if publisher.poll() is None:
            publisher.kill()


def test_contact_stop_backs_off_then_chunks_move_the_arm_again(start_node, ros_node):
    """A wrist-force spike over the contact limit mid-motion: the node stops the arm, retraces the
    commanded path to where it was contact_backoff (1 s) earlier, rejecting chunks meanwhile, then
    follows chunks again."""
    from geometry_msgs.msg import WrenchStamped

    sim, safety, h = start_stack(start_node, ros_node)
    wrench_pub = ros_node.publisher(itf.WRENCH.name, WrenchStamped, itf.WRENCH.pub_qos)
    t0, q_start, _ = h.last_state()
    h.stream(2.5, t0, q_start)
    assert h.last_status()["state"] == "ACTIVE", h.diag()
    t_trip, q_trip, _ = h.last_state()
    with ros_node.lock:
        history = [(stamp_to_seconds(m.header.stamp), np.array(m.position[:7])) for m in h.states]
    # where it was about 1 s before the stop (the spike arrives a little after t_trip)
    window = [q for t, q in history if t_trip - 1.1 <= t <= t_trip - 0.7]
    assert window and min(float(np.max(np.abs(q - q_trip))) for q in window) > 0.05, "nothing to back off along"
    spike = WrenchStamped()
    spike.header.stamp = h.states[-1].header.stamp
    spike.header.frame_id = "panda_hand"
    spike.wrench.force.z = 95.0  # the simulator's own readings (~0 N) follow at once: the latch releases
    deadline = time.monotonic() + 10.0
    while h.count("contact_force") < 1 and time.monotonic() < deadline:
        wrench_pub.publish(spike)
        time.sleep(0.1)
    assert h.count("contact_force") >= 1, h.diag()
    n_trip = len(h.states)
    h.stream(3.0, t0, q_start)  # the policy keeps sending chunks: rejected until the back-off is done
    with ros_node.lock:
        after = [np.array(m.position[:7]) for m in h.states[n_trip:]]
    closest = min(float(np.max(np.abs(q - w))) for q in after for w in window)
    assert closest < 0.01, (f"the arm came no closer than {closest:.3f} rad to its poses ~1 s before the stop", h.diag())
    assert safety.wait_for_output("backing off to the commanded pose", timeout=5), safety.text()[-2000:]
    assert safety.wait_for_output("back-off done", timeout=10), safety.text()[-2000:]
    assert ros_node.wait_until(lambda: h.count("contact_backoff") >= 1 and h.count("contact_backoff_done") >= 1,
                               timeout=10), h.diag()
    h.stream(1.0, t0, q_start)
    assert h.last_status()["state"] == "ACTIVE", h.diag()  # following chunks again
    assert sim.alive() and safety.alive()


def test_forward_position_interface_streams_positions_the_sim_follows(start_node, ros_node):
    sim, safety, h = start_stack(start_node, ros_node, command_interface="position")
    commands = ros_node.subscribe(itf.ARM_POSITION_COMMAND.name, Float64MultiArray, QoSProfile(depth=5000))
    t0, q_start, _ = h.last_state()
    n_before = len(h.states)
    h.stream(2.0, t0, q_start)
    assert h.last_status()["state"] == "ACTIVE", h.diag()
    with ros_node.lock:
        seen = [np.array(m.position[:7]) for m in h.states[n_before:]]
        cmds = [np.array(m.data) for m in commands]
    assert len(cmds) > 100 and all(c.shape == (7,) for c in cmds)
    assert np.max(np.abs(np.array(seen) - q_start), axis=0)[0] > 0.1, h.diag()
    steps = np.abs(np.diff(np.array(cmds), axis=0))
    vmax = load_robot_profile("panda").limits.velocity * float(h.last_status()["scaling"])
    assert np.all(steps <= vmax / 250.0 * (1 + 1e-6) + 1e-9)
    assert sim.alive() and safety.alive()


def test_parameter_file_documents_every_parameter():
    """config/safety_controller.yaml lists every parameter the node declares, each with a comment."""
    import dataclasses

    from vla_stack.bringup import node_parameters
    from vla_stack.core.safety.base_gate import BaseGateConfig
    from vla_stack.core.safety.controller import SafetyControllerConfig
    from vla_stack.ros.safety_controller_node import NODE_PARAMETERS

    path = config_path("safety_controller.yaml")
    params = node_parameters(path, "safety_controller")
    expected = {f.name for f in dataclasses.fields(SafetyControllerConfig) if f.name != "base"}
    expected |= {f"base.{f.name}" for f in dataclasses.fields(BaseGateConfig)} | set(NODE_PARAMETERS)
    assert set(params) == expected
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        key = line.strip().split(":")[0]
        if line.startswith("    ") and not line.strip().startswith("#") and key in expected:
            assert lines[i - 1].strip().startswith("#"), f"{key} has no comment"
    SafetyControllerConfig(**{k: v for k, v in params.items() if "." not in k and k in expected - set(NODE_PARAMETERS)})
