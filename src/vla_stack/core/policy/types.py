"""The policy boundary: a typed `Observation` in, an `ActionChunk` out.

Every policy backend (the built-in flow-matching expert, a remote openpi server, the scripted
demonstrator in tests) implements the `Policy` protocol:

    chunk = policy.infer(observation)            # ActionChunk, H points
    chunk = policy.infer(observation, guidance)  # real-time chunking (if supports_guidance)
    policy.reset()                               # new episode

Frames and units: every position is in the robot base frame (the robot profile's
`base_frame`, = MuJoCo world in simulation), m; angles rad; forces N, torques N·m; stamps float
seconds on the stack clock.

Action convention: an action is the vector (arm joint targets rad, in the robot profile's joint
order, then the gripper opening width m). In an `ActionChunk` the gripper appears as the column
`gripper_joint` (the profile's `gripper.joint`) holding width / `gripper_width_per_unit` (the
profile's `gripper.width_per_unit`: 2 for a hand whose two fingers each move half the opening),
which is what the safety controller expects. Point i of a chunk computed from an
observation stamped t is the target for time t + (i + 1) · control_period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from vla_stack.core.robot_profile import RobotProfile
from vla_stack.core.types import ActionChunk

SUBTASKS: tuple[str, ...] = ("none", "pick", "place", "retreat", "hold")
"""Subtask vocabulary the built-in expert was trained with (index = subtask id; 0 = none).

