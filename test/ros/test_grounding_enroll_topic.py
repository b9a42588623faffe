"""Run-time enrolment over `grounding/enroll` into a real grounding_node process (issue 13).

A request with a black photo is refused with the reason and stores nothing; a good request with
a "not mine" photo stores the object, its "not mine" look-alike and its own decision rule, and
the node logs the expected accept rates.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from std_msgs.msg import String

from vla_stack.core.contracts import EnrollRequest, encode_enroll
from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf

pytestmark = pytest.mark.ros


def photo(path, accent, shift: int, seed: int) -> str:
    """An RGBA photo of a dotted 'mug' (alpha = the object), dots shifted by `shift` px (another side)."""
    rng = np.random.default_rng(seed)
    rgb = np.full((160, 160, 3), 90, np.uint8)
    alpha = np.zeros((160, 160), np.uint8)
    cv2.rectangle(rgb, (50, 30), (110, 130), (226, 214, 196), -1)
    cv2.rectangle(alpha, (50, 30), (110, 130), 255, -1)
    for y in range(40, 130, 18):
        for x in range(50 + shift % 15, 110, 15):
            cv2.circle(rgb, (x, y), 4, accent, -1)
    rgb = np.clip(rgb.astype(np.float32) + rng.normal(0, 2.0, rgb.shape), 0, 255).astype(np.uint8)
    rgba = np.dstack([rgb, alpha])
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    return str(path)


def test_enrolment_over_the_topic_checks_photos_and_stores_the_objects_own_rule(start_node, ros_node, tmp_path):
    memory = tmp_path / "memory"
    views = [photo(tmp_path / f"view{i}.png", (176, 70, 46), 4 * i, i) for i in range(4)]
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((160, 160, 3), np.uint8))
    not_mine = photo(tmp_path / "blue.png", (46, 70, 176), 0, 9)
    node = start_node("grounding_node", param_files=[config_path("grounding_node.yaml")],
                      params={"memory_root": str(memory)})
    pub = ros_node.publisher(itf.GROUNDING_ENROLL.name, String, itf.GROUNDING_ENROLL.pub_qos)
    assert node.wait_for_output("grounding_node: cameras", timeout=60), node.text()[-3000:]
    assert ros_node.wait_until(lambda: pub.get_subscription_count() > 0, timeout=30)

    pub.publish(String(data=encode_enroll(EnrollRequest("my_mug", "cup", (*views[:3], str(black))))))
    assert node.wait_for_output("enrolment of 'my_mug' failed", timeout=60), node.text()[-3000:]
    assert "reference 3 is black" in node.text() and "nothing was stored" in node.text()
    assert not (memory / "my_mug").exists()

    pub.publish(String(data=encode_enroll(EnrollRequest("my_mug", "cup", tuple(views), not_mine=(not_mine,)))))
    assert node.wait_for_output("enrolled 'my_mug'", timeout=60), node.text()[-3000:]
    assert "expected true accept" in node.text() and "1 'not mine'" in node.text()
    meta = json.loads((memory / "my_mug" / "object.json").read_text())
    assert meta["decision_rule"]["negatives"] >= 1 and len(meta["negatives"]) == 1
    assert (memory / "my_mug" / "neg_00.png").is_file()
    assert node.alive()
