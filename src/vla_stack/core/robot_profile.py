"""One robot description: `RobotProfile`, loaded from `config/robots/<robot>.yaml`.

Every part of the stack that needs to know the robot (safety controller, action expert,
grounding, simulator, planner, kinematics) takes a `RobotProfile` instead of hard-coded
constants; `load_robot_profile(name_or_path)` reads and validates one. A profile names the
controlled arm joints in command order, the URDF (+ SRDF) they come from, the joint limits and
the default scaling, the base / hand / TCP / camera frames, the TCP offset, the gripper (its
command column, finger joints, width scale, width range, speed and force), the ready pose, the
uncontrolled (fixed) joints, the frames the workspace guard checks and the controller topics.

Fields a profile cannot know without a URDF or a driver (two of the shipped profiles have none in
this environment) are optional: they are None and the consumers that need them say so.

Units: rad, rad/s, rad/s², rad/s³ for revolute joints (m, m/s, ... for prismatic ones); m for
widths and offsets, N for forces.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_ROBOT = "panda"  # robot-name-allowed: the one place the stack names its default robot
"""Profile the nodes and tools use when no `robot` parameter is given (config/robots/<name>.yaml)."""

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
            joint has one (in the builtin URDF these are the maker's published limits; the `<limit>`
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
        joint: name of the gripper column in action chunks (one of the finger joints, e.g. the
            first finger of a two-finger hand).
        width_per_unit: opening width, m, per unit of that column (a two-finger hand whose
            fingers each move half the opening: 2.0).
        min_width, max_width: command range, m.
        max_speed: fastest change of the commanded width, m/s.
        max_force: grasp force limit sent with every command, N.
        joints: the finger joints reported in joint_states (default: `joint` alone). The
            measured opening width is their sum; with one joint it is its position times
            `width_per_unit`.
        finger_links: links of the left and right fingers (simulation contact sensing), or ().
    """

    joint: str
    width_per_unit: float = 1.0
    min_width: float = 0.0
    max_width: float = 0.08
    max_speed: float = 0.1
    max_force: float = 70.0
    joints: tuple[str, ...] = ()
    finger_links: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.joint:
            raise ValueError("gripper.joint must name the gripper column of the action chunks")
        object.__setattr__(self, "joints", tuple(str(j) for j in self.joints) or (self.joint,))
        object.__setattr__(self, "finger_links", tuple(str(j) for j in self.finger_links))
        if self.joint not in self.joints:
            raise ValueError(f"gripper.joint '{self.joint}' must be one of gripper.joints {list(self.joints)}")
        if len(set(self.joints)) != len(self.joints):
            raise ValueError(f"duplicate gripper.joints {list(self.joints)}")
        if self.finger_links and len(self.finger_links) != 2:
            raise ValueError(f"gripper.finger_links names the left and right finger links (2), got {list(self.finger_links)}")
        if not (self.width_per_unit > 0):
            raise ValueError(f"gripper.width_per_unit must be > 0, got {self.width_per_unit}")
        if not (0 <= self.min_width < self.max_width):
            raise ValueError(f"gripper width range must satisfy 0 <= min < max, got {self.min_width}..{self.max_width}")
        if not (self.max_speed > 0 and self.max_force > 0):
            raise ValueError(f"gripper max_speed and max_force must be > 0, got {self.max_speed}, {self.max_force}")

    def width_from_joints(self, positions: Mapping[str, float]) -> float:
        """Opening width, m, from measured finger joint positions (name -> m or rad).

        Sum of the finger joints when all are present; a single reported finger of a
        multi-finger hand counts as `width_per_unit` times its position. NaN when none is present.
        """
        present = [float(positions[j]) for j in self.joints if j in positions]
        if not present:
            return float("nan")
        if len(present) == len(self.joints) and len(self.joints) > 1:
            return float(np.sum(present))
        return float(present[0] * self.width_per_unit)


