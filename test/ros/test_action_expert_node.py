"""action_expert_node as a real process: it drives the simulated arm through the safety controller
and puts the mug in the tray.

Processes: sim_node (MuJoCo Panda + mugs), safety_controller_node (the only node that moves
the arm), action_expert_node (shipped checkpoint, rtc). The test plays grounding: it reads the
simulator's ground truth (evaluation-only topic) and publishes the mug's grasp point on
`grounding/target`, stamped with sim time, like the grounding node would.

Checks: chunks arrive on action_expert/chunk with the 7 arm joints + gripper column and
header.stamp = a joint_states (observation) time; status reports latency, measured delay and
the strategy; the arm, moved only by the safety controller, carries the TCP to the mug and the
mug ends upright in the tray; bad
targets (NaN, wrong frame) are rejected with a logged reason and counted, and the node keeps
going.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from vla_stack.core.contracts import parse_ground_truth
from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.lab.policy.simulation import grasp_and_place
from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import diagnostics_to_dict, seconds_to_stamp, stamp_to_seconds

pytestmark = pytest.mark.ros

ARM = [f"panda_joint{i}" for i in range(1, 8)]
SEED = 1004


class Grounding:
    """Test-side stand-in for the grounding node (ground truth -> grounding/target)."""

    def __init__(self, ros_node) -> None:
        self.node = ros_node
        self.gt = ros_node.subscribe(itf.GROUND_TRUTH.name, String, itf.GROUND_TRUTH.sub_qos)
        self.states = ros_node.subscribe(itf.JOINT_STATES.name, JointState)
        self.chunks: list[JointTrajectory] = []
        self.chunk_ages: list[float] = []  # sim time at receipt - header.stamp, s
        ros_node.node.create_subscription(JointTrajectory, itf.ACTION_CHUNK.name, self._on_chunk, itf.ACTION_CHUNK.sub_qos)
        status = itf.status("action_expert")
        self.status = ros_node.subscribe(status.name, DiagnosticArray, status.sub_qos)
        self.pub = ros_node.publisher(itf.GROUNDING_TARGET.name, PoseStamped, itf.GROUNDING_TARGET.pub_qos)
        self.model = RobotModel.for_robot()

    def _on_chunk(self, msg: JointTrajectory) -> None:
        with self.node.lock:
            latest = stamp_to_seconds(self.states[-1].header.stamp) if self.states else 0.0
            self.chunks.append(msg)
            self.chunk_ages.append(latest - stamp_to_seconds(msg.header.stamp))

    def ground_truth(self) -> dict | None:
        with self.node.lock:
            return parse_ground_truth(self.gt[-1].data).to_dict() if self.gt else None

    def state(self) -> tuple[float, np.ndarray]:
        with self.node.lock:
            msg = self.states[-1]
        idx = {n: i for i, n in enumerate(msg.name)}
        return stamp_to_seconds(msg.header.stamp), np.array([msg.position[idx[n]] for n in ARM])

    def publish_target(self, grasp: np.ndarray, yaw: float, stamp: float, frame: str = "panda_link0") -> None:
        msg = PoseStamped()
        msg.header.stamp = seconds_to_stamp(stamp)
        msg.header.frame_id = frame
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in grasp)
        msg.pose.orientation.z, msg.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        self.pub.publish(msg)

    def status_values(self) -> dict:
        with self.node.lock:
            if not self.status:
                return {}
            d = diagnostics_to_dict(self.status[-1]).get("action_expert", {})
        return {"message": d.get("message", ""), **d.get("values", {})}

    def tcp_distance(self, grasp: np.ndarray) -> float:
        return float(np.linalg.norm(self.model.fk(self.state()[1])[:3, 3] - grasp))


def test_expert_drives_the_simulated_arm_through_the_safety_controller(start_node, ros_node):
    sim = start_node("sim_node", param_files=[config_path("sim_node.yaml")],
                     params={"camera_rate": 0.0, "wrist_camera_rate": 0.0, "segmentation_rate": 0.0, "seed": SEED,
                             "ground_truth_rate": 5.0,
                             # half speed: on a loaded 2-core machine the expert's inference
                             # then stays within the delays it was trained for (what this test
                             # checks is the wiring, not how fast this machine is)
                             "real_time_factor": 0.5})
    safety = start_node("safety_controller_node", name="safety_controller",
                        param_files=[config_path("safety_controller.yaml")], params={"use_sim_time": True})
    g = Grounding(ros_node)
    assert ros_node.wait_until(lambda: g.ground_truth() is not None and len(g.states) > 10, timeout=60), sim.text()[-3000:]
    gt = g.ground_truth()
    grasp, yaw, place, _ = grasp_and_place(gt, gt["mine"])
    expert = start_node("action_expert_node", name="action_expert", param_files=[config_path("action_expert_node.yaml")],
                        params={"use_sim_time": True, "inputs.place_position": [float(v) for v in place]})
    assert expert.wait_for_output("waiting for", timeout=60), expert.text()[-3000:]

    # --- bad targets: rejected with a reason, counted, the node keeps running
    deadline = time.monotonic() + 30.0  # publish until discovery has matched and both were seen
    while time.monotonic() < deadline and not (
        expert.wait_for_output("is not the base frame", timeout=0.01) and expert.wait_for_output("NaN", timeout=0.01)
    ):
        now, _ = g.state()
        g.publish_target(np.array([np.nan, 0.0, 0.1]), 0.0, now)
        g.publish_target(grasp, yaw, now, frame="camera_color_optical_frame")
        time.sleep(0.2)
    assert expert.wait_for_output("is not the base frame", timeout=1), expert.text()[-3000:]
    assert expert.wait_for_output("grounding target rejected: pose contains NaN/inf", timeout=1), expert.text()[-3000:]
    assert ros_node.wait_until(lambda: int(g.status_values().get("rejected.target:frame", 0)) >= 1, timeout=10), \
        g.status_values()
    assert not g.chunks, "a chunk was published without a valid target"

    # --- grounding publishes the mug's grasp point; the expert moves the arm there
    d0 = g.tcp_distance(grasp)
    closest = d0
    deadline = time.monotonic() + 90.0
    while time.monotonic() < deadline:
        gt = g.ground_truth()
        grasp, yaw, _, _ = grasp_and_place(gt, gt["mine"])  # follows the mug, as grounding tracks it
        g.publish_target(grasp, yaw, g.state()[0])
        closest = min(closest, g.tcp_distance(grasp))
        if closest < 0.02 and len(g.chunks) > 20:
            break
        time.sleep(0.1)
    diag = (g.status_values(), expert.text()[-2500:], safety.text()[-1500:])
    assert g.chunks, diag
    assert closest < 0.03, (f"TCP got no closer than {closest:.3f} m to the grasp point (started {d0:.3f} m)", diag)

    # --- ... and finishes the task: the mug ends upright in the tray (simulator's verdict)
    def mug() -> dict:
        gt = g.ground_truth()
        return next(m for m in gt["mugs"] if m["name"] == gt["mine"])

    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and not (mug()["in_tray"] and mug()["upright"] and not mug()["in_gripper"]):
        gt = g.ground_truth()
        grasp, yaw, _, _ = grasp_and_place(gt, gt["mine"])
        g.publish_target(grasp, yaw, g.state()[0])
        time.sleep(0.1)
    assert mug()["in_tray"] and mug()["upright"], (mug(), g.status_values(), safety.text()[-1500:])

    # chunks: arm joints + gripper column, stamped with the (sim) time of the joint state they
    # were computed from: never in the future, never older than max_observation_age (0.5 s)
    with ros_node.lock:
        chunks, ages = list(g.chunks), list(g.chunk_ages)
    for msg in chunks:
        assert list(msg.joint_names) == ARM + ["panda_finger_joint1"]
        assert len(msg.points) >= 1 and all(np.isfinite(p.positions).all() for p in msg.points)
    stamps = [stamp_to_seconds(m.header.stamp) for m in chunks]
    assert all(b >= a for a, b in zip(stamps, stamps[1:], strict=False)), "chunk stamps go backwards"
    assert min(ages) >= -0.01 and max(ages) <= 0.5, (min(ages), max(ages))
    # the status is published at its own (lower) rate: wait for one that counts the chunks received
    assert ros_node.wait_until(lambda: int(g.status_values().get("chunks_published", 0)) >= len(chunks), timeout=10), \
        (len(chunks), g.status_values())
    st = g.status_values()
    assert st["strategy"] == "rtc" and float(st["inference_latency_ms"]) > 0 and "measured_delay_steps" in st
    assert sim.alive() and safety.alive() and expert.alive()


def test_parameter_file_lists_every_parameter():
    """config/action_expert_node.yaml documents every parameter the node declares, with its default."""
    from vla_stack.bringup import node_parameters
    from vla_stack.ros.action_expert_node import NODE_PARAMETERS

    params = node_parameters(config_path("action_expert_node.yaml"), "action_expert")
    assert set(params) == set(NODE_PARAMETERS)
    for key, (default, _help) in NODE_PARAMETERS.items():
        value = params[key]
        assert (list(value) if isinstance(value, list) else value) == (list(default) if isinstance(default, tuple) else default), key


def test_openpi_backend_parameters_reach_the_node(start_node, ros_node):
    """backend: openpi starts without a server (the connection opens lazily, never in the
    constructor), with the key mapping from parameters, and reports that it is waiting."""
    status = itf.status("action_expert")
    received = ros_node.subscribe(status.name, DiagnosticArray, status.sub_qos)
    expert = start_node("action_expert_node", name="action_expert", param_files=[config_path("action_expert_node.yaml")],
                        params={"backend": "openpi", "openpi.port": 8799, "openpi.keys.action_mode": "delta",
                                "openpi.keys.images": ["observation/exterior_image_1_left=prompted"],
                                "use_images": True})
    assert expert.wait_for_output("backend openpi", timeout=60), expert.text()[-3000:]
    assert expert.wait_for_output("cannot take real-time chunking guidance", timeout=5), expert.text()[-3000:]
    assert ros_node.wait_until(lambda: len(received) > 0, timeout=20)
    with ros_node.lock:
        values = diagnostics_to_dict(received[-1])["action_expert"]["values"]
    assert values["backend"] == "openpi" and values["waiting_for"].startswith("waiting for")
    assert "rejected" not in expert.text() and expert.alive()


@pytest.mark.parametrize("robot", ["so101"])
def test_the_expert_refuses_a_robot_its_checkpoint_was_not_trained_for(start_node, robot):
    """The robot parameter reaches the checkpoint loader: the shipped (Panda) expert on another
    robot stops at start with the reason naming both robots, instead of commanding its joints."""
    expert = start_node("action_expert_node", name="action_expert", param_files=[config_path("action_expert_node.yaml")],
                        params={"robot": robot})
    assert expert.wait_for_output(f"refused for robot '{robot}'", timeout=60), expert.text()[-3000:]
    assert expert.wait_for_output("trained for robot 'panda'", timeout=1), expert.text()[-3000:]
    deadline = time.monotonic() + 30.0
    while expert.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not expert.alive() and expert.returncode() not in (None, 0), expert.text()[-3000:]