Training derives it from the demonstrator's phase (approach/descend/grasp -> pick,
lift/carry/lower/release -> place, retreat, final hold). The planner's skills map onto it with
`PLANNER_SKILL_SUBTASK`; a skill without a counterpart maps to 0 ("none") and the expert then
relies on the observation alone.
"""

PLANNER_SKILL_SUBTASK: dict[str, str] = {"pick": "pick", "place": "place", "go_home": "retreat", "wait": "hold"}
"""Planner skill (vla_stack.core.planning.skills) -> expert subtask; others -> "none"."""

LATENT_DIM = 16
"""Number of planner-latent inputs of the built-in expert (the planner's latent is projected to
this many by the checkpoint's `LatentProjection`; all zeros = no planner)."""

TACTILE_DIM = 10
"""Length of the tactile/wrench feature vector (`tactile_features`)."""

ACTION_DIM = 8
"""Actions of the built-in expert's default configuration: 7 arm joints + gripper width (the
robot it ships for; a checkpoint records its robot profile and action dimension, and the
loader refuses another robot, `checkpoint.py`)."""


class PolicyError(RuntimeError):
    """A policy could not produce a chunk (server down, timeout, bad reply, bad input).

    Args:
        code: stable short key for counters and status ("timeout", "disconnected",
            "bad_reply", "bad_observation", ...).
        reason: what happened, for a lab operator.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _vector(name: str, value, length: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (length,):
        raise ValueError(f"{name} must have {length} values, got shape {np.shape(value)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN/inf: {arr.tolist()}")
    return arr


def tactile_features(
    wrench_force: Sequence[float] | None = None,
    wrench_torque: Sequence[float] | None = None,
    pad_forces: Sequence[Sequence[float]] = (),
    pad_contact_areas: Sequence[float] = (),
) -> np.ndarray:
    """The (TACTILE_DIM,) tactile/wrench feature vector of an `Observation`.

    Layout: wrist force (3, N, hand frame), wrist torque (3, N·m), normal force of the left and
    right fingertip pads (2, N; z of the pad force), contact area of the left and right pads
    (2, cm²). Missing parts are zeros.
    """
    out = np.zeros(TACTILE_DIM)
    if wrench_force is not None:
        out[0:3] = np.asarray(wrench_force, dtype=np.float64)
    if wrench_torque is not None:
        out[3:6] = np.asarray(wrench_torque, dtype=np.float64)
    for i, f in enumerate(list(pad_forces)[:2]):
        out[6 + i] = float(np.asarray(f, dtype=np.float64).reshape(-1)[-1])
    for i, a in enumerate(list(pad_contact_areas)[:2]):
        out[8 + i] = float(a) * 1e4
    if not np.all(np.isfinite(out)):
        raise ValueError("tactile/wrench features contain NaN/inf")
    return out


@dataclass(frozen=True)
class Observation:
    """What the fast policy sees at one control step (all base frame, SI units).

    Args:
        arm_positions: (n,) measured arm joint positions, rad (the robot profile's joint order).
        gripper_width: measured opening between the fingers, m (>= 0; the observation builder
            clips it to the profile's gripper width range).
        target_position: (3,) grounded object point (its centre), m.
        grasp_position: (3,) where the TCP should close on the object, m.
        grasp_yaw: rotation of the grasp about base z, rad (fingers close across it).
        place_position: (3,) where the object's grasp point should end up, m.
        planner_latent: the slow planner's latent as published (any length, e.g. 384 for the
            offline planner); all zeros when none. The built-in expert maps it to its
            LATENT_DIM inputs with its checkpoint's `LatentProjection` (`latent.py`).
        subtask_id: index into `SUBTASKS` of the planner's current subtask; 0 when none.
        tactile: (TACTILE_DIM,) wrench/tactile features (`tactile_features`), or None when
            the robot has no such sensors.
        stamp: time of the observation (joint state stamp), s.
        instruction: the (rewritten) instruction text, for backends that take a prompt.
        images: named RGB images (H, W, 3) uint8 for backends that take cameras (e.g.
            "prompted" = the grounding node's highlighted image); the built-in expert ignores them.
    """

    arm_positions: np.ndarray
    gripper_width: float
    target_position: np.ndarray
    grasp_position: np.ndarray
    grasp_yaw: float
    place_position: np.ndarray
    planner_latent: np.ndarray = field(default_factory=lambda: np.zeros(LATENT_DIM))
    subtask_id: int = 0
    tactile: np.ndarray | None = None
    stamp: float = 0.0
    instruction: str = ""
    images: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arm = np.asarray(self.arm_positions, dtype=np.float64)
        if arm.ndim != 1 or arm.size == 0:
            raise ValueError(f"arm_positions must be a non-empty vector, got shape {arm.shape}")
        object.__setattr__(self, "arm_positions", _vector("arm_positions", arm, arm.size))
        for name in ("target_position", "grasp_position", "place_position"):
            object.__setattr__(self, name, _vector(name, getattr(self, name), 3))
        latent = np.asarray(self.planner_latent, dtype=np.float64).reshape(-1)
        if latent.size == 0:
            latent = np.zeros(LATENT_DIM)
        object.__setattr__(self, "planner_latent", _vector("planner_latent", latent, latent.size))
        width = float(self.gripper_width)
        if not np.isfinite(width) or width < -0.01:
            raise ValueError(f"gripper_width must be finite and >= 0 m, got {width}")
        object.__setattr__(self, "gripper_width", width)
        yaw = float(self.grasp_yaw)
        if not np.isfinite(yaw):
            raise ValueError(f"grasp_yaw must be finite, got {yaw}")
        object.__setattr__(self, "grasp_yaw", yaw)
        if not 0 <= int(self.subtask_id) < len(SUBTASKS):
            raise ValueError(f"subtask_id must be in 0..{len(SUBTASKS) - 1}, got {self.subtask_id}")
        object.__setattr__(self, "subtask_id", int(self.subtask_id))
        if self.tactile is not None:
            object.__setattr__(self, "tactile", _vector("tactile", self.tactile, TACTILE_DIM))
        if not np.isfinite(self.stamp) or self.stamp < 0:
            raise ValueError(f"stamp must be finite and >= 0, got {self.stamp}")


@dataclass(frozen=True)
class Guidance:
    """Real-time chunking constraint for the next chunk (see `vla_stack.core.policy.rtc`).

    Args:
        prefix: (H, ACTION_DIM) absolute actions (arm rad, gripper width m) the robot will
            execute (or has committed to) at the steps of the new chunk; rows beyond the
            committed ones are ignored (weight 0).
        weights: (H,) guidance weight per step in [0, 1]: 1 for the first d (frozen) steps,
            decaying over the rest of the overlap, 0 after it.
        max_guidance_weight: clip of the guidance gain (β in the paper).
    """

    prefix: np.ndarray
    weights: np.ndarray
    max_guidance_weight: float = 5.0

    def __post_init__(self) -> None:
        prefix = np.asarray(self.prefix, dtype=np.float64)
        weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        if prefix.ndim != 2 or prefix.shape[0] != weights.shape[0]:
            raise ValueError(f"prefix must be (H, D) with H = len(weights) = {weights.shape[0]}, got {prefix.shape}")
        if not np.all(np.isfinite(prefix[weights > 0])):
            raise ValueError("guidance prefix contains NaN/inf where its weight is > 0")
        if np.any(weights < 0) or np.any(weights > 1):
            raise ValueError("guidance weights must lie in [0, 1]")
        if not self.max_guidance_weight > 0:
            raise ValueError(f"max_guidance_weight must be > 0, got {self.max_guidance_weight}")
        object.__setattr__(self, "prefix", np.nan_to_num(prefix))
        object.__setattr__(self, "weights", weights)


@dataclass(frozen=True)
class PolicyMetadata:
    """What a policy produces.

    Args:
        name: backend name (registry key) and model id.
        horizon: points per chunk H.
        control_period: time between chunk points, s.
        arm_joints: arm joint names in action order (the robot profile's `joints`).
        gripper_joint: name of the gripper column in chunks ("" = no gripper).
        supports_guidance: True if `infer` honours a `Guidance` (real-time chunking).
        gripper_width_per_unit: opening width, m, per unit of the gripper column.
        robot: name of the robot profile the policy acts for.

    Build it from a profile with `PolicyMetadata.for_robot`.
    """

    name: str
    horizon: int
    control_period: float
    arm_joints: tuple[str, ...] = ()
    gripper_joint: str = ""
    supports_guidance: bool = False
    gripper_width_per_unit: float = 1.0
    robot: str = ""

    @classmethod
    def for_robot(cls, profile: RobotProfile, name: str, horizon: int, control_period: float,
                  supports_guidance: bool = False) -> PolicyMetadata:
        """Metadata whose action layout (joints, gripper column, width scale) is `profile`'s."""
        g = profile.gripper
        return cls(name=name, horizon=horizon, control_period=control_period, arm_joints=tuple(profile.joints),
                   gripper_joint=g.joint if g else "", supports_guidance=supports_guidance,
                   gripper_width_per_unit=g.width_per_unit if g else 1.0, robot=profile.name)

    @property
    def action_dim(self) -> int:
        """Arm joints + gripper (if any)."""
        return len(self.arm_joints) + (1 if self.gripper_joint else 0)


@runtime_checkable
class Policy(Protocol):
    """The robot/model boundary shared by every backend."""

    metadata: PolicyMetadata

    def infer(self, observation: Observation, guidance: Guidance | None = None) -> ActionChunk:
        """Chunk of `metadata.horizon` future targets for `observation`.

        Args:
            observation: the current observation.
            guidance: real-time chunking constraint (ignored by backends whose
                `metadata.supports_guidance` is False).

        Returns:
            ActionChunk with `stamp` = observation.stamp, times (i + 1) · control_period,
            columns = arm joints + gripper column.

        Raises:
            PolicyError: no chunk could be produced (the reason says why).
        """
        ...

    def reset(self) -> None:
        """Forget per-episode state (sampler seed, connections stay)."""
        ...


def actions_to_chunk(actions: np.ndarray, stamp: float, metadata: PolicyMetadata,
                     time_offset: float = 0.0) -> ActionChunk:
    """(H, action_dim) actions -> ActionChunk (gripper width -> gripper column).

    Args:
        actions: rows of (arm joint targets rad, gripper width m).
        stamp: observation time, s.
        metadata: the policy's metadata (joint names, control period).
        time_offset: added to every point time, s (e.g. the inference delay for `sync`).
    """
    actions = np.asarray(actions, dtype=np.float64)
    h = actions.shape[0]
    times = time_offset + metadata.control_period * np.arange(1, h + 1)
    positions = actions.copy()
    names = tuple(metadata.arm_joints)
    if metadata.gripper_joint:
        positions[:, -1] = positions[:, -1] / metadata.gripper_width_per_unit
        names = names + (metadata.gripper_joint,)
    return ActionChunk(names, times, positions, stamp=float(stamp))


def chunk_to_actions(chunk: ActionChunk, metadata: PolicyMetadata) -> np.ndarray:
    """ActionChunk -> (H, action_dim) actions in metadata order (gripper column -> width, m).

    Raises ValueError if a joint of the metadata is missing from the chunk.
    """
    cols = {n: i for i, n in enumerate(chunk.joint_names)}
    names = list(metadata.arm_joints) + ([metadata.gripper_joint] if metadata.gripper_joint else [])
    missing = [n for n in names if n not in cols]
    if missing:
        raise ValueError(f"chunk lacks joint(s) {missing}; it has {list(chunk.joint_names)}")
    actions = chunk.positions[:, [cols[n] for n in names]].copy()
    if metadata.gripper_joint:
        actions[:, -1] *= metadata.gripper_width_per_unit
    return actions
