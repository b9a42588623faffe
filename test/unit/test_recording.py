"""Recording core (no ROS): .msg definitions -> ros2msg schemas, topic selection, MCAP writing
read back with the mcap reader + mcap-ros2-support decoder."""

from __future__ import annotations

import struct

import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from vla_stack.core.recording import (
    DEFAULT_STACK_TOPIC_PATTERNS,
    McapRecording,
    MessageDefinitionError,
    MessageDefinitions,
    default_search_roots,
    select_topics,
)
from vla_stack.core.recording.msgdefs import SEPARATOR, field_types, split_type_name


def cdr_string(text: str) -> bytes:
    """CDR (little endian, XCDR1) encoding of a std_msgs/String, as DDS carries it."""
    data = text.encode() + b"\0"
    return b"\x00\x01\x00\x00" + struct.pack("<I", len(data)) + data


def test_definitions_come_from_the_installed_wheels():
    defs = MessageDefinitions()
    path = defs.definition_file("std_msgs/msg/String")
    assert path.name == "String.msg" and path.parent.parent.name == "std_msgs"
    assert any(str(path).startswith(str(r)) for r in default_search_roots())


def test_schema_contains_every_dependency_once_in_ros2msg_form():
    defs = MessageDefinitions()
    schema = defs.schema_text("geometry_msgs/msg/PoseStamped")
    sections = schema.split(SEPARATOR + "\n")
    names = [s.splitlines()[0] for s in sections[1:]]
    assert names == ["MSG: std_msgs/Header", "MSG: builtin_interfaces/Time", "MSG: geometry_msgs/Pose",
                     "MSG: geometry_msgs/Point", "MSG: geometry_msgs/Quaternion"]
    assert "Pose pose" in sections[0]
    # the schema is parseable by mcap-ros2-support for every stack message type
    from mcap.records import Schema

    for t in ("sensor_msgs/msg/Image", "sensor_msgs/msg/JointState", "diagnostic_msgs/msg/DiagnosticArray",
              "trajectory_msgs/msg/JointTrajectory", "std_msgs/msg/Float32MultiArray", "geometry_msgs/msg/WrenchStamped",
              "visualization_msgs/msg/MarkerArray", "rosgraph_msgs/msg/Clock", "sensor_msgs/msg/CameraInfo"):
        s = Schema(id=1, name=t, encoding="ros2msg", data=defs.schema_text(t).encode())
        assert DecoderFactory().decoder_for("cdr", s) is not None, t


def test_definition_lookup_errors_are_clear(tmp_path):
    with pytest.raises(MessageDefinitionError, match="no definition of nonexistent_msgs/msg/Foo"):
        MessageDefinitions().definition_file("nonexistent_msgs/msg/Foo")
    with pytest.raises(MessageDefinitionError, match="not a message type"):
        split_type_name("std_srvs/srv/Trigger/Request")
    with pytest.raises(MessageDefinitionError, match="no search roots"):
        MessageDefinitions(roots=[]).definition_file("std_msgs/msg/String")


def test_field_type_parsing_skips_constants_comments_and_suffixes():
    text = "# comment\nuint8 OK=0\nstring<=10 name\nfloat64[] data\ngeometry_msgs/Point[3] points\nHeader header  # c\nint32 x 5\n"
    assert field_types(text) == ["string", "float64", "geometry_msgs/Point", "Header", "int32"]


def test_private_definition_tree(tmp_path):
    msg = tmp_path / "share" / "my_msgs" / "msg"
    msg.mkdir(parents=True)
    (msg / "Outer.msg").write_text("Inner a\nInner[] b\nstd_msgs/Header header\n")
    (msg / "Inner.msg").write_text("int32 v\n")
    defs = MessageDefinitions(roots=[tmp_path, *default_search_roots()])
    assert defs.dependencies("my_msgs/msg/Outer") == ["my_msgs/msg/Inner", "std_msgs/msg/Header", "builtin_interfaces/msg/Time"]


def test_topic_selection():
    available = {
        "/joint_states": ["sensor_msgs/msg/JointState"],
        "/camera/color/image_raw": ["sensor_msgs/msg/Image"],
        "/planner/subtask": ["std_msgs/msg/String"],
        "/sim_node/status": ["diagnostic_msgs/msg/DiagnosticArray"],
        "/sim/ground_truth": ["std_msgs/msg/String"],
        "/parameter_events": ["rcl_interfaces/msg/ParameterEvent"],
        "/weird": ["std_msgs/msg/String", "std_msgs/msg/Bool"],
        "/robot2/joint_states": ["sensor_msgs/msg/JointState"],
    }
    stack, _ = select_topics(available)
    assert set(stack) == {"/joint_states", "/camera/color/image_raw", "/planner/subtask", "/sim_node/status"}
    assert stack["/joint_states"] == "sensor_msgs/msg/JointState"
    picked, _ = select_topics(available, topics=["joint_states", "planner/*"])
    assert set(picked) == {"/joint_states", "/planner/subtask"}
    everything, notes = select_topics(available, all_topics=True, exclude=["camera/*", "/parameter_events"])
    assert "/camera/color/image_raw" not in everything and "/sim/ground_truth" in everything
    assert "/weird" not in everything and any("/weird" in n for n in notes)
    namespaced, _ = select_topics(available, namespace="robot2")
    assert set(namespaced) == {"/robot2/joint_states"}
    assert "joint_states" in DEFAULT_STACK_TOPIC_PATTERNS


def test_mcap_written_and_read_back(tmp_path):
    path = tmp_path / "out" / "strings.mcap"
    clock = iter(range(0, 10**12, 10**9))
    rec = McapRecording(path, metadata={"run": "unit"}, clock_ns=lambda: next(clock))
    defs = MessageDefinitions()
    rec.add_topic("/chatter", "std_msgs/msg/String", defs.schema_text("std_msgs/msg/String"))
    rec.add_topic("/chatter", "std_msgs/msg/String", defs.schema_text("std_msgs/msg/String"))  # no-op
    for i in range(5):
        rec.write("/chatter", cdr_string(f"hello {i}"), log_time_ns=1_000_000_000 + i * 100_000_000)
    with pytest.raises(KeyError, match="not registered"):
        rec.write("/other", b"", 0)
    summary = rec.close()
    assert rec.close().total_messages == 5  # idempotent
    assert summary.total_messages == 5 and summary.topics[0].rate_hz == pytest.approx(10.0)
    assert summary.file_bytes == path.stat().st_size > 0
    assert "/chatter" in summary.table() and summary.to_dict()["topics"][0]["count"] == 5

    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        assert header.profile == "ros2"
        decoded = [(ch.topic, sch.name, sch.encoding, ch.message_encoding, msg.data)
                   for sch, ch, _raw, msg in reader.iter_decoded_messages()]
        meta = list(reader.iter_metadata())
    assert [d[4] for d in decoded] == [f"hello {i}" for i in range(5)]
    assert {d[:4] for d in decoded} == {("/chatter", "std_msgs/msg/String", "ros2msg", "cdr")}
    assert meta[0].name == "vla_stack" and meta[0].metadata["run"] == "unit"


def test_unparseable_schema_is_refused(tmp_path):
    rec = McapRecording(tmp_path / "bad.mcap")
    with pytest.raises(ValueError, match="cannot be parsed"):
        rec.add_topic("/x", "my_msgs/msg/Bad", "this is not a definition [[[")
    assert rec.close().topics == []
    with pytest.raises(ValueError, match="compression"):
        McapRecording(tmp_path / "c.mcap", compression="gzip")
