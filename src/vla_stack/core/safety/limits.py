"""Joint limits and robot profiles for the safety controller.

A robot profile (`config/robots/<robot>.yaml`) names the controlled joints, the URDF the
position limits come from, the velocity/acceleration/jerk limits (the manufacturer's
figures, unscaled), a scaling factor for conservative operation, the frames the workspace
guard checks and the gripper. `load_robot_profile("panda")` reads it.

Units: rad, rad/s, rad/s², rad/s³ for revolute joints (m, m/s, ... for prismatic ones).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

_KINDS = ("lower", "upper", "velocity", "acceleration", "jerk")


@dataclass(frozen=True)
class JointLimits:
    """Per-joint kinematic limits, in the order of `names`.

    Args:
        names: joint names.
        lower, upper: (n,) position limits, rad (m for prismatic joints).
        velocity: (n,) maximum |velocity|, rad/s.
        acceleration: (n,) maximum |acceleration|, rad/s².
        jerk: (n,) maximum |jerk|, rad/s³.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    jerk: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        n = len(self.names)
        if n == 0:
            raise ValueError("JointLimits needs at least one joint")
        if len(set(self.names)) != n:
            raise ValueError(f"duplicate joint names in {self.names}")
        for kind in _KINDS:
            arr = np.array(getattr(self, kind), dtype=np.float64).reshape(-1)
            if arr.shape != (n,):
                raise ValueError(f"{kind} limits need {n} values (one per joint {self.names}), got {arr.shape[0]}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{kind} limits must be finite, got {arr.tolist()}")
            arr.flags.writeable = False
            object.__setattr__(self, kind, arr)
        if np.any(self.lower >= self.upper):
            bad = [self.names[i] for i in np.flatnonzero(self.lower >= self.upper)]
            raise ValueError(f"lower position limit must be below upper limit for joints {bad}")
        for kind in ("velocity", "acceleration", "jerk"):
            arr = getattr(self, kind)
            if np.any(arr <= 0):
                bad = [self.names[i] for i in np.flatnonzero(arr <= 0)]
                raise ValueError(f"{kind} limits must be > 0, got {arr.tolist()} (joints {bad})")

    @property
    def n(self) -> int:
        """Number of joints."""
        return len(self.names)

    def scaled(self, velocity: float = 1.0, acceleration: float = 1.0, jerk: float = 1.0) -> JointLimits:
        """Limits with velocity/acceleration/jerk multiplied by factors in (0, 1] (positions unchanged)."""
        for name, s in (("velocity", velocity), ("acceleration", acceleration), ("jerk", jerk)):
            if not (0.0 < s <= 1.0):
                raise ValueError(f"{name} scaling must be in (0, 1], got {s}")
        return replace(
            self, velocity=self.velocity * velocity, acceleration=self.acceleration * acceleration,
            jerk=self.jerk * jerk,
        )

    def shrunk(self, margin: float) -> JointLimits:
        """Limits with the position range shrunk by `margin` (rad) at both ends."""
        if margin < 0 or np.any(self.upper - self.lower <= 2 * margin):
            raise ValueError(f"position margin {margin} must be >= 0 and smaller than half of every joint range")
        return replace(self, lower=self.lower + margin, upper=self.upper - margin)

    def clip_position(self, q: np.ndarray) -> np.ndarray:
        """`q` (..., n) clipped into [lower, upper]."""
        return np.clip(q, self.lower, self.upper)

    def max_stopping_distance(self) -> np.ndarray:
        """(n,) worst-case distance, rad, that a jerk-limited stop needs within these limits.

        Worst case per joint: moving at maximum velocity while still accelerating at maximum
        acceleration; computed with ruckig (time-optimal stop, each joint on its own). This is
        the bound the watchdog and e-stop tests check stops against.
        """
        from ruckig import ControlInterface, InputParameter, Result, Ruckig, Synchronization, Trajectory

        out = np.empty(self.n)
        otg = Ruckig(1)
        for i in range(self.n):
            inp = InputParameter(1)
            inp.control_interface = ControlInterface.Velocity
            inp.synchronization = Synchronization.No
            inp.current_position = [0.0]
            inp.current_velocity = [float(self.velocity[i])]
            inp.current_acceleration = [float(self.acceleration[i])]
            inp.target_velocity = [0.0]
            inp.target_acceleration = [0.0]
            inp.max_velocity = [float(self.velocity[i])]
            inp.max_acceleration = [float(self.acceleration[i])]
            inp.max_jerk = [float(self.jerk[i])]
            traj = Trajectory(1)
            result = otg.calculate(inp, traj)
            if result not in (Result.Working, Result.Finished):
                raise RuntimeError(f"ruckig could not compute a stop for joint {self.names[i]}: {result}")
            out[i] = traj.position_extrema[0].max
        return out

    def as_dict(self) -> dict[str, list[float]]:
        """Plain-python view (for logs and JSON)."""
        return {"names": list(self.names), **{k: getattr(self, k).tolist() for k in _KINDS}}


