"""grounding_node as a real process beside the simulated robot.

Processes: sim_node (MuJoCo Panda + 3 look-alike mugs, RGB-D scene camera) and grounding_node
(offline backends) with a personal memory enrolled from the simulator's rendered reference
views of scene SEED's own mug (`vla-stack enroll my_mug --from-sim SEED`). The test reads the
simulator's ground truth (evaluation-only topic) to judge.

Checks: a garbage instruction is reported (no_reference, "instruction rejected") and nothing is
targeted; "bring my cup to the tray" -> status found, the rewritten instruction, a highlighted
image, a mask over my mug (not a look-alike) and a 3D grasp point in panda_link0 within
tolerance of my mug's true position; an empty image is logged and survived; "not that one"
(grounding/exclude at my mug) removes my mug from the candidates and clearing it restores it;
a grounding node whose depth topic carries nothing logs why and keeps publishing images.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vla_stack.core.contracts import ExclusionRequest, encode_exclusion, parse_ground_truth
from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import diagnostics_to_dict, image_to_numpy, numpy_to_image

pytestmark = pytest.mark.ros

SEED = 1003
STATUS = itf.status("grounding")


def _status(msgs: list) -> dict | None:
    if not msgs:
        return None
    return diagnostics_to_dict(msgs[-1])["grounding"]["values"]


@pytest.fixture(scope="module")
def memory_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("personal_objects")
    out = subprocess.run(
        [sys.executable, "-m", "vla_stack.cli", "enroll", "my_mug", "--from-sim", str(SEED), "--memory", str(root)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return root


def test_grounding_node_finds_highlights_and_locates_my_mug(start_node, ros_node, memory_dir):
    start_node("sim_node", param_files=[config_path("sim_node.yaml")],
               params={"seed": SEED, "num_mugs": 3, "camera_rate": 5.0, "wrist_camera_rate": 0.0,
                       "segmentation_rate": 0.0, "ground_truth_rate": 2.0})
    node = start_node("grounding_node", param_files=[config_path("grounding_node.yaml")],
                      params={"use_sim_time": True, "memory_root": str(memory_dir)})
    gt_msgs = ros_node.subscribe(itf.GROUND_TRUTH.name, String, itf.GROUND_TRUTH.sub_qos)
    status = ros_node.subscribe(STATUS.name, DiagnosticArray, STATUS.sub_qos)
    targets = ros_node.subscribe(itf.GROUNDING_TARGET.name, PoseStamped, itf.GROUNDING_TARGET.sub_qos)
    places = ros_node.subscribe(itf.GROUNDING_PLACE.name, PoseStamped, itf.GROUNDING_PLACE.sub_qos)
    rewritten = ros_node.subscribe(itf.GROUNDING_INSTRUCTION.name, String, itf.GROUNDING_INSTRUCTION.sub_qos)
    prompted = ros_node.subscribe(itf.PROMPTED_IMAGE.name, Image)
    masks = ros_node.subscribe(itf.GROUNDING_MASK.name, Image)
    colours = ros_node.subscribe(itf.COLOR_IMAGE.name, Image)
    instr = ros_node.publisher(itf.INSTRUCTION.name, String, itf.INSTRUCTION.pub_qos)
    assert node.wait_for_output("grounding_node: cameras", timeout=60), node.text()[-3000:]
    assert ros_node.wait_until(lambda: gt_msgs and len(prompted) > 2, timeout=60), node.text()[-3000:]
    gt = parse_ground_truth(gt_msgs[-1].data).to_dict()
    mine = next(m for m in gt["mugs"] if m["mine"])

    # --- garbage instruction: reported, nothing targeted
    assert ros_node.publish_until(
        instr, String(data="\x00\x07 ;;;; %%%% \x1b"),
        lambda: (s := _status(status)) is not None and "instruction rejected" in s["reason"], timeout=30,
    ), node.text()[-3000:]
    assert _status(status)["status"] == "no_reference" and not targets

    # --- my cup: found, rewritten, highlighted, located
    status.clear()
    assert ros_node.publish_until(
        instr, String(data="bring my cup to the tray"),
        lambda: (s := _status(status)) is not None and s["status"] == "found" and targets, timeout=60,
    ), (_status(status), node.text()[-3000:])
    assert ros_node.wait_until(lambda: rewritten and "highlighted" in rewritten[-1].data, timeout=10)
    assert rewritten[-1].data == "bring the red-highlighted cup to the tray"
    t = targets[-1]
    assert t.header.frame_id == "panda_link0"
    p = np.array([t.pose.position.x, t.pose.position.y, t.pose.position.z])
    true_xy = np.array(mine["position"][:2])
    assert np.linalg.norm(p[:2] - true_xy) < 0.025, (p, mine["position"])
    others = [np.array(m["position"][:2]) for m in gt["mugs"] if not m["mine"]]
    assert all(np.linalg.norm(p[:2] - o) > 0.05 for o in others)
    assert 0.02 < p[2] < 0.10  # below the rim of a 9 cm mug
    # the place point: where my mug's grasp point goes on the tray (found from depth, not ground truth)
    assert ros_node.wait_until(lambda: len(places) > 0, timeout=20), node.text()[-3000:]
    from vla_stack.lab.policy.simulation import grasp_and_place

    _, _, true_place, _ = grasp_and_place(gt, mine["name"])
    q = places[-1].pose.position
    assert places[-1].header.frame_id == "panda_link0"
    assert np.linalg.norm(np.array([q.x, q.y, q.z]) - true_place) < 0.04, ([q.x, q.y, q.z], true_place)
    # the highlighted image differs from the raw frame on the mask, and only near it
    ros_node.wait_until(lambda: len(masks) > 0, timeout=10)
    with ros_node.lock:
        pairs = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec: m for m in masks}
        shown = [(im, pairs.get(im.header.stamp.sec * 10**9 + im.header.stamp.nanosec)) for im in prompted]
        raw = {c.header.stamp.sec * 10**9 + c.header.stamp.nanosec: c for c in colours}
    pair = next(((im, mk) for im, mk in reversed(shown) if mk is not None
                 and (im.header.stamp.sec * 10**9 + im.header.stamp.nanosec) in raw), None)
    assert pair is not None
    im, mk = pair
    mask = image_to_numpy(mk) > 0
    base = image_to_numpy(raw[im.header.stamp.sec * 10**9 + im.header.stamp.nanosec])
    changed = np.any(image_to_numpy(im) != base, axis=2)
    assert mask.sum() > 200 and changed[mask].mean() > 0.9
    assert changed[~mask].mean() < 0.02  # only the outline around the mask
    s = _status(status)
    assert s["object"] == "my_mug" and len(s["candidates"].split(",")) >= 2  # scores of every candidate

    # --- an empty image: logged, survived
    bad = ros_node.publisher(itf.COLOR_IMAGE.name, Image, itf.COLOR_IMAGE.pub_qos)
    empty = Image(encoding="rgb8", height=0, width=0, step=0)
    assert ros_node.publish_until(bad, empty, lambda: node.wait_for_output("colour image rejected", timeout=0.01),
                                  timeout=30), node.text()[-3000:]
    n = len(targets)
    assert ros_node.wait_until(lambda: len(targets) > n + 2, timeout=30)

    # --- "not that one" at my mug: my mug is no candidate any more; clearing restores it
    excl = ros_node.publisher(itf.GROUNDING_EXCLUDE.name, String, itf.GROUNDING_EXCLUDE.pub_qos)
    request = ExclusionRequest((tuple(float(v) for v in p),), 0.05, "panda_link0", "red-highlighted cup",
                               "bring my cup to the tray", 0.0, "user: not that one")
    excl.publish(String(data=encode_exclusion(request)))
    assert node.wait_for_output("exclusions: 1 instance", timeout=20), node.text()[-3000:]

    def excluded_verdict() -> bool:
        s = _status(status)
        return s is not None and s.get("exclusions") == "1" and s["mode"] == "detect" and s["status"] != "found"

    assert ros_node.wait_until(excluded_verdict, timeout=30), (_status(status), node.text()[-2000:])
    n = len(targets)
    excl.publish(String(data=encode_exclusion(dataclasses.replace(request, exclusions=()))))
    assert ros_node.wait_until(lambda: (s := _status(status)) is not None and s["status"] == "found"
                               and s.get("exclusions") == "0" and len(targets) > n, timeout=30)
    q = targets[-1].pose.position
    assert np.linalg.norm(np.array([q.x, q.y]) - true_xy) < 0.025
    assert node.alive()


def test_grounding_node_without_depth_says_why_and_keeps_running(start_node, ros_node, memory_dir):
    start_node("sim_node", param_files=[config_path("sim_node.yaml")],
               params={"seed": SEED, "camera_rate": 5.0, "wrist_camera_rate": 0.0, "segmentation_rate": 0.0})
    node = start_node("grounding_node", param_files=[config_path("grounding_node.yaml")],
                      params={"use_sim_time": True, "memory_root": str(memory_dir)},
                      remaps={"camera/aligned_depth_to_color/image_raw": "camera/no_depth_here"})
    status = ros_node.subscribe(STATUS.name, DiagnosticArray, STATUS.sub_qos)
    prompted = ros_node.subscribe(itf.PROMPTED_IMAGE.name, Image)
    targets = ros_node.subscribe(itf.GROUNDING_TARGET.name, PoseStamped, itf.GROUNDING_TARGET.sub_qos)
    instr = ros_node.publisher(itf.INSTRUCTION.name, String, itf.INSTRUCTION.pub_qos)
    assert node.wait_for_output("grounding_node: cameras", timeout=60), node.text()[-3000:]
    assert ros_node.publish_until(instr, String(data="bring my cup to the tray"),
                                  lambda: (s := _status(status)) is not None and s["status"] == "not_found",
                                  timeout=60), node.text()[-3000:]
    assert node.wait_for_output("no depth frame within", timeout=10)
    n = len(prompted)
    assert ros_node.wait_until(lambda: len(prompted) > n + 3, timeout=30)
    assert not targets and node.alive()
    # a frame with the wrong encoding is rejected with the reason
    bad = ros_node.publisher(itf.COLOR_IMAGE.name, Image, itf.COLOR_IMAGE.pub_qos)
    assert ros_node.publish_until(bad, numpy_to_image(np.zeros((4, 4), np.float32), "32FC1"),
                                  lambda: node.wait_for_output("colour image rejected", timeout=0.01),
                                  timeout=30), node.text()[-3000:]