@dataclass(frozen=True)
class ControllerTopics:
    """ros2_control controller names of the robot (each a node parameter default).

    Args:
        arm_trajectory: joint_trajectory_controller name (subscribes `<name>/joint_trajectory`).
        arm_commands: forward position controller name (subscribes `<name>/commands`).
        gripper: gripper controller name (subscribes `<name>/commands`), "" = none.
    """

    arm_trajectory: str = "arm_controller"
    arm_commands: str = "arm_position_controller"
    gripper: str = "gripper_controller"


@dataclass(frozen=True)
class RobotProfile:
    """Everything the stack needs to know about one robot model.

    Args:
        name: profile name (the YAML file's stem under config/robots).
        joints: controlled arm joints, in command order (= action order of the expert).
        limits: unscaled limits (manufacturer figures; position limits from the URDF).
        scaling: default factor (0, 1] applied to velocity, acceleration and jerk limits for
            conservative operation (the controller config can override it).
        urdf: resolved URDF path for kinematics/collision, or None when the profile ships
            without one (then workspace, collision and Cartesian teleop are unavailable).
        base_frame: robot base frame (URDF root), the frame of workspace boxes, twists and
            grounding targets.
        tcp_frame: tool centre point frame.
        workspace_frames: frames whose origins must stay in the workspace (TCP first).
        gripper: the gripper, or None.
        fixed_joints: positions of URDF joints that are not controlled (e.g. fingers), rad/m.
        srdf: SRDF with disabled collision pairs, or None.
        source: the file the profile was read from.
        hand_frame: the hand / flange frame the wrist force-torque sensor reports in ("" = unknown).
        tcp_offset: TCP position in `hand_frame`, m (None = unknown).
        camera_frame: optical frame of the main (scene) RGB-D camera.
        ready_pose: the "ready" arm configuration, rad (joint order), or None.
        controllers: ros2_control controller names.
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
    hand_frame: str = ""
    tcp_offset: tuple[float, float, float] | None = None
    camera_frame: str = "camera_color_optical_frame"
    ready_pose: tuple[float, ...] | None = None
    controllers: ControllerTopics = field(default_factory=ControllerTopics)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joints", tuple(self.joints))
        object.__setattr__(self, "workspace_frames", tuple(self.workspace_frames))
        where = f"robot profile '{self.name}'" + (f" ({self.source})" if self.source else "")
        if len(set(self.joints)) != len(self.joints):
            raise ValueError(f"{where}: duplicate joint names in {list(self.joints)}")
        if self.limits.names != self.joints:
            raise ValueError(f"{where}: limits are for {self.limits.names} but the profile controls {self.joints}")
        if not (0.0 < self.scaling <= 1.0):
            raise ValueError(f"{where}: scaling must be in (0, 1], got {self.scaling}")
        if self.ready_pose is not None:
            pose = tuple(float(v) for v in self.ready_pose)
            if len(pose) != len(self.joints):
                raise ValueError(f"{where}: ready_pose has {len(pose)} values for {len(self.joints)} joints {list(self.joints)}")
            lo, hi = self.limits.lower, self.limits.upper
            outside = [j for j, v, a, b in zip(self.joints, pose, lo, hi, strict=True) if not a <= v <= b]
            if outside:
                raise ValueError(f"{where}: ready_pose is outside the position limits of {outside}")
            object.__setattr__(self, "ready_pose", pose)
        if self.tcp_offset is not None:
            off = tuple(float(v) for v in self.tcp_offset)
            if len(off) != 3 or not all(np.isfinite(off)):
                raise ValueError(f"{where}: tcp_offset needs 3 finite numbers (x, y, z in hand_frame, m), got {list(off)}")
            object.__setattr__(self, "tcp_offset", off)
        if self.gripper is not None:
            clash = sorted(set(self.gripper.joints) & set(self.joints))
            if clash:
                raise ValueError(f"{where}: gripper joints {clash} are also arm joints")

    @property
    def action_dim(self) -> int:
        """Numbers per action: arm joints + gripper width (if the robot has a gripper)."""
        return len(self.joints) + (1 if self.gripper is not None else 0)

    @property
    def max_opening(self) -> float:
        """Largest gripper opening width, m (0 without a gripper)."""
        return self.gripper.max_width if self.gripper is not None else 0.0

    def require_ready_pose(self) -> tuple[float, ...]:
        """The ready pose; ValueError naming the profile file when it has none."""
        if self.ready_pose is None:
            raise ValueError(f"robot profile '{self.name}' ({self.source}) has no ready_pose: add one (rad, joint order)")
        return self.ready_pose

    def kinematics(self, finger_opening_m: float | None = None):
        """A `RobotModel` (pinocchio) of this robot, or None when the profile has no URDF.

        Args:
            finger_opening_m: opening the finger joints are fixed at (default: `fixed_joints`).
        """
        if self.urdf is None:
            return None
        from vla_stack.core.kinematics.robot_model import RobotModel

        return RobotModel.from_profile(self, finger_opening_m)


def _resolve_urdf(spec: str | None, base_dir: Path) -> Path | None:
    """`builtin:<name>` -> a URDF shipped in a wheel (absolute mesh paths); else a file path."""
    if spec in (None, "", "none", "null"):
        return None
    if spec.startswith("builtin:"):
        from vla_stack.core.kinematics.assets import resolve_builtin_urdf

        return resolve_builtin_urdf(spec)
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"URDF {path} (from '{spec}') does not exist")
    return path


def _floats(where: str, key: str, value: Any, n: int | None = None) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: {key} must be a list of numbers, got {value!r}")
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {key} must be a list of numbers, got {value!r}") from None
    if n is not None and len(out) != n:
        raise ValueError(f"{where}: {key} has {len(out)} values, expected {n}")
    return out


_KNOWN_KEYS = {
    "name", "urdf", "prefer_soft_limits", "srdf", "base_frame", "hand_frame", "tcp_frame", "tcp_offset",
    "camera_frame", "joints", "limits", "scaling", "workspace_frames", "fixed_joints", "gripper", "ready_pose",
    "controllers",
}


def profile_from_dict(data: Mapping[str, Any], source: Path | None = None, urdf_override: str = "") -> RobotProfile:
    """Build a RobotProfile from the parsed YAML mapping (see config/robots/*.yaml).

    Position limits: `lower`/`upper` lists when given, otherwise read from the URDF.

    Raises:
        ValueError: a key is missing, unknown or malformed (the message names it and the file).
    """
    where = f"robot profile {source}" if source is not None else "robot profile"
    base_dir = source.parent if source is not None else Path.cwd()
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} (known: {sorted(_KNOWN_KEYS)})")
    missing = [k for k in ("name", "joints", "limits") if not data.get(k)]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    name = str(data["name"])
    if not isinstance(data["joints"], (list, tuple)):
        raise ValueError(f"{where}: joints must be a list of joint names, got {data['joints']!r}")
    joints = tuple(str(j) for j in data["joints"])
    limits_in = dict(data.get("limits") or {})
    urdf = _resolve_urdf(urdf_override or data.get("urdf"), base_dir)
    n = len(joints)
    for kind in _KINDS:
        if kind in limits_in and len(limits_in[kind]) != n:
            raise ValueError(f"{where}: limits.{kind} has {len(limits_in[kind])} values, need {n} values (one per joint {list(joints)})")
    if "lower" in limits_in and "upper" in limits_in:
        lower, upper = np.array(limits_in["lower"], float), np.array(limits_in["upper"], float)
    elif urdf is not None:
        lower, upper = urdf_position_limits(urdf, joints, bool(data.get("prefer_soft_limits", True)))
    else:
        raise ValueError(f"{where}: no position limits (give limits.lower/upper or a urdf)")
    missing = [k for k in ("velocity", "acceleration", "jerk") if k not in limits_in]
    if missing:
        raise ValueError(f"{where}: limits.{missing} missing")
    limits = JointLimits(joints, lower, upper, limits_in["velocity"], limits_in["acceleration"], limits_in["jerk"])
    gripper_in = data.get("gripper")
    try:
        gripper = GripperProfile(**gripper_in) if gripper_in else None
    except TypeError as exc:
        raise ValueError(f"{where}: gripper: {exc}") from None
    srdf = data.get("srdf")
    srdf_path = None
    if srdf:
        srdf_path = Path(srdf).expanduser()
        if not srdf_path.is_absolute():
            srdf_path = (base_dir / srdf_path).resolve()
        if not srdf_path.is_file():
            raise FileNotFoundError(f"{where}: SRDF {srdf_path} does not exist")
    controllers_in = data.get("controllers") or {}
    try:
        controllers = ControllerTopics(**controllers_in)
    except TypeError as exc:
        raise ValueError(f"{where}: controllers: {exc}") from None
    ready = data.get("ready_pose")
    offset = data.get("tcp_offset")
    return RobotProfile(
        name=name,
        joints=joints,
        limits=limits,
        scaling=float(data.get("scaling", 0.5)),
        urdf=urdf,
        base_frame=str(data.get("base_frame", "base_link")),
        tcp_frame=str(data.get("tcp_frame", "tool0")),
        workspace_frames=tuple(data.get("workspace_frames", ()) or ()),
        gripper=gripper,
        fixed_joints={str(k): float(v) for k, v in (data.get("fixed_joints") or {}).items()},
        srdf=srdf_path,
        source=source,
        hand_frame=str(data.get("hand_frame") or ""),
        tcp_offset=_floats(where, "tcp_offset", offset, 3) if offset is not None else None,
        camera_frame=str(data.get("camera_frame") or "camera_color_optical_frame"),
        ready_pose=_floats(where, "ready_pose", ready) if ready is not None else None,
        controllers=controllers,
    )


def profile_path(name_or_path: str | Path) -> Path:
    """The YAML file of a profile name (config/robots/<name>.yaml) or the path itself."""
    from vla_stack.paths import config_path

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_path("robots", f"{name_or_path}.yaml")
    return path


def shipped_profiles() -> list[str]:
    """Names of the profiles under config/robots."""
    from vla_stack.paths import config_path

    folder = config_path("robots")
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


_CACHE: dict[tuple[str, str], RobotProfile] = {}


def load_robot_profile(name_or_path: str | Path = DEFAULT_ROBOT, urdf_override: str = "") -> RobotProfile:
    """Load `config/robots/<name>.yaml` (or a YAML file path) as a RobotProfile.

    Profiles are immutable; a loaded one is cached per (file, urdf_override).

    Args:
        name_or_path: profile name (a file stem under config/robots) or path to a YAML file.
        urdf_override: URDF path (or `builtin:<name>`) replacing the profile's `urdf`.

    Raises:
        FileNotFoundError: no such profile (the message lists the shipped ones).
        ValueError: the profile is malformed (the message names the key).
    """
    import yaml

    if not str(name_or_path):
        raise ValueError(f"robot profile name is empty (shipped profiles: {shipped_profiles()})")
    path = profile_path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"robot profile '{name_or_path}' not found at {path} (shipped profiles: {shipped_profiles()})")
    key = (f"{path.resolve()}@{path.stat().st_mtime_ns}", str(urdf_override))
    if key in _CACHE:
        return _CACHE[key]
    with open(path) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, Mapping):
        raise ValueError(f"robot profile {path} must be a YAML mapping")
    profile = profile_from_dict(data, source=path, urdf_override=urdf_override)
    _CACHE[key] = profile
    return profile