def urdf_position_limits(
    urdf: str | Path, joints: Sequence[str], prefer_soft_limits: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Position limits of `joints` read from a URDF file, rad (m).

    Args:
        urdf: URDF file path.
        joints: joint names, in the order of the result.
        prefer_soft_limits: use `<safety_controller soft_lower_limit/soft_upper_limit>` when a
            joint has one (for the Panda these are Franka's published limits; the `<limit>`
            tag of pybullet's URDF is slightly wider), else `<limit lower/upper>`.

    Returns:
        (lower, upper), each (n,).

    Raises:
        ValueError: a joint is missing, has no limits, or is continuous.
    """
    root = ET.parse(str(urdf)).getroot()
    by_name = {j.get("name"): j for j in root.iter("joint")}
    lower, upper = [], []
    for name in joints:
        joint = by_name.get(name)
        if joint is None:
            raise ValueError(f"joint '{name}' not found in {urdf} (joints: {sorted(k for k in by_name if k)})")
        if joint.get("type") == "continuous":
            raise ValueError(f"joint '{name}' in {urdf} is continuous: give position limits in the robot profile")
        soft = joint.find("safety_controller")
        limit = joint.find("limit")
        if prefer_soft_limits and soft is not None and soft.get("soft_lower_limit") is not None:
            lo, hi = float(soft.get("soft_lower_limit")), float(soft.get("soft_upper_limit"))
        elif limit is not None and limit.get("lower") is not None and limit.get("upper") is not None:
            lo, hi = float(limit.get("lower")), float(limit.get("upper"))
        else:
            raise ValueError(f"joint '{name}' in {urdf} has no position limits")
        lower.append(lo)
        upper.append(hi)
    return np.array(lower), np.array(upper)


@dataclass(frozen=True)
class GripperProfile:
    """A gripper driven by a width command (ros2_control forward command / gripper action).

    Args:
        joint: name of the gripper column in action chunks (e.g. "panda_finger_joint1").
        width_per_unit: opening width, m, per unit of that column (Panda finger joint: 2.0,
            since each finger moves half the opening).
        min_width, max_width: command range, m.
        max_speed: fastest change of the commanded width, m/s.
        max_force: grasp force limit sent with every command, N.
    """

    joint: str
    width_per_unit: float = 1.0
    min_width: float = 0.0
    max_width: float = 0.08
    max_speed: float = 0.1
    max_force: float = 70.0

    def __post_init__(self) -> None:
        if not self.joint:
            raise ValueError("gripper.joint must name the gripper column of the action chunks")
        if not (self.width_per_unit > 0):
            raise ValueError(f"gripper.width_per_unit must be > 0, got {self.width_per_unit}")
        if not (0 <= self.min_width < self.max_width):
            raise ValueError(f"gripper width range must satisfy 0 <= min < max, got {self.min_width}..{self.max_width}")
        if not (self.max_speed > 0 and self.max_force > 0):
            raise ValueError(f"gripper max_speed and max_force must be > 0, got {self.max_speed}, {self.max_force}")


@dataclass(frozen=True)
class RobotProfile:
    """Everything the safety controller needs to know about one robot model.

    Args:
        name: profile name ("panda", "ur5e", "so101").
        joints: controlled arm joints, in command order.
        limits: unscaled limits (manufacturer figures; position limits from the URDF).
        scaling: default factor (0, 1] applied to velocity, acceleration and jerk limits for
            conservative operation (the controller config can override it).
        urdf: resolved URDF path for kinematics/collision, or None when the profile ships
            without one (then workspace, collision and Cartesian teleop are unavailable).
        base_frame: robot base frame (URDF root), the frame of workspace boxes and twists.
        tcp_frame: tool centre point frame.
        workspace_frames: frames whose origins must stay in the workspace (TCP first).
        gripper: the gripper, or None.
        fixed_joints: positions of URDF joints that are not controlled (e.g. fingers), rad/m.
        srdf: SRDF with disabled collision pairs, or None.
        source: the file the profile was read from.
    """

    name: str
    joints: tuple[str, ...]
    limits: JointLimits
    scaling: float = 0.5
    urdf: Path | None = None
    base_frame: str = "base_link"
    tcp_frame: str = "tool0"
    workspace_frames: tuple[str, ...] = ()
    gripper: GripperProfile | None = None
    fixed_joints: Mapping[str, float] = field(default_factory=dict)
    srdf: Path | None = None
    source: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "joints", tuple(self.joints))
        object.__setattr__(self, "workspace_frames", tuple(self.workspace_frames))
        if self.limits.names != self.joints:
            raise ValueError(f"limits are for {self.limits.names} but the profile controls {self.joints}")
        if not (0.0 < self.scaling <= 1.0):
            raise ValueError(f"scaling must be in (0, 1], got {self.scaling}")

    def kinematics(self, finger_opening_m: float | None = None):
        """A `RobotModel` (pinocchio) of this robot, or None when the profile has no URDF."""
        if self.urdf is None:
            return None
        from vla_stack.core.kinematics.robot_model import RobotModel

        return RobotModel.from_urdf(self.urdf, self.joints, self.tcp_frame, fixed_positions=dict(self.fixed_joints))


def _resolve_urdf(spec: str | None, base_dir: Path) -> Path | None:
    """`builtin:panda` -> the Panda URDF from the pybullet wheel (absolute mesh paths); else a path."""
    if spec in (None, "", "none", "null"):
        return None
    if spec == "builtin:panda":
        from vla_stack.core.kinematics.assets import panda_urdf_with_absolute_meshes

        return panda_urdf_with_absolute_meshes()
    if spec.startswith("builtin:"):
        raise ValueError(f"unknown builtin URDF '{spec}' (known: builtin:panda)")
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"URDF {path} (from '{spec}') does not exist")
    return path


def profile_from_dict(data: Mapping[str, Any], source: Path | None = None, urdf_override: str = "") -> RobotProfile:
    """Build a RobotProfile from the parsed YAML mapping (see config/robots/panda.yaml).

    Position limits: `lower`/`upper` lists when given, otherwise read from the URDF.
    """
    base_dir = source.parent if source is not None else Path.cwd()
    try:
        name = str(data["name"])
        joints = tuple(str(j) for j in data["joints"])
    except KeyError as exc:
        raise ValueError(f"robot profile {source}: missing key {exc}") from None
    limits_in = dict(data.get("limits", {}))
    urdf = _resolve_urdf(urdf_override or data.get("urdf"), base_dir)
    if "lower" in limits_in and "upper" in limits_in:
        lower, upper = np.array(limits_in["lower"], float), np.array(limits_in["upper"], float)
    elif urdf is not None:
        lower, upper = urdf_position_limits(urdf, joints, bool(data.get("prefer_soft_limits", True)))
    else:
        raise ValueError(f"robot profile {source}: no position limits (give limits.lower/upper or a urdf)")
    missing = [k for k in ("velocity", "acceleration", "jerk") if k not in limits_in]
    if missing:
        raise ValueError(f"robot profile {source}: limits.{missing} missing")
    limits = JointLimits(joints, lower, upper, limits_in["velocity"], limits_in["acceleration"], limits_in["jerk"])
    gripper = data.get("gripper")
    srdf = data.get("srdf")
    srdf_path = None
    if srdf:
        srdf_path = Path(srdf).expanduser()
        if not srdf_path.is_absolute():
            srdf_path = (base_dir / srdf_path).resolve()
    return RobotProfile(
        name=name,
        joints=joints,
        limits=limits,
        scaling=float(data.get("scaling", 0.5)),
        urdf=urdf,
        base_frame=str(data.get("base_frame", "base_link")),
        tcp_frame=str(data.get("tcp_frame", "tool0")),
        workspace_frames=tuple(data.get("workspace_frames", ()) or ()),
        gripper=GripperProfile(**gripper) if gripper else None,
        fixed_joints={str(k): float(v) for k, v in (data.get("fixed_joints") or {}).items()},
        srdf=srdf_path,
        source=source,
    )


def load_robot_profile(name_or_path: str | Path, urdf_override: str = "") -> RobotProfile:
    """Load `config/robots/<name>.yaml` (or a YAML file path) as a RobotProfile.

    Args:
        name_or_path: profile name ("panda", "ur5e", "so101") or path to a YAML file.
        urdf_override: URDF path (or `builtin:panda`) replacing the profile's `urdf`.

    Raises:
        FileNotFoundError: no such profile (the message lists the shipped ones).
        ValueError: the profile is malformed (the message names the key).
    """
    import yaml

    from vla_stack.paths import config_path

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_path("robots", f"{name_or_path}.yaml")
    if not path.is_file():
        shipped = sorted(p.stem for p in config_path("robots").glob("*.yaml")) if config_path("robots").is_dir() else []
        raise FileNotFoundError(f"robot profile '{name_or_path}' not found at {path} (shipped profiles: {shipped})")
    with open(path) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, Mapping):
        raise ValueError(f"robot profile {path} must be a YAML mapping")
    return profile_from_dict(data, source=path, urdf_override=urdf_override)
