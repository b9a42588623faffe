"""Recording from a real sim_node process to MCAP, read back with the mcap reader and decoded
with mcap-ros2-support: in-process (`run_recording`), through the CLI hook (`record_main`, as
`vla-stack record` runs it) and as `recorder_node`."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from std_msgs.msg import String

from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf

pytestmark = pytest.mark.ros


def read_back(path):
    """[(topic, schema name, decoded message)] of an MCAP file."""
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(ch.topic, sch.name, msg) for sch, ch, _raw, msg in reader.iter_decoded_messages()]


def test_record_sim_topics_to_mcap(start_node, ros_node, ros_env, tmp_path, _rclpy_context):
    sim = start_node(
        "sim_node", param_files=[config_path("sim_node.yaml")],
        params={"camera_rate": 3.0, "camera_width": 160, "camera_height": 120, "segmentation_rate": 0.0,
                "joint_state_rate": 100.0, "sensor_rate": 50.0},
    )
    node = ros_node.node
    assert ros_node.wait_until(lambda: node.count_publishers("/joint_states") >= 1, timeout=90), sim.text()
    # the sim is streaming (renderer up, sensors flowing) before recording starts
    images = ros_node.subscribe(itf.COLOR_IMAGE.name, itf.COLOR_IMAGE.msg_type, itf.COLOR_IMAGE.sub_qos)
    wrenches = ros_node.subscribe(itf.WRENCH.name, itf.WRENCH.msg_type, itf.WRENCH.sub_qos)
    assert ros_node.wait_until(lambda: len(images) >= 2 and len(wrenches) >= 2, timeout=90), sim.text()
    # a latched message published before the recorder starts must still be in the file
    latched = ros_node.publisher(itf.PLANNER_SUBTASK.name, String, itf.PLANNER_SUBTASK.pub_qos)
    latched.publish(String(data='{"skill": "wait"}'))

    # ---- 1. in process, default = all stack topics, for a few seconds
    from vla_stack.ros.record_cli import run_recording

    _rclpy, context = _rclpy_context
    out = tmp_path / "stack.mcap"
    summary = run_recording(out, duration=5.0, context=context, discovery_period=0.3)
    counts = Counter(t for t, _, _ in read_back(out))
    types = {t: s for t, s, _ in read_back(out)}
    by_topic = {t.topic: t for t in summary.topics}
    # counts depend on how fast discovery is on a loaded machine: only "some" is asserted
    assert counts["/joint_states"] > 5, (counts, summary.table())
    assert counts["/joint_states"] == by_topic["/joint_states"].count  # the summary counts what is in the file
    assert types["/joint_states"] == "sensor_msgs/msg/JointState"
    assert types["/camera/color/image_raw"] == "sensor_msgs/msg/Image"
    assert types["/wrench"] == "geometry_msgs/msg/WrenchStamped"
    assert counts["/planner/subtask"] == 1  # latched, published before recording began
    assert "/sim/ground_truth" not in counts  # evaluation-only: not a stack topic
    msgs = {t: m for t, _, m in read_back(out)}
    js = msgs["/joint_states"]
    assert len(js.name) == 9 and js.name[0] == "panda_joint1" and len(js.position) == 9
    img = msgs["/camera/color/image_raw"]
    assert (img.width, img.height, img.encoding) == (160, 120, "rgb8") and len(img.data) == 160 * 120 * 3
    assert msgs["/planner/subtask"].data == '{"skill": "wait"}'
    assert "/joint_states" in summary.table()

    # ---- 2. the CLI hook in its own process, explicit topic list + duration + JSON summary
    out2 = tmp_path / "cli.mcap"
    code = (
        "import argparse, sys\n"
        "from vla_stack.ros import record_cli\n"
        "p = argparse.ArgumentParser(); record_cli.add_record_arguments(p)\n"
        "sys.exit(record_cli.record_main(p.parse_args(sys.argv[1:])))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "joint_states", "wrench", "-o", str(out2), "--duration", "6",
         "--summary-json", str(tmp_path / "cli.json")],
        env=ros_env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "/joint_states" in proc.stdout and "messages in" in proc.stdout
    counts2 = Counter(t for t, _, _ in read_back(out2))
    assert set(counts2) == {"/joint_states", "/wrench"} and counts2["/joint_states"] > 5, proc.stdout
    assert (tmp_path / "cli.json").is_file()

    # ---- 3. recorder_node as a profile would start it; it stops by itself after `duration`
    out3 = tmp_path / "node.mcap"
    rec = start_node("recorder_node", params={"output": str(out3), "duration": 8.0, "topics": ["joint_states"]})
    assert ros_node.wait_until(lambda: not rec.alive(), timeout=90), rec.text()
    rec.wait_for_output("messages in", timeout=5)  # the summary is logged on the way out
    assert rec.returncode() == 0, rec.text()
    counts3 = Counter(t for t, _, _ in read_back(out3))
    assert set(counts3) == {"/joint_states"} and counts3["/joint_states"] > 5, rec.text()
    assert "/joint_states" in rec.text() and "messages in" in rec.text()
    assert sim.alive()
