"""Round trips and malformed-message errors of vla_stack.ros.conversions (no DDS needed)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sensor_msgs.msg import Image
from sensor_msgs.msg import JointState as JointStateMsg
from std_msgs.msg import Float32MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_stack.core.types import ActionChunk, CameraIntrinsics, JointState, Pose, Wrench
from vla_stack.ros import conversions as cv

FAST = settings(max_examples=40, deadline=None)
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))


@FAST
@given(sizes.flatmap(lambda hw: arrays(np.uint8, (hw[0], hw[1], 3))), st.sampled_from(["rgb8", "bgr8"]))
def test_colour_image_round_trip(img, encoding):
    msg = cv.numpy_to_image(img, encoding, stamp=12.5, frame_id="cam")
    back = cv.image_to_numpy(msg)
    assert back.dtype == np.uint8 and np.array_equal(back, img)
    assert msg.header.frame_id == "cam" and cv.stamp_to_seconds(msg.header.stamp) == pytest.approx(12.5)


@FAST
@given(sizes.flatmap(lambda hw: st.tuples(
    arrays(np.uint8, hw), arrays(np.uint16, hw), arrays(np.float32, hw, elements=st.floats(0, 20, width=32)))))
def test_single_channel_round_trips(imgs):
    mono, mm, metres = imgs
    assert np.array_equal(cv.image_to_numpy(cv.numpy_to_image(mono, "mono8")), mono)
    assert np.array_equal(cv.image_to_numpy(cv.numpy_to_image(mm, "16UC1")), mm)
    assert np.array_equal(cv.image_to_numpy(cv.numpy_to_image(metres, "32FC1")), metres)


def test_image_read_is_zero_copy_view():
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    msg = cv.numpy_to_image(img, "rgb8")
    view = cv.image_to_numpy(msg)
    assert not view.flags.writeable
    assert not view.flags.owndata  # a view of the message buffer, not a copy


def test_padded_rows_are_read_by_step():
    img = np.arange(3 * 4, dtype=np.uint8).reshape(3, 4)
    msg = Image(height=3, width=4, encoding="mono8", step=6)
    padded = np.zeros((3, 6), np.uint8)
    padded[:, :4] = img
    msg.data = padded.tobytes()
    assert np.array_equal(cv.image_to_numpy(msg), img)


def test_bgr_frame_becomes_rgb():
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    frame = cv.image_to_frame(cv.numpy_to_image(bgr, "bgr8"))
    assert frame.encoding == "rgb8" and frame.image[0, 0, 2] == 255 and frame.image[0, 0, 0] == 0


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda m: setattr(m, "encoding", "yuv422"), "unsupported image encoding"),
        (lambda m: setattr(m, "step", 5), "smaller than one row"),
        (lambda m: setattr(m, "data", bytes(10)), "expected height"),
        (lambda m: (setattr(m, "height", 0)), "empty image"),
    ],
)
def test_malformed_images_raise_clear_errors(mutate, needle):
    msg = cv.numpy_to_image(np.zeros((4, 4, 3), np.uint8), "rgb8")
    mutate(msg)
    with pytest.raises(cv.MessageError, match=needle):
        cv.image_to_numpy(msg)


def test_depth_conversions_to_metres():
    mm = np.array([[0, 1000], [250, 65535]], np.uint16)
    d = cv.depth_to_metres(cv.numpy_to_image(mm, "16UC1"))
    assert np.isnan(d[0, 0]) and d[0, 1] == pytest.approx(1.0) and d[1, 0] == pytest.approx(0.25)
    m = np.array([[0.0, 1.5]], np.float32)
    d2 = cv.depth_to_metres(cv.numpy_to_image(m, "32FC1"))
    assert np.isnan(d2[0, 0]) and d2[0, 1] == pytest.approx(1.5)
    with pytest.raises(cv.MessageError, match="depth image must be"):
        cv.depth_to_metres(cv.numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8"))


def test_camera_info_round_trip():
    intr = CameraIntrinsics(640, 480, 600.0, 601.0, 319.5, 239.5, "plumb_bob", (0.1, -0.2, 0.0, 0.0, 0.01), "cam")
    back = cv.camera_info_to_intrinsics(cv.intrinsics_to_camera_info(intr, 3.0))
    assert back == intr
    bad = cv.intrinsics_to_camera_info(intr)
    bad.k = [float("nan")] * 9
    with pytest.raises(cv.MessageError, match="K must be 9 finite"):
        cv.camera_info_to_intrinsics(bad)


@FAST
@given(st.integers(1, 9).flatmap(lambda n: st.tuples(
    st.lists(st.text("abcdefgh_", min_size=1, max_size=8), min_size=n, max_size=n, unique=True),
    arrays(np.float64, n, elements=finite), arrays(np.float64, n, elements=finite))),
    st.floats(0, 1e6, allow_nan=False))
def test_joint_state_round_trip(data, stamp):
    names, pos, vel = data
    state = JointState(tuple(names), pos, vel, None, stamp)
    back = cv.joint_state_to_core(cv.joint_state_to_msg(state))
    assert back.names == state.names and np.array_equal(back.positions, pos) and np.array_equal(back.velocities, vel)
    assert back.efforts is None and back.stamp == pytest.approx(stamp, abs=1e-9)


def test_joint_state_length_mismatch_is_rejected():
    msg = JointStateMsg(name=["a", "b"], position=[1.0])
    with pytest.raises(cv.MessageError, match="2 names but 1 positions"):
        cv.joint_state_to_core(msg)
    msg = JointStateMsg(name=["a", "b"], position=[1.0, 2.0], velocity=[1.0])
    with pytest.raises(cv.MessageError, match="1 velocity"):
        cv.joint_state_to_core(msg)


@FAST
@given(st.integers(1, 8), st.integers(1, 16), st.data())
def test_chunk_round_trip(n, h, data):
    pos = data.draw(arrays(np.float64, (h, n), elements=finite))
    times = np.cumsum(data.draw(arrays(np.float64, h, elements=st.floats(0.001, 1.0))))
    vel = data.draw(st.one_of(st.none(), arrays(np.float64, (h, n), elements=finite)))
    chunk = ActionChunk(tuple(f"j{i}" for i in range(n)), times, pos, stamp=100.25, velocities=vel)
    back = cv.joint_trajectory_to_chunk(cv.chunk_to_joint_trajectory(chunk))
    assert back.joint_names == chunk.joint_names
    assert np.allclose(back.times, times, atol=1e-9) and np.array_equal(back.positions, pos)
    assert back.stamp == pytest.approx(100.25)
    if vel is None:
        assert back.velocities is None
    else:
        assert np.array_equal(back.velocities, vel)


def test_malformed_trajectories_raise():
    msg = JointTrajectory(joint_names=["a", "b"])
    with pytest.raises(cv.MessageError, match="no points"):
        cv.joint_trajectory_to_chunk(msg)
    msg.points = [JointTrajectoryPoint(positions=[1.0])]
    with pytest.raises(cv.MessageError, match="1 positions for 2 joint names"):
        cv.joint_trajectory_to_chunk(msg)
    msg.points = [JointTrajectoryPoint(positions=[1.0, float("nan")])]
    with pytest.raises(cv.MessageError, match="NaN"):
        cv.joint_trajectory_to_chunk(msg)
    msg.points = [JointTrajectoryPoint(positions=[1.0, 2.0], velocities=[1.0])]
    with pytest.raises(cv.MessageError, match="velocities"):
        cv.joint_trajectory_to_chunk(msg)


def _trajectory(velocities: list[list[float]]) -> JointTrajectory:
    msg = JointTrajectory(joint_names=["a", "b"])
    msg.points = [JointTrajectoryPoint(positions=[0.1 * i, 0.2 * i], velocities=v) for i, v in enumerate(velocities)]
    return msg


def test_trajectory_fields_use_velocities_only_when_every_point_has_a_full_finite_vector():
    """The one conversion sim_node and safety_controller_node share (they used to disagree: any vs all)."""
    full = cv.joint_trajectory_fields(_trajectory([[1.0, 2.0], [3.0, 4.0]]))
    assert np.array_equal(full["velocities"], [[1.0, 2.0], [3.0, 4.0]]) and full["velocity_note"] == ""
    none = cv.joint_trajectory_fields(_trajectory([[], []]))
    assert none["velocities"] is None and none["velocity_note"] == ""
    assert len(none["positions"]) == 2 and none["names"] == ["a", "b"]
    for rows, why in (([[1.0, 2.0], []], "only 1 of 2 points"), ([[1.0], [2.0]], "point 0 has 1 values for 2"),
                      ([[1.0, float("nan")], [0.0, 0.0]], "NaN")):
        partial = cv.joint_trajectory_fields(_trajectory(rows))
        assert partial["velocities"] is None, rows
        assert why in partial["velocity_note"] and "positions only" in partial["velocity_note"]


def test_trajectory_fields_of_an_empty_trajectory_have_no_velocities():
    f = cv.joint_trajectory_fields(JointTrajectory(joint_names=["a"]))
    assert f["velocities"] is None and f["velocity_note"] == "" and f["times"].shape == (0,)


@FAST
@given(arrays(np.float64, 3, elements=finite), arrays(np.float64, 3, elements=finite))
def test_wrench_round_trip(f, t):
    w = cv.wrench_to_core(cv.wrench_to_msg(Wrench(f, t, 1.5, "ft")))
    assert np.array_equal(w.force, f) and np.array_equal(w.torque, t) and w.frame_id == "ft"


@FAST
@given(arrays(np.float64, 3, elements=finite),
       arrays(np.float64, 4, elements=st.floats(-1, 1)).filter(lambda q: np.linalg.norm(q) > 0.1))
def test_pose_round_trip(p, q):
    q = q / np.linalg.norm(q)
    back = cv.pose_to_core(cv.pose_to_msg(Pose(p, q, 2.0, "base")))
    assert np.array_equal(back.position, p) and np.allclose(back.orientation, q) and back.frame_id == "base"


def test_pose_rejects_nan_and_zero_quaternion():
    msg = cv.pose_to_msg(Pose(np.zeros(3)))
    msg.pose.orientation.w = 0.0
    with pytest.raises(cv.MessageError, match="zero quaternion"):
        cv.pose_to_core(msg)
    msg.pose.position.x = float("inf")
    with pytest.raises(cv.MessageError, match="NaN"):
        cv.pose_to_core(msg)


@FAST
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3).flatmap(
    lambda shape: arrays(np.float32, tuple(shape), elements=st.floats(-1e3, 1e3, width=32))))
def test_float32_array_round_trip(arr):
    back = cv.float32_array_to_numpy(cv.numpy_to_float32_array(arr))
    assert back.shape == arr.shape and np.array_equal(back, arr)


def test_float32_array_layout_mismatch_is_rejected():
    msg = cv.numpy_to_float32_array(np.zeros((2, 3), np.float32))
    msg.data = [1.0, 2.0]
    with pytest.raises(cv.MessageError, match="does not match"):
        cv.float32_array_to_numpy(msg)
    assert cv.float32_array_to_numpy(Float32MultiArray(data=[1.0, 2.0])).shape == (2,)


@FAST
@given(st.floats(0, 4e9, allow_nan=False))
def test_stamp_round_trip(t):
    assert cv.stamp_to_seconds(cv.seconds_to_stamp(t)) == pytest.approx(t, abs=1e-9 * max(1.0, t))


def test_diagnostics_round_trip():
    msg = cv.diagnostics_msg("safety", "WARN", "holding", {"rejected": 3}, 1.0)
    d = cv.diagnostics_to_dict(msg)
    assert d["safety"] == {"level": "WARN", "message": "holding", "values": {"rejected": "3"}}
