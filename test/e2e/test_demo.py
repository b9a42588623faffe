"""The README's demo command, end to end: real processes, real DDS, a video and a summary."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros


def test_demo_picks_my_mug_and_writes_video(tmp_path, ros_env):
    exe = Path(sys.executable).parent / "vla-stack"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "vla_stack.cli"]
    env = dict(ros_env)
    env.pop("ROS_DOMAIN_ID")  # the demo picks its own private domain
    out = subprocess.run(cmd + ["demo", "--episodes", "1", "--seed", "3", "--out", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    ep = summary["episodes"][0]
    assert ep["success"] and ep["picked_mine"] and ep["phase"] == "done"
    assert "total: 1/1 succeeded" in out.stdout

    import imageio.v2 as imageio

    reader = imageio.get_reader(tmp_path / "demo.mp4")
    frame = reader.get_data(0)
    assert frame.shape == (480, 640, 3) and reader.count_frames() >= 10
