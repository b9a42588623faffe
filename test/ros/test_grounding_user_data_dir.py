"""The grounding node's default memory is the user's data directory, as `vla-stack --data-dir` fills it (issue 12)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from vla_stack.paths import config_path

pytestmark = pytest.mark.ros


def test_grounding_node_reads_what_enroll_wrote_into_the_data_dir(start_node, ros_env, tmp_path):
    """`vla-stack --data-dir D enroll` writes D/personal_objects; grounding_node (memory_root "") with
    VLA_STACK_HOME=D finds the object there, as under `vla-stack --data-dir D up sim`."""
    img = np.full((96, 96, 3), 128, np.uint8)
    cv2.circle(img, (48, 48), 25, (40, 60, 200), -1)
    mask = np.zeros((96, 96), np.uint8)
    cv2.circle(mask, (48, 48), 25, 255, -1)
    cv2.imwrite(str(tmp_path / "ref.png"), img[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    data = tmp_path / "data"
    out = subprocess.run([sys.executable, "-m", "vla_stack.cli", "--data-dir", str(data), "enroll", "my_mug",
                          str(tmp_path / "ref.png"), "--mask", str(tmp_path / "mask.png")],
                         capture_output=True, text=True, timeout=120, env=ros_env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (data / "personal_objects" / "my_mug" / "object.json").is_file()
    node = start_node("grounding_node", param_files=[config_path("grounding_node.yaml")],
                      env={"VLA_STACK_HOME": str(data)})
    assert node.wait_for_output(f"memory {data / 'personal_objects'} with ['my_mug']", timeout=60), node.text()[-3000:]
    assert node.alive()
