"""Resolving "ambiguous" from the user with real processes (issue 13, build 2).

grounding_node (decision per_object, my mug enrolled from synthetic views) sees two identical
mugs in synthetic RGB-D frames the test publishes (the scene camera's topics, a known camera
pose), and planner_node plans the task. Grounding answers "ambiguous" with both candidates and
highlights nothing; the planner asks which one on planner/status; "the purple one" on
task/feedback is reported as not understood and changes nothing; "the left one" becomes a
grounding/select request, grounding answers "found" with the left mug (reason "user chose the
left one", target over the left mug) and the planner's pick goes on with that target. With
`online_confirmation: true` the chosen view is added to my mug's memory (logged, stored).
Waits on states, never on sleeps.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from vla_stack.core.contracts import parse_selection, parse_subtask
from vla_stack.core.grounding.embedders import AppearanceEmbedder
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.core.grounding.target import matrix_to_pose
from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import diagnostics_to_dict, intrinsics_to_camera_info, numpy_to_image

pytestmark = pytest.mark.ros

MUGS_Y = (-0.08, 0.10)  # base-frame y of the two identical mugs: image left, image right


def _synthetic():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    import grounding_synthetic as gs

    return gs


def _values(msgs: list, name: str) -> dict:
    return diagnostics_to_dict(msgs[-1])[name]["values"] if msgs else {}


def test_the_left_one_resolves_an_ambiguous_grounding(start_node, ros_node, tmp_path):
    gs = _synthetic()
    mine = gs.dots((226, 214, 196), (176, 70, 46))
    # memory: my mug from four synthetic views, with its own decision rule
    memory = PersonalObjectMemory(tmp_path / "memory")
    views, masks = [], []
    intr_ref = gs.default_intrinsics(160, 160, 40.0)
    for i in range(4):
        az = 2 * np.pi * i / 4 + 0.3
        rgb, _, lab = gs.render([gs.Cylinder(0, 0, texture=mine)], gs.look_at([0.3 * np.cos(az), 0.3 * np.sin(az), 0.17],
                                [0, 0, 0.045]), intr_ref, table_color=(120, 120, 125), table_center=(0, 0),
                                table_half=(2, 2), seed=i)
        views.append(rgb)
        masks.append(lab == 2)
    memory.enroll("my_mug", views, "cup", AppearanceEmbedder(), masks=masks, self_calibrate=True)
    # the scene: my mug twice (an identical twin), seen by a camera with a known pose
    camera = gs.look_at([1.15, 0.0, 0.65], [0.45, 0.0, 0.02])
    intr = gs.default_intrinsics()
    rgb, depth, _ = gs.render([gs.Cylinder(0.48, y, texture=mine, yaw=0.4) for y in MUGS_Y], camera, intr, seed=5)
    pose = matrix_to_pose(camera, "panda_link0")
    camera_pose = [*map(float, pose.position), *map(float, pose.orientation)]

    grounding = start_node("grounding_node", param_files=[config_path("grounding_node.yaml")], params={
        "memory_root": str(memory.root), "matching.decision": "per_object", "camera_poses": camera_pose,
        "place.enabled": False, "max_frame_age": 0.0, "status_period": 0.2, "online_confirmation": True})
    planner = start_node("planner_node", param_files=[config_path("planner_node.yaml")],
                         params={"grounding_wait": 1.0, "publish_period": 0.5})
    g_status_t, p_status_t = itf.status("grounding"), itf.status("planner")
    g_status = ros_node.subscribe(g_status_t.name, DiagnosticArray, g_status_t.sub_qos)
    p_status = ros_node.subscribe(p_status_t.name, DiagnosticArray, p_status_t.sub_qos)
    targets = ros_node.subscribe(itf.GROUNDING_TARGET.name, PoseStamped, itf.GROUNDING_TARGET.sub_qos)
    selects = ros_node.subscribe(itf.GROUNDING_SELECT.name, String, itf.GROUNDING_SELECT.sub_qos)
    subtasks = ros_node.subscribe(itf.PLANNER_SUBTASK.name, String, itf.PLANNER_SUBTASK.sub_qos)
    instruction = ros_node.publisher(itf.INSTRUCTION.name, String, itf.INSTRUCTION.pub_qos)
    feedback = ros_node.publisher(itf.FEEDBACK.name, String, itf.FEEDBACK.pub_qos)
    color_pub = ros_node.publisher(itf.COLOR_IMAGE.name, Image, itf.COLOR_IMAGE.pub_qos)
    depth_pub = ros_node.publisher(itf.DEPTH_IMAGE.name, Image, itf.DEPTH_IMAGE.pub_qos)
    info_pub = ros_node.publisher(itf.CAMERA_INFO.name, CameraInfo, itf.CAMERA_INFO.pub_qos)

    stop = threading.Event()

    def camera_driver():  # the scene camera at ~5 Hz: info, depth, colour of one stamp
        while not stop.is_set():
            now = ros_node.node.get_clock().now().nanoseconds * 1e-9
            info_pub.publish(intrinsics_to_camera_info(intr, now))
            depth_pub.publish(numpy_to_image(depth, "32FC1", now, intr.frame_id))
            color_pub.publish(numpy_to_image(rgb, "rgb8", now, intr.frame_id))
            stop.wait(0.2)

    driver = threading.Thread(target=camera_driver, daemon=True)
    driver.start()
    try:
        def planner_ready():
            return _values(p_status, "planner").get("model_ready") == "True"

        assert ros_node.wait_until(planner_ready, timeout=120), planner.text()[-3000:]
        assert grounding.wait_for_output("grounding_node: cameras", timeout=60), grounding.text()[-3000:]
        assert ros_node.wait_until(lambda: instruction.get_subscription_count() >= 2, timeout=30)

        # ---- grounding cannot tell: ambiguous, both candidates listed, nothing targeted; the planner asks
        def ambiguous():
            v = _values(g_status, "grounding")
            return v.get("status") == "ambiguous" and len(v.get("candidate_boxes", "").split(";")) == 2

        assert ros_node.publish_until(instruction, String(data="bring my cup to the tray"), ambiguous, timeout=60), (
            _values(g_status, "grounding"), grounding.text()[-3000:])
        assert not targets

        def asking():
            v = _values(p_status, "planner")
            return v.get("question", "").startswith("I can't tell which cup is yours: 2 candidates, left")

        assert ros_node.wait_until(asking, timeout=30), (_values(p_status, "planner"), planner.text()[-3000:])
        assert ros_node.wait_until(lambda: subtasks and parse_subtask(subtasks[-1].data).skill == "pick"
                                   and parse_subtask(subtasks[-1].data).status == "waiting", timeout=30), planner.text()[-3000:]

        # ---- garbage: reported, nothing changes (no selection, still ambiguous, nothing targeted)
        feedback.publish(String(data="the purple one"))
        assert planner.wait_for_output("not understood", timeout=20), planner.text()[-3000:]
        assert not selects and _values(g_status, "grounding")["status"] == "ambiguous" and not targets

        # ---- "the left one": grounding/select -> found, the left mug, user-confirmed
        feedback.publish(String(data="the left one"))
        assert ros_node.wait_until(lambda: len(selects) > 0, timeout=20), planner.text()[-3000:]
        req = parse_selection(selects[-1].data)
        assert (req.selector, req.source, req.object) == ("left", "user", "my_mug") and req.generation > 0

        def found_left():
            v = _values(g_status, "grounding")
            return v.get("status") == "found" and "user chose the left one" in v.get("reason", "") and targets

        assert ros_node.wait_until(found_left, timeout=30), (_values(g_status, "grounding"), grounding.text()[-3000:])
        t = targets[-1].pose.position
        assert targets[-1].header.frame_id == "panda_link0"
        assert abs(t.y - MUGS_Y[0]) < 0.03 and abs(t.x - 0.48) < 0.04, (t.x, t.y)
        assert "selection: user chose the left one" in grounding.text()

        # ---- the planner's pick goes on, towards the left mug
        def picking_left():
            if not subtasks:
                return False
            s = parse_subtask(subtasks[-1].data)
            pos = s.arguments.get("position")
            return s.skill == "pick" and s.status == "active" and pos is not None and abs(pos[1] - MUGS_Y[0]) < 0.03

        assert ros_node.wait_until(picking_left, timeout=30), (subtasks[-1].data if subtasks else None,
                                                               planner.text()[-3000:])
        assert _values(p_status, "planner").get("question", "") == ""
        # ---- online confirmation: the chosen view joined my mug's memory (bounded, rule re-derived)
        assert grounding.wait_for_output("online confirmation: added a confirmed view to 'my_mug'", timeout=30), (
            grounding.text()[-3000:])
        stored = PersonalObjectMemory(memory.root).get("my_mug")
        assert stored.online_views == 1 and len(stored.crops) == 5 and stored.rule is not None
        assert grounding.alive() and planner.alive()
    finally:
        stop.set()
        driver.join(timeout=2.0)
