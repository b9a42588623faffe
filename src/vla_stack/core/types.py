"""Core data types shared by every part of vla_stack.

ROS-free: these are what the algorithms see. `vla_stack.ros.conversions` turns ROS messages
into these and back. Arrays are numpy; units are SI (m, rad, s, N, N·m) unless a field says
otherwise. Stamps are float seconds on the stack's clock (ROS time, or sim time when
`use_sim_time` is set).

Every type validates its shapes in `__post_init__` so a malformed value fails where it is
made, with a message that names the field, not three modules later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _as_float_array(name: str, value, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one camera (the camera_info of a ROS camera).

    Args:
        width, height: image size in pixels.
        fx, fy, cx, cy: focal lengths and principal point in pixels.
        distortion_model: ROS name ("plumb_bob", "rational_polynomial", "equidistant" or "").
        distortion: distortion coefficients D in the order of that model.
        frame_id: optical frame of the camera (z forward, x right, y down).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    frame_id: str = "camera_color_optical_frame"

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")

    @property
    def K(self) -> np.ndarray:
        """3x3 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @staticmethod
    def from_fovy(width: int, height: int, fovy_deg: float, frame_id: str = "camera_color_optical_frame"):
        """Intrinsics of an ideal pinhole camera with vertical field of view `fovy_deg` (as MuJoCo renders)."""
        f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
        return CameraIntrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0, frame_id=frame_id)


@dataclass(frozen=True)
class CameraFrame:
    """One camera image.

    Args:
        image: (H, W, 3) uint8 RGB, (H, W) uint8 mono, (H, W) float32 depth in m
            (0 or NaN = no return), or (H, W) uint16 depth in mm.
        stamp: capture time, s.
        frame_id: optical frame the image is expressed in.
        encoding: ROS encoding name of `image` ("rgb8", "bgr8", "mono8", "32FC1", "16UC1").
    """

    image: np.ndarray
    stamp: float
    frame_id: str
    encoding: str = "rgb8"

    def __post_init__(self) -> None:
        if self.image.ndim not in (2, 3) or self.image.size == 0:
            raise ValueError(f"image must be a non-empty 2-D or 3-D array, got shape {self.image.shape}")


@dataclass(frozen=True)
class JointState:
    """Joint positions (rad or m), velocities (rad/s or m/s), efforts (N·m or N) by name."""

    names: tuple[str, ...]
    positions: np.ndarray
    velocities: np.ndarray | None = None
    efforts: np.ndarray | None = None
    stamp: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "positions", _as_float_array("positions", self.positions, 1))
        n = len(self.names)
        if self.positions.shape[0] != n:
            raise ValueError(f"{n} joint names but {self.positions.shape[0]} positions")
        for fname in ("velocities", "efforts"):
            v = getattr(self, fname)
            if v is not None:
                v = _as_float_array(fname, v, 1)
                if v.shape[0] not in (0, n):
                    raise ValueError(f"{n} joint names but {v.shape[0]} {fname}")
                object.__setattr__(self, fname, v if v.shape[0] else None)
        if len(set(self.names)) != n:
            raise ValueError(f"duplicate joint names in {self.names}")

    def position_of(self, names) -> np.ndarray:
        """Positions of `names` in that order; KeyError naming the first missing joint."""
        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise KeyError(f"joint(s) {missing} not in state {list(self.names)}")
        return self.positions[[index[n] for n in names]]


@dataclass(frozen=True)
class ActionChunk:
    """A chunk of future joint targets, as a policy emits it (a JointTrajectory on the wire).

    Args:
        joint_names: N joint names, the column order of `positions`.
        times: (H,) s, time of each point relative to `stamp` (time_from_start), strictly increasing.
        positions: (H, N) joint targets, rad (m for prismatic joints).
        stamp: time of the observation the chunk was computed from, s (0 = "now" on receipt).
        velocities, accelerations: optional (H, N) rad/s and rad/s².
    """

    joint_names: tuple[str, ...]
    times: np.ndarray
    positions: np.ndarray
    stamp: float = 0.0
    velocities: np.ndarray | None = None
    accelerations: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        times = _as_float_array("times", self.times, 1)
        pos = _as_float_array("positions", self.positions)
        if pos.ndim == 1 and len(times) == 1:
            pos = pos[None, :]
        if pos.ndim != 2 or pos.shape != (len(times), len(self.joint_names)):
            raise ValueError(
                f"positions must have shape (H={len(times)}, N={len(self.joint_names)}), got {pos.shape}"
            )
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "positions", pos)
        for fname in ("velocities", "accelerations"):
            v = getattr(self, fname)
            if v is not None:
                v = _as_float_array(fname, v)
                if v.size == 0:
                    v = None
                elif v.shape != pos.shape:
                    raise ValueError(f"{fname} must have shape {pos.shape}, got {v.shape}")
                object.__setattr__(self, fname, v)

    @property
    def horizon(self) -> int:
        """Number of points H."""
        return int(self.times.shape[0])


@dataclass(frozen=True)
class Wrench:
    """Force (N) and torque (N·m) in `frame_id`."""

    force: np.ndarray
    torque: np.ndarray
    stamp: float = 0.0
    frame_id: str = ""

    def __post_init__(self) -> None:
        for fname in ("force", "torque"):
            v = _as_float_array(fname, getattr(self, fname), 1)
            if v.shape != (3,):
                raise ValueError(f"{fname} must have 3 components, got {v.shape}")
            object.__setattr__(self, fname, v)


@dataclass(frozen=True)
class Pose:
    """A pose of `frame_id`'s child: position (m) and unit quaternion (x, y, z, w)."""

    position: np.ndarray
    orientation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    stamp: float = 0.0
    frame_id: str = ""

    def __post_init__(self) -> None:
        p = _as_float_array("position", self.position, 1)
        q = _as_float_array("orientation", self.orientation, 1)
        if p.shape != (3,) or q.shape != (4,):
            raise ValueError(f"position needs 3 and orientation 4 components, got {p.shape}, {q.shape}")
        object.__setattr__(self, "position", p)
        object.__setattr__(self, "orientation", q)


@dataclass(frozen=True)
class TactileReading:
    """One tactile sensor sample.

    Args:
        pressure: (rows, cols) float32 taxel pressure, kPa (vision-based sensors: a contact
            intensity 0..1 per pixel block instead; `encoding` says which).
        force: (3,) summed contact force in the pad frame, N: x, y shear, z normal (into the pad).
        contact_area: m² of taxels in contact (vision-based sensors: fraction of the image).
        stamp: s.
        frame_id: pad frame.
    """

    pressure: np.ndarray
    force: np.ndarray
    contact_area: float
    stamp: float = 0.0
    frame_id: str = ""
