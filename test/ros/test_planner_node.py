"""planner_node as a real process over DDS: instruction in -> subtask + latent out; garbage is
reported on planner/status and no subtask is published; "stop" pauses; "not that one" sends an
exclusion request to grounding. One node process for all phases (the model loads once)."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import Float32MultiArray, String

from vla_stack.core.contracts import parse_exclusion, parse_subtask
from vla_stack.core.kinematics.assets import PANDA_ARM_JOINTS, PANDA_FINGER_JOINTS, PANDA_READY_POSE
from vla_stack.core.planning.skills import Subtask
from vla_stack.core.types import JointState, Pose
from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import (
    diagnostics_msg,
    diagnostics_to_dict,
    float32_array_to_numpy,
    joint_state_to_msg,
    pose_to_msg,
)

pytestmark = pytest.mark.ros


def _subtask(text: str) -> Subtask:
    """planner/subtask through the contract's one parser, then the planner's skill checks."""
    return Subtask.from_message(parse_subtask(text))


def planner_status(messages):
    """Latest planner status as a dict (level, message, values), or None."""
    if not messages:
        return None
    return diagnostics_to_dict(messages[-1])["planner"]


def test_planner_node_end_to_end(start_node, ros_node):
    node = start_node(
        "planner_node", param_files=[config_path("planner_node.yaml")],
        params={"grounding_wait": 2.0, "publish_period": 0.5},
    )
    status_t = itf.status("planner")
    statuses = ros_node.subscribe(status_t.name, DiagnosticArray, status_t.sub_qos)
    subtasks = ros_node.subscribe(itf.PLANNER_SUBTASK.name, String, itf.PLANNER_SUBTASK.sub_qos)
    latents = ros_node.subscribe(itf.PLANNER_LATENT.name, Float32MultiArray, itf.PLANNER_LATENT.sub_qos)
    excludes = ros_node.subscribe(itf.GROUNDING_EXCLUDE.name, String, itf.GROUNDING_EXCLUDE.sub_qos)
    instruction = ros_node.publisher(itf.INSTRUCTION.name, String, itf.INSTRUCTION.pub_qos)
    feedback = ros_node.publisher(itf.FEEDBACK.name, String, itf.FEEDBACK.pub_qos)
    g_instr = ros_node.publisher(itf.GROUNDING_INSTRUCTION.name, String, itf.GROUNDING_INSTRUCTION.pub_qos)
    g_status_t = itf.status("grounding")
    g_status = ros_node.publisher(g_status_t.name, DiagnosticArray, g_status_t.pub_qos)
    g_target = ros_node.publisher(itf.GROUNDING_TARGET.name, type(pose_to_msg(Pose(np.zeros(3)))), itf.GROUNDING_TARGET.pub_qos)
    joints = ros_node.publisher(itf.JOINT_STATES.name, type(joint_state_to_msg(JointState(("a",), [0.0]))), itf.JOINT_STATES.pub_qos)

    # the node is up and answering before the model has finished loading
    assert ros_node.wait_until(lambda: planner_status(statuses) is not None, timeout=60), node.text()
    assert ros_node.wait_until(lambda: planner_status(statuses)["values"].get("model_ready") == "True", timeout=120), node.text()

    open_gripper = joint_state_to_msg(
        JointState((*PANDA_ARM_JOINTS, *PANDA_FINGER_JOINTS), np.array([*PANDA_READY_POSE, 0.04, 0.04]))
    )
    joints.publish(open_gripper)

    # ---- 1. garbage: reported on planner/status, nothing on planner/subtask
    def rejected():
        s = planner_status(statuses)
        return s is not None and s["level"] == "ERROR" and "nothing planned" in s["message"]

    for pub in (instruction, feedback, g_instr, g_status, g_target, joints):
        assert ros_node.wait_until(lambda pub=pub: pub.get_subscription_count() > 0, timeout=30), pub.topic_name
    instruction.publish(String(data="asdf qwer zxcv"))
    assert ros_node.wait_until(rejected, timeout=30), node.text()
    s = planner_status(statuses)
    assert s["values"]["state"] == "rejected" and "asdf qwer zxcv" in s["message"]
    # a few more status periods: still no subtask
    n_status = len(statuses)
    assert ros_node.wait_until(lambda: len(statuses) >= n_status + 3, timeout=20)
    assert subtasks == [] and latents == []

    # ---- 2. a real instruction with grounding -> subtask + latent
    g_status.publish(diagnostics_msg("grounding", "OK", "found: my cup (score 0.91)", {"status": "found", "score": "0.91"}, 0.0))
    g_target.publish(pose_to_msg(Pose(np.array([0.52, 0.08, 0.045]), frame_id="panda_link0")))
    instruction.publish(String(data="bring my cup to the tray"))
    assert ros_node.wait_until(lambda: planner_status(statuses)["values"]["state"] in ("grounding", "planning", "executing"), 20)
    g_instr.publish(String(data="bring the red-highlighted cup to the tray"))
    assert ros_node.wait_until(lambda: len(subtasks) > 0, timeout=60), node.text()
    first = _subtask(subtasks[-1].data)
    assert first.skill == "pick" and first.status == "active" and first.index == 0 and first.plan_size == 2
    assert first.arguments["object"] == "red-highlighted cup"
    assert first.arguments["position"] == pytest.approx([0.52, 0.08, 0.045])
    assert first.instruction == "bring the red-highlighted cup to the tray"
    assert ros_node.wait_until(lambda: len(latents) > 0, timeout=30), node.text()
    latent = float32_array_to_numpy(latents[-1])
    assert latent.shape == (384,) and np.isfinite(latent).all()
    assert abs(float(np.linalg.norm(latent)) - 1.0) < 1e-3
    # republished about once per publish_period while nothing changes
    n_sub = len(subtasks)
    assert ros_node.wait_until(lambda: len(subtasks) >= n_sub + 2, timeout=20)
    assert _subtask(subtasks[-1].data).status == "active"

    # ---- 3. "stop" pauses the subtask and shows on the status
    feedback.publish(String(data="stop"))
    assert ros_node.wait_until(lambda: _subtask(subtasks[-1].data).status == "paused", timeout=20), node.text()
    s = planner_status(statuses)
    assert s["level"] == "WARN" and "stopped by the user" in s["message"] and s["values"]["paused"] == "True"
    feedback.publish(String(data="continue"))
    assert ros_node.wait_until(lambda: _subtask(subtasks[-1].data).status == "active", timeout=20), node.text()

    # ---- 4. "not that one": exclusion request for grounding, the pick waits for a new target
    feedback.publish(String(data="no, not that one"))
    assert ros_node.wait_until(lambda: len(excludes) > 0, timeout=20), node.text()
    req = parse_exclusion(excludes[-1].data)
    assert len(req.exclusions) == 1 and req.exclusions[0] == pytest.approx((0.52, 0.08, 0.045))
    assert req.frame_id == "panda_link0"
    assert ros_node.wait_until(lambda: _subtask(subtasks[-1].data).status == "waiting", timeout=20)
    g_target.publish(pose_to_msg(Pose(np.array([0.40, -0.12, 0.045]), frame_id="panda_link0")))
    assert ros_node.wait_until(lambda: _subtask(subtasks[-1].data).status == "active", timeout=20), node.text()
    assert _subtask(subtasks[-1].data).arguments["position"] == pytest.approx([0.40, -0.12, 0.045])
    assert node.alive()
