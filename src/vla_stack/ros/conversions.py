"""Every ROS message <-> core type conversion of the stack, in one place.

Reads are zero-copy where the message allows it (image data is viewed with `np.frombuffer`,
never `list()`-ed). Every `*_to_*` reading function raises `MessageError` with a reason that
names the message field, so nodes can log "rejected: <reason>" and carry on.
"""

from __future__ import annotations

import array
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped, WrenchStamped
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.msg import JointState as JointStateMsg
from std_msgs.msg import Float32MultiArray, Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from vla_stack.core.sensors.calibration import CameraCalibration
from vla_stack.core.types import ActionChunk, CameraFrame, CameraIntrinsics, JointState, Pose, Wrench


class MessageError(ValueError):
    """A message could not be converted; the text says which field and why."""


# ----------------------------------------------------------------------------- time
def stamp_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def seconds_to_stamp(seconds: float) -> Time:
    """float seconds (>= 0) -> builtin_interfaces/Time."""
    if not math.isfinite(seconds) or seconds < 0:
        raise MessageError(f"stamp must be finite and >= 0, got {seconds}")
    sec = int(math.floor(seconds))
    nanosec = int(round((seconds - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return Time(sec=sec, nanosec=nanosec)


def duration_to_seconds(d: Duration) -> float:
    """builtin_interfaces/Duration -> float seconds."""
    return float(d.sec) + 1e-9 * float(d.nanosec)


def seconds_to_duration(seconds: float) -> Duration:
    """float seconds -> builtin_interfaces/Duration (negative durations allowed, as ROS does)."""
    if not math.isfinite(seconds):
        raise MessageError(f"duration must be finite, got {seconds}")
    sec = int(math.floor(seconds))
    nanosec = int(round((seconds - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return Duration(sec=sec, nanosec=nanosec)


# ----------------------------------------------------------------------------- images
# encoding -> (numpy dtype, channels)
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}


def image_to_numpy(msg: Image) -> np.ndarray:
    """View a sensor_msgs/Image as an ndarray without copying.

    Returns (H, W, C) for multi-channel encodings, (H, W) for single-channel ones; dtype per
    encoding. The array is read-only (it views the message buffer); `.copy()` it to modify.
    Rows padded beyond width*channels*itemsize (step > minimum) are handled by striding.

    Raises MessageError on an unsupported encoding, an empty image, a step smaller than a
    row, or data whose size does not match height*step.
    """
    if msg.encoding not in IMAGE_ENCODINGS:
        raise MessageError(f"unsupported image encoding '{msg.encoding}' (supported: {sorted(IMAGE_ENCODINGS)})")
    dtype, channels = IMAGE_ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise MessageError(f"empty image ({w}x{h})")
    row = w * channels * dtype.itemsize
    if step < row:
        raise MessageError(f"image step {step} is smaller than one row ({w} px x {channels} ch x {dtype.itemsize} B = {row})")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size != h * step:
        raise MessageError(f"image data has {buf.size} bytes, expected height*step = {h}*{step} = {h * step}")
    big_endian_host = np.little_endian is False
    if dtype.itemsize > 1 and bool(msg.is_bigendian) != big_endian_host:
        dtype = dtype.newbyteorder()
    rows = buf.reshape(h, step)[:, :row]
    arr = rows.view(dtype) if rows.flags.c_contiguous else np.ascontiguousarray(rows).view(dtype)
    arr = arr.reshape(h, w, channels) if channels > 1 else arr.reshape(h, w)
    arr.flags.writeable = False
    return arr


def numpy_to_image(array: np.ndarray, encoding: str, stamp: float = 0.0, frame_id: str = "") -> Image:
    """ndarray -> sensor_msgs/Image. `array` must match `encoding` in dtype and channel count."""
    if encoding not in IMAGE_ENCODINGS:
        raise MessageError(f"unsupported image encoding '{encoding}'")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    array = np.asarray(array)
    if array.dtype != dtype:
        raise MessageError(f"encoding {encoding} needs dtype {dtype}, got {array.dtype}")
    if array.ndim == 2 and channels == 1:
        h, w = array.shape
    elif array.ndim == 3 and array.shape[2] == channels:
        h, w = array.shape[:2]
    else:
        raise MessageError(f"encoding {encoding} needs {channels} channel(s), got array of shape {array.shape}")
    if h == 0 or w == 0:
        raise MessageError(f"empty image ({w}x{h})")
    msg = Image()
    msg.header.stamp = seconds_to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(h), int(w)
    msg.encoding = encoding
    msg.is_bigendian = 0 if np.little_endian else 1
    msg.step = int(w * channels * dtype.itemsize)
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def image_to_frame(msg: Image, want_rgb: bool = True) -> CameraFrame:
    """sensor_msgs/Image -> CameraFrame. bgr8/bgra8/rgba8 become rgb8 when `want_rgb` (one copy)."""
    arr = image_to_numpy(msg)
    encoding = msg.encoding
    if want_rgb and encoding in ("bgr8", "bgra8", "rgba8"):
        arr = arr[..., 2::-1] if encoding.startswith("bgr") else arr[..., :3]
        arr = np.ascontiguousarray(arr)
        encoding = "rgb8"
    return CameraFrame(arr, stamp_to_seconds(msg.header.stamp), msg.header.frame_id, encoding)


def depth_to_metres(msg: Image) -> np.ndarray:
    """Depth image (32FC1 m or 16UC1 mm) -> float32 (H, W) metres, 0/NaN -> NaN (no return)."""
    arr = image_to_numpy(msg)
    if msg.encoding == "32FC1":
        depth = arr.astype(np.float32, copy=True)
        depth[~(depth > 0)] = np.nan
    elif msg.encoding in ("16UC1", "mono16"):
        depth = arr.astype(np.float32) * 1e-3
        depth[arr == 0] = np.nan
    else:
        raise MessageError(f"depth image must be 32FC1 (m) or 16UC1 (mm), got '{msg.encoding}'")
    return depth


# ----------------------------------------------------------------------------- camera info
def camera_info_to_intrinsics(msg: CameraInfo) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> CameraIntrinsics (from K; D kept as given)."""
    k = list(msg.k)
    if len(k) != 9 or not all(math.isfinite(v) for v in k):
        raise MessageError(f"camera_info K must be 9 finite numbers, got {k}")
    try:
        return CameraIntrinsics(
            width=int(msg.width), height=int(msg.height), fx=k[0], fy=k[4], cx=k[2], cy=k[5],
            distortion_model=msg.distortion_model, distortion=tuple(float(d) for d in msg.d),
            frame_id=msg.header.frame_id,
        )
    except ValueError as exc:
        raise MessageError(f"camera_info: {exc}") from exc


def intrinsics_to_camera_info(intr: CameraIntrinsics, stamp: float = 0.0) -> CameraInfo:
    """CameraIntrinsics -> sensor_msgs/CameraInfo (R = identity, P = [K | 0], monocular)."""
    msg = CameraInfo()
    msg.header.stamp = seconds_to_stamp(stamp)
    msg.header.frame_id = intr.frame_id
    msg.width, msg.height = int(intr.width), int(intr.height)
    msg.distortion_model = intr.distortion_model
    msg.d = [float(v) for v in intr.distortion]
    msg.k = [float(v) for v in intr.K.reshape(-1)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def calibration_to_camera_info(calib: CameraCalibration, stamp: float = 0.0) -> CameraInfo:
    """CameraCalibration (from a camera_calibration YAML) -> CameraInfo with the file's R and P."""
    msg = intrinsics_to_camera_info(calib.intrinsics, stamp)
    msg.r = [float(v) for v in calib.rectification.reshape(-1)]
    msg.p = [float(v) for v in calib.projection.reshape(-1)]
    return msg


def camera_info_to_calibration(msg: CameraInfo, camera_name: str = "camera") -> CameraCalibration:
    """sensor_msgs/CameraInfo (e.g. from a SetCameraInfo request) -> CameraCalibration.

    Raises MessageError on a malformed K, R or P (wrong length, NaN/inf, non-positive focal length).
    """
    intr = camera_info_to_intrinsics(msg)
    r, p = list(msg.r), list(msg.p)
    if len(r) != 9 or len(p) != 12 or not all(math.isfinite(v) for v in r + p):
        raise MessageError(f"camera_info R must be 9 and P 12 finite numbers, got {len(r)} and {len(p)}")
    if not any(r):  # an all-zero R means "not set" (uncalibrated camera_info)
        r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    proj = np.asarray(p).reshape(3, 4) if any(p) else None
    try:
        return CameraCalibration(camera_name, intr, np.asarray(r).reshape(3, 3), proj)
    except ValueError as exc:
        raise MessageError(f"camera_info: {exc}") from exc


# ----------------------------------------------------------------------------- joint states
def joint_state_to_core(msg: JointStateMsg) -> JointState:
    """sensor_msgs/JointState -> JointState. Empty velocity/effort arrays become None.

    Raises MessageError on unequal array lengths or duplicate names (NaN values are kept: the
    consumer decides whether a NaN joint is fatal).
    """
    names = list(msg.name)
    n = len(names)
    if len(msg.position) != n:
        raise MessageError(f"joint_states has {n} names but {len(msg.position)} positions")
    for field_name in ("velocity", "effort"):
        k = len(getattr(msg, field_name))
        if k not in (0, n):
            raise MessageError(f"joint_states has {n} names but {k} {field_name} values")
    try:
        return JointState(
            names=tuple(names),
            positions=np.asarray(msg.position, dtype=np.float64),
            velocities=np.asarray(msg.velocity, dtype=np.float64) if len(msg.velocity) else None,
            efforts=np.asarray(msg.effort, dtype=np.float64) if len(msg.effort) else None,
            stamp=stamp_to_seconds(msg.header.stamp),
        )
    except ValueError as exc:
        raise MessageError(f"joint_states: {exc}") from exc


def joint_state_to_msg(state: JointState, frame_id: str = "") -> JointStateMsg:
    """JointState -> sensor_msgs/JointState."""
    msg = JointStateMsg()
    msg.header.stamp = seconds_to_stamp(state.stamp)
    msg.header.frame_id = frame_id
    msg.name = list(state.names)
    msg.position = np.asarray(state.positions, dtype=np.float64)
    if state.velocities is not None:
        msg.velocity = np.asarray(state.velocities, dtype=np.float64)
    if state.efforts is not None:
        msg.effort = np.asarray(state.efforts, dtype=np.float64)
    return msg


# ----------------------------------------------------------------------------- trajectories
def joint_trajectory_fields(msg: JointTrajectory) -> dict:
    """Raw fields of a JointTrajectory as plain arrays, before validation: the one
    trajectory -> core conversion of the simulator and the safety controller.

    Returns dict(names, times (H,) s, positions list of (N_i,) rad, velocities (H, N) rad/s or
    None, velocity_note str, stamp s). Velocities are used only when every point carries a
    full-length (one per joint name), finite vector; otherwise `velocities` is None (positions
    only, as a JointTrajectoryController interpolates them) and, when some velocities were
    present but not usable, `velocity_note` says why (empty otherwise) so the node can log it.
    Feed the rest to `vla_stack.core.validation.validate_chunk`, which gives the stable
    rejection codes; this function only refuses what cannot be read at all.
    """
    names = list(msg.joint_names)
    rows = [np.asarray(p.velocities, dtype=np.float64) for p in msg.points]
    velocities, note = trajectory_velocities(rows, len(names))
    return {
        "names": names,
        "times": np.array([duration_to_seconds(p.time_from_start) for p in msg.points], dtype=np.float64),
        "positions": [np.asarray(p.positions, dtype=np.float64) for p in msg.points],
        "velocities": velocities,
        "velocity_note": note,
        "stamp": stamp_to_seconds(msg.header.stamp),
    }


def trajectory_velocities(rows: Sequence[np.ndarray], num_joints: int) -> tuple[np.ndarray | None, str]:
    """Per-point velocity rows -> (H, N) array when every row is full-length and finite, else None.

    Args:
        rows: velocities of each point, rad/s (an empty row = that point has none).
        num_joints: N, the number of joint names.

    Returns:
        (velocities or None, note): the note is empty when all rows are used or all are empty,
        and says why the velocities were dropped when they were only partially usable.
    """
    present = [i for i, r in enumerate(rows) if len(r)]
    if not rows or not present:
        return None, ""
    if len(present) != len(rows):
        return None, (f"velocities ignored: only {len(present)} of {len(rows)} points carry them "
                      "(all or none); following the positions only")
    wrong = [i for i in present if len(rows[i]) != num_joints]
    if wrong:
        return None, (f"velocities ignored: point {wrong[0]} has {len(rows[wrong[0]])} values for {num_joints} "
                      "joint names; following the positions only")
    arr = np.stack(rows)
    if not np.all(np.isfinite(arr)):
        return None, "velocities ignored: they contain NaN/inf; following the positions only"
    return arr, ""


def joint_trajectory_to_chunk(msg: JointTrajectory) -> ActionChunk:
    """JointTrajectory -> ActionChunk in the message's joint order (no reordering, no limit checks).

    Raises MessageError when there are no points, a point's positions (or non-empty
    velocities/accelerations) don't match the number of joint names, or a value is not finite.
    """
    names = list(msg.joint_names)
    n = len(names)
    if not msg.points:
        raise MessageError("joint trajectory has no points")
    if n == 0:
        raise MessageError("joint trajectory names no joints")
    pos, vel, acc = [], [], []
    for i, p in enumerate(msg.points):
        if len(p.positions) != n:
            raise MessageError(f"point {i} has {len(p.positions)} positions for {n} joint names")
        for field_name, store in (("velocities", vel), ("accelerations", acc)):
            values = getattr(p, field_name)
            if len(values) not in (0, n):
                raise MessageError(f"point {i} has {len(values)} {field_name} for {n} joint names")
            store.append(values)
        pos.append(p.positions)
    positions = np.asarray(pos, dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise MessageError("joint trajectory positions contain NaN/inf")
    times = np.array([duration_to_seconds(p.time_from_start) for p in msg.points])

    def optional(rows: list) -> np.ndarray | None:
        if any(len(r) == 0 for r in rows):
            return None
        arr = np.asarray(rows, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise MessageError("joint trajectory velocities/accelerations contain NaN/inf")
        return arr

    return ActionChunk(
        joint_names=tuple(names), times=times, positions=positions,
        stamp=stamp_to_seconds(msg.header.stamp), velocities=optional(vel), accelerations=optional(acc),
    )


def chunk_to_joint_trajectory(chunk: ActionChunk, frame_id: str = "") -> JointTrajectory:
    """ActionChunk -> JointTrajectory (header.stamp = chunk.stamp, points at chunk.times)."""
    msg = JointTrajectory()
    msg.header.stamp = seconds_to_stamp(chunk.stamp)
    msg.header.frame_id = frame_id
    msg.joint_names = list(chunk.joint_names)
    points = []
    for i in range(chunk.horizon):
        p = JointTrajectoryPoint()
        p.positions = chunk.positions[i]
        if chunk.velocities is not None:
            p.velocities = chunk.velocities[i]
        if chunk.accelerations is not None:
            p.accelerations = chunk.accelerations[i]
        p.time_from_start = seconds_to_duration(float(chunk.times[i]))
        points.append(p)
    msg.points = points
    return msg


def _float64_sequence(values: np.ndarray) -> array.array:
    """(n,) float64 -> array('d'): what rosidl stores for float64[] fields (one memcpy, no per-element checks)."""
    return array.array("d", np.ascontiguousarray(values, dtype=np.float64).tobytes())


def fill_joint_trajectory(
    msg: JointTrajectory,
    times: np.ndarray,
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
    accelerations: np.ndarray | None = None,
    rows: Sequence[int] | None = None,
) -> JointTrajectory:
    """Write points into an existing JointTrajectory, reusing its point objects (for kHz streaming).

    Args:
        msg: message to fill; its `points` are resized to the number of rows, existing
            JointTrajectoryPoint objects are reused, `joint_names` and `header` are left as they are.
        times: (k,) time_from_start of each point, s.
        positions, velocities, accelerations: (k, n) rad, rad/s, rad/s² (velocities /
            accelerations None = left empty).
        rows: which of the k points to write, in order (default: all).

    Returns:
        `msg` (filled in place). Publishing copies the message, so the same object can be
        refilled and republished every cycle.
    """
    idx = range(len(times)) if rows is None else rows
    points = msg.points
    want = len(idx)
    if len(points) != want:
        del points[want:]
        points.extend(JointTrajectoryPoint() for _ in range(want - len(points)))
    empty = array.array("d")
    for point, i in zip(points, idx, strict=True):
        point.positions = _float64_sequence(positions[i])
        point.velocities = empty if velocities is None else _float64_sequence(velocities[i])
        point.accelerations = empty if accelerations is None else _float64_sequence(accelerations[i])
        seconds = float(times[i])
        if not math.isfinite(seconds):
            raise MessageError(f"time_from_start must be finite, got {seconds}")
        sec = math.floor(seconds)
        nanosec = int(round((seconds - sec) * 1e9))
        if nanosec >= 1_000_000_000:
            sec, nanosec = sec + 1, nanosec - 1_000_000_000
        point.time_from_start.sec = int(sec)
        point.time_from_start.nanosec = nanosec
    return msg


# ----------------------------------------------------------------------------- wrench / pose
def wrench_to_core(msg: WrenchStamped) -> Wrench:
    """geometry_msgs/WrenchStamped -> Wrench. Raises MessageError on NaN/inf."""
    f, t = msg.wrench.force, msg.wrench.torque
    force, torque = np.array([f.x, f.y, f.z]), np.array([t.x, t.y, t.z])
    if not (np.all(np.isfinite(force)) and np.all(np.isfinite(torque))):
        raise MessageError("wrench contains NaN/inf")
    return Wrench(force, torque, stamp_to_seconds(msg.header.stamp), msg.header.frame_id)


def raw_wrench_to_core(msg: WrenchStamped) -> Wrench:
    """geometry_msgs/WrenchStamped -> Wrench WITHOUT the finiteness check.

    For consumers that validate samples themselves and report which component is bad
    (`vla_stack.core.tactile.wrench_bias`); everyone else uses `wrench_to_core`.
    """
    f, t = msg.wrench.force, msg.wrench.torque
    return Wrench(np.array([f.x, f.y, f.z]), np.array([t.x, t.y, t.z]), stamp_to_seconds(msg.header.stamp), msg.header.frame_id)


def wrench_to_msg(w: Wrench) -> WrenchStamped:
    """Wrench -> geometry_msgs/WrenchStamped."""
    msg = WrenchStamped()
    msg.header.stamp = seconds_to_stamp(w.stamp)
    msg.header.frame_id = w.frame_id
    msg.wrench.force.x, msg.wrench.force.y, msg.wrench.force.z = (float(v) for v in w.force)
    msg.wrench.torque.x, msg.wrench.torque.y, msg.wrench.torque.z = (float(v) for v in w.torque)
    return msg


def pose_to_core(msg: PoseStamped) -> Pose:
    """geometry_msgs/PoseStamped -> Pose. Raises MessageError on NaN/inf or a zero quaternion."""
    p, q = msg.pose.position, msg.pose.orientation
    position, quat = np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])
    if not (np.all(np.isfinite(position)) and np.all(np.isfinite(quat))):
        raise MessageError("pose contains NaN/inf")
    norm = float(np.linalg.norm(quat))
    if norm < 1e-6:
        raise MessageError("pose orientation is a zero quaternion")
    return Pose(position, quat / norm, stamp_to_seconds(msg.header.stamp), msg.header.frame_id)


def pose_to_msg(pose: Pose) -> PoseStamped:
    """Pose -> geometry_msgs/PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp = seconds_to_stamp(pose.stamp)
    msg.header.frame_id = pose.frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pose.position)
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in pose.orientation)
    return msg


# ----------------------------------------------------------------------------- arrays
def float32_array_to_numpy(msg: Float32MultiArray) -> np.ndarray:
    """Float32MultiArray -> float32 ndarray, shaped by layout.dim when the dims are consistent."""
    data = np.asarray(msg.data, dtype=np.float32)
    dims = [int(d.size) for d in msg.layout.dim]
    if dims:
        if int(np.prod(dims)) + int(msg.layout.data_offset) != data.size:
            raise MessageError(f"array layout {dims} (offset {msg.layout.data_offset}) does not match {data.size} values")
        data = data[msg.layout.data_offset:].reshape(dims)
    return data


def numpy_to_float32_array(array: np.ndarray, labels: Sequence[str] | None = None) -> Float32MultiArray:
    """ndarray -> Float32MultiArray with a row-major layout (labels name the dimensions)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    msg = Float32MultiArray()
    labels = list(labels) if labels is not None else [f"dim{i}" for i in range(array.ndim)]
    if len(labels) != array.ndim:
        raise MessageError(f"{len(labels)} labels for an array of {array.ndim} dimensions")
    strides = [int(np.prod(array.shape[i:])) for i in range(array.ndim)]
    msg.layout.dim = [
        MultiArrayDimension(label=lbl, size=int(s), stride=st) for lbl, s, st in zip(labels, array.shape, strides, strict=True)
    ]
    msg.data = array.reshape(-1)
    return msg


def float64_array_to_numpy(msg: Float64MultiArray) -> np.ndarray:
    """Float64MultiArray -> 1-D float64 ndarray (forward command controllers use flat arrays)."""
    return np.asarray(msg.data, dtype=np.float64)


def numpy_to_float64_array(values: Iterable[float]) -> Float64MultiArray:
    """1-D values -> Float64MultiArray (flat, as forward_command_controller expects)."""
    msg = Float64MultiArray()
    msg.data = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).reshape(-1)
    return msg


# ----------------------------------------------------------------------------- diagnostics
_LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN, "ERROR": DiagnosticStatus.ERROR, "STALE": DiagnosticStatus.STALE}


def diagnostics_msg(
    name: str, level: str, message: str, values: Mapping[str, object], stamp: float, hardware_id: str = ""
) -> DiagnosticArray:
    """One DiagnosticStatus wrapped in a DiagnosticArray. `level` is OK/WARN/ERROR/STALE."""
    if level not in _LEVELS:
        raise MessageError(f"diagnostic level must be one of {sorted(_LEVELS)}, got {level}")
    status = DiagnosticStatus(level=_LEVELS[level], name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
    msg = DiagnosticArray()
    msg.header.stamp = seconds_to_stamp(stamp)
    msg.status = [status]
    return msg


def diagnostics_to_dict(msg: DiagnosticArray) -> dict[str, dict]:
    """DiagnosticArray -> {status name: {"level": str, "message": str, "values": {key: value}}}."""
    def as_int(level: int | bytes) -> int:
        return level if isinstance(level, int) else int.from_bytes(level, "little")

    names = {as_int(v): k for k, v in _LEVELS.items()}
    out = {}
    for s in msg.status:
        level = as_int(s.level)
        out[s.name] = {"level": names.get(level, str(level)), "message": s.message, "values": {kv.key: kv.value for kv in s.values}}
    return out


def object_markers(
    objects: Sequence[tuple[str, tuple[int, int, int], Pose, Pose, str]], stamp: float, namespace: str = "grounding",
) -> MarkerArray:
    """rviz2 markers of grounded objects: one DELETEALL, then per object a sphere at the centroid,
    an arrow along the grasp approach (grasp z axis, 10 cm ending at the grasp point) and a text label.

    Args:
        objects: (name, rgb 0..255, centroid pose, grasp pose, label text); both poses in the same frame.
        stamp: header stamp, s.
        namespace: marker namespace.

    An empty `objects` gives only the DELETEALL (clears the display when nothing is found).
    """
    out = MarkerArray()
    clear = Marker()
    clear.header.stamp = seconds_to_stamp(stamp)
    clear.ns = namespace
    clear.action = Marker.DELETEALL
    out.markers.append(clear)
    for k, (name, rgb, centroid, grasp, text) in enumerate(objects):
        r, g, b = (float(c) / 255.0 for c in rgb)
        q = np.asarray(grasp.orientation, float)
        x, y, z, w = q / np.linalg.norm(q)
        approach = np.array([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])  # grasp z axis
        for j, kind in enumerate((Marker.SPHERE, Marker.ARROW, Marker.TEXT_VIEW_FACING)):
            m = Marker()
            m.header.stamp = seconds_to_stamp(stamp)
            m.header.frame_id = centroid.frame_id
            m.ns, m.id, m.type, m.action = namespace, 3 * k + j, kind, Marker.ADD
            m.pose.orientation.w = 1.0
            m.color.r, m.color.g, m.color.b, m.color.a = r, g, b, 0.8
            c = np.asarray(centroid.position, float)
            if kind == Marker.SPHERE:
                m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in c)
                m.scale.x = m.scale.y = m.scale.z = 0.04
            elif kind == Marker.ARROW:
                end = np.asarray(grasp.position, float)
                start = end - 0.10 * approach
                m.points = [_point(start), _point(end)]
                m.scale.x, m.scale.y, m.scale.z = 0.008, 0.016, 0.02
            else:
                m.pose.position.x, m.pose.position.y, m.pose.position.z = float(c[0]), float(c[1]), float(c[2]) + 0.08
                m.scale.z = 0.03
                m.text = f"{name}: {text}" if text else name
            out.markers.append(m)
    return out


def _point(v: np.ndarray) -> Point:
    return Point(x=float(v[0]), y=float(v[1]), z=float(v[2]))
