"""Assembles the expert's `Observation` from the latest inputs, rejecting bad or stale ones.

The action expert node feeds every incoming message (already converted to core types) into an
`ObservationBuilder`; at each control tick it asks `build(now)` for an observation. Each
`update_*` validates its input and raises `InputRejected` (with a reason a lab operator can act
on) instead of storing a bad value; `build` raises `InputRejected` when something needed is
missing or too old, so the node requests no chunk and the robot finishes/holds the last one.

Ages are measured against the stack clock `now` (s): joint state and target by their stamps,
planner inputs and tactile by their receipt times (their messages carry no stamp).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.contracts import ContractError, parse_subtask
from vla_stack.core.policy.types import (
    LATENT_DIM,
    PLANNER_SKILL_SUBTASK,
    SUBTASKS,
    Observation,
    tactile_features,
)
from vla_stack.core.robot_profile import RobotProfile, load_robot_profile
from vla_stack.core.types import JointState, Pose, Wrench


class InputRejected(ValueError):
    """An input was rejected or the observation cannot be built.

    Args:
        code: short key for counters ("nan", "stale", "missing", "frame", "malformed", "waiting").
        reason: what happened and what the node does instead.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class ObservationConfig:
    """Freshness bounds and conventions of the expert's inputs.

    The robot's layout (arm joints in action order, finger joints and width scale, base frame)
    is not configured here: it comes from the robot profile given to `ObservationBuilder`.
    """

    max_state_age: float = field(default=0.2, metadata={"help": "joint_states older than this (s) -> no new chunk"})
    max_target_age: float = field(default=2.0, metadata={"help": "grounding target older than this (s) -> no new chunk; 0 = no limit"})
    max_planner_age: float = field(default=5.0, metadata={"help": "planner latent/subtask older than this (s) are ignored (zeros); 0 = no limit"})
    use_planner_latent: bool = field(default=True, metadata={"help": "feed planner/latent to the expert (the shipped checkpoint was trained on the offline planner's latents; false = act on the subtask alone)"})
    follow_planner_status: bool = field(default=True, metadata={"help": "hold (no new chunks) while the planner's subtask status is not 'active'"})
    max_tactile_age: float = field(default=0.5, metadata={"help": "wrench/tactile older than this (s) are left out"})
    target_center_offset: float = field(default=0.02, metadata={"help": "object centre = grasp point - this along z, m"})
    place_position: tuple[float, ...] = field(default=(), metadata={"help": "place point [x, y, z] in the base frame, m; [] = from the planner subtask"})
    use_tactile: bool = field(default=True, metadata={"help": "feed wrench/tactile features when fresh"})
    tactile_pads: tuple[str, ...] = field(default=("left", "right"), metadata={"help": "fingertip pads (tactile/<pad>/force and /image)"})
    taxel_area: float = field(default=1.59375e-06, metadata={"help": "area of one taxel, m² (contact area = taxels above the threshold x this)"})
    contact_threshold: float = field(default=1.0, metadata={"help": "taxel pressure counted as contact, kPa"})
    hand_target_when_holding: bool = field(
        default=True,
        metadata={"help": "while the gripper holds an object, the target is the hand's grasp point (forward "
                  "kinematics) instead of grounding's: an object in the hand moves with the hand, and cameras "
                  "often lose it behind the fingers; after a release the object stays where the hand left it, which is the "
                  "target until grounding publishes a newer one (needs a hand model: the node builds one from the robot profile's URDF)"},
    )
    max_grasp_offset: float = field(
        default=0.05,
        metadata={"help": "when the hand closes on an object, the grounded grasp point (position and yaw) is kept "
                  "relative to the hand while it is held and after its release, unless it is farther than this from "
                  "the hand (then the hand's own grasp point is used), m"},
    )
    holding_width: tuple[float, ...] = field(
        default=(0.012, 0.075),
        metadata={"help": "gripper widths [min, max] m that count as holding an object (closed empty ≈ 0.004, open 0.08)"},
    )
    holding_force: float = field(
        default=1.0, metadata={"help": "with fresh fingertip pads, both must press at least this hard to count as holding, N"}
    )

    def __post_init__(self) -> None:
        for name in ("max_state_age", "max_target_age", "max_planner_age", "max_tactile_age", "taxel_area", "contact_threshold"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_state_age <= 0:
            raise ValueError("max_state_age must be > 0")
        if len(self.place_position) not in (0, 3):
            raise ValueError(f"place_position needs 3 values or none, got {list(self.place_position)}")
        if len(self.holding_width) != 2 or not 0 <= self.holding_width[0] < self.holding_width[1]:
            raise ValueError(f"holding_width must be [min, max] with 0 <= min < max, got {list(self.holding_width)}")


def fold_yaw(yaw: float) -> float:
    """Fold a yaw into [-pi/2, pi/2): a parallel gripper is symmetric under a half turn."""
    return (float(yaw) + np.pi / 2) % np.pi - np.pi / 2


def yaw_from_quaternion(quaternion_xyzw: np.ndarray) -> float:
    """Rotation about z (rad) of a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in quaternion_xyzw)
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


@dataclass(frozen=True)
class PlannerSubtask:
    """What the expert takes from a `planner/subtask` JSON.

    Args:
        subtask_id: index into `SUBTASKS` (0 = none / a skill the expert has no counterpart for).
        skill: the planner's skill name.
        status: the planner's status ("active" = execute now; "" when the JSON has none).
        place: place point (3,) from arguments.place_position, or None.
    """

    subtask_id: int
    skill: str
    status: str
    place: np.ndarray | None


HOLD_STATUSES = frozenset({"pending", "waiting", "paused", "done", "failed", "cancelled"})
"""Planner statuses that mean "do not move" (only "active" means execute now)."""


def subtask_from_json(text: str) -> PlannerSubtask:
    """Parse a `planner/subtask` JSON (see `vla_stack.core.planning.skills`).

    Read with the one parser of the message (`vla_stack.core.contracts.parse_subtask`); the
    skill is mapped with `PLANNER_SKILL_SUBTASK` (the expert's own subtask names are accepted
    too; an unknown skill is "none"). A place point is taken from arguments.place_position
    ([x, y, z], base frame).

    Raises InputRejected("malformed") on invalid JSON, a newer message version, a field of the
    wrong type or a malformed place point.
    """
    try:
        message = parse_subtask(text)
    except ContractError as exc:
        raise InputRejected("malformed", f"{exc}; ignoring it") from exc
    skill = message.skill
    name = PLANNER_SKILL_SUBTASK.get(skill, skill)
    sid = SUBTASKS.index(name) if name in SUBTASKS else 0
    place = None
    args = message.arguments
    if "place_position" in args:
        try:
            place = np.asarray(args["place_position"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise InputRejected("malformed", f"subtask place_position is not numeric: {exc}") from exc
        if place.shape != (3,) or not np.all(np.isfinite(place)):
            raise InputRejected("malformed", f"subtask place_position must be 3 finite numbers, got {args['place_position']}")
    return PlannerSubtask(sid, skill, message.status, place)


class ObservationBuilder:
    """Latest inputs -> `Observation` (see the module docstring).

    Args:
        config: bounds and conventions.
        hand_position: arm joint positions (n,) -> pose of the hand's grasp frame (TCP) in the base
            frame, 4x4 (or its position (3,): then the object's yaw is not turned with the hand), for
            `hand_target_when_holding`; None disables it.
        profile: the robot: arm joints (action order), gripper joints and width scale, base frame
            of targets ('' frame_id accepted as it). None = the default robot profile.

    Raises:
        ValueError: the robot has no gripper (the expert's observation includes its width).
    """

    def __init__(self, config: ObservationConfig | None = None, hand_position=None,
                 profile: RobotProfile | None = None) -> None:
        self.config = config or ObservationConfig()
        self.hand_position = hand_position
        self.profile = profile = profile or load_robot_profile()
        if profile.gripper is None:
            raise ValueError(f"robot profile '{profile.name}' has no gripper: the expert's observation needs one")
        self.gripper = profile.gripper
        self.arm_joints = profile.joints
        self.base_frame = profile.base_frame
        self.reset()

    def reset(self) -> None:
        """Forget every input."""
        self.state: tuple[np.ndarray, float, float] | None = None  # arm q, width, stamp
        self.target: tuple[np.ndarray, float, float] | None = None  # grasp point, yaw, stamp
        self.place: np.ndarray | None = (np.asarray(self.config.place_position, dtype=np.float64)
                                         if self.config.place_position else None)
        # where the place point came from; priority: parameter > planner subtask > grounding
        self.place_source = "parameter" if self.place is not None else ""
        self.subtask: tuple[PlannerSubtask, float] | None = None
        self.latent: tuple[np.ndarray, float] | None = None
        self.wrench: tuple[Wrench, float] | None = None
        self.pads: dict[str, tuple[float, float, float]] = {}  # pad -> (normal force N, area m², receipt)
        self.images: dict[str, np.ndarray] = {}
        self.instruction = ""
        # arm positions and stamp of the last joint state that held the object: after a release the
        # object stays where that hand left it, the target until grounding publishes something newer
        self.released: tuple[np.ndarray, float] | None = None
        # object grasp frame in the hand frame, fixed when the hand closes on it (rigid grasp)
        self.grasp_in_hand: np.ndarray | None = None
        self._was_holding = False

    # ---- inputs ---------------------------------------------------------------------------------
    def update_joint_state(self, state: JointState) -> None:
        """Store the arm positions and gripper width of a joint state (names in any order)."""
        try:
            q = state.position_of(self.arm_joints)
        except KeyError as exc:
            raise InputRejected("missing", f"joint_states rejected: {exc.args[0]}") from exc
        fingers = [n for n in self.gripper.joints if n in state.names]
        width = self.gripper.width_from_joints(dict(zip(fingers, state.position_of(fingers), strict=True))) if fingers else float("nan")
        if not np.all(np.isfinite(q)):
            raise InputRejected("nan", f"joint_states rejected: arm positions contain NaN/inf {q.tolist()}")
        if not fingers or not np.isfinite(width):
            raise InputRejected("missing", f"joint_states rejected: no finite gripper joint among {list(self.gripper.joints)}")
        if not np.isfinite(state.stamp) or state.stamp < 0:
            raise InputRejected("malformed", f"joint_states rejected: bad stamp {state.stamp}")
        self.state = (q, float(np.clip(width, 0.0, self.gripper.max_width)), float(state.stamp))
        # every state, not only at inference: the release pose is the last holding one
        holding = self.holding(float(state.stamp))
        if holding:
            if not self._was_holding:  # the hand just closed on it
                self.grasp_in_hand = self._grasp_in_hand(q)
            self.released = (q, float(state.stamp))
        elif self.released is not None and self.state[1] < self.config.holding_width[0]:
            self.released = self.grasp_in_hand = None  # closed on nothing: it slipped out, no longer in the hand
        self._was_holding = holding

    def _hand(self, q: np.ndarray) -> tuple[np.ndarray, bool]:
        """4x4 hand pose and whether the hand model gives its rotation (a position-only model does not)."""
        h = np.asarray(self.hand_position(q), dtype=np.float64)
        if h.shape == (4, 4):
            return h, True
        T = np.eye(4)
        T[:3, 3] = h.reshape(3)
        return T, False

    def _grasp_in_hand(self, q: np.ndarray) -> np.ndarray | None:
        """The grounded grasp frame (position, yaw) relative to the hand as it closes on the object.
        A grounded point farther than `max_grasp_offset` from the hand was not this object: the
        hand's own grasp point is used, with grounding's yaw. None without a grounded target."""
        if self.target is None:
            return None
        hand, _ = self._hand(q)
        pos, yaw, _ = self.target
        if np.linalg.norm(pos - hand[:3, 3]) > self.config.max_grasp_offset:
            pos = hand[:3, 3]
        obj = np.eye(4)
        obj[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
        obj[:3, 3] = pos
        return np.linalg.inv(hand) @ obj

    def _in_hand(self, q: np.ndarray, fallback_yaw: float) -> tuple[np.ndarray, float]:
        """Grasp point and folded yaw of the object held by (or released from) the hand at `q`."""
        hand, rotates = self._hand(q)
        if self.grasp_in_hand is None:
            return hand[:3, 3].copy(), fallback_yaw
        T = hand @ self.grasp_in_hand
        if not rotates:
            return T[:3, 3].copy(), fallback_yaw  # position-only model: the yaw stays grounding's
        return T[:3, 3].copy(), fold_yaw(float(np.arctan2(T[1, 0], T[0, 0])))

    def update_target(self, pose: Pose) -> None:
        """Store the grounded grasp point (pose position) and grasp yaw (rotation of the pose about z,
        folded into [-pi/2, pi/2): a parallel gripper is symmetric under a half turn, and the expert
        was trained on folded yaws)."""
        yaw = fold_yaw(yaw_from_quaternion(pose.orientation))
        if pose.frame_id not in ("", self.base_frame):
            raise InputRejected("frame", f"grounding target rejected: frame '{pose.frame_id}' is not the base frame "
                                         f"'{self.base_frame}' (no tf2 lookup here)")
        if not (np.all(np.isfinite(pose.position)) and np.isfinite(yaw)):
            raise InputRejected("nan", "grounding target rejected: NaN/inf")
        if np.linalg.norm(pose.position) > 3.0:
            raise InputRejected("malformed", f"grounding target rejected: {np.round(pose.position, 3).tolist()} m is "
                                             "more than 3 m from the robot base")
        self.target = (pose.position.copy(), float(yaw), float(pose.stamp))

    def holding(self, now: float) -> bool:
        """True when the gripper holds an object (width in `holding_width`, and both pads pressing when
        their readings are fresh) and a hand model is available for the in-hand target."""
        cfg = self.config
        if not cfg.hand_target_when_holding or self.hand_position is None or self.state is None:
            return False
        width = self.state[1]
        if not cfg.holding_width[0] <= width <= cfg.holding_width[1]:
            return False
        pads = [self.pads.get(p) for p in cfg.tactile_pads]
        if pads and all(p is not None and now - p[2] <= cfg.max_tactile_age for p in pads):
            return all(p[0] >= cfg.holding_force for p in pads)
        return True

    def update_subtask(self, text: str, now: float) -> None:
        """Store the planner's subtask (JSON) received at `now`."""
        sub = subtask_from_json(text)
        self.subtask = (sub, now)
        if sub.place is not None and self.place_source != "parameter":
            self.place, self.place_source = sub.place, "subtask"

    def update_place(self, pose: Pose) -> None:
        """Store grounding's place point (grounding/place_target: where the grasp point goes), used
        when neither the place_position parameter nor the planner's subtask gives one.

        Raises InputRejected ("frame", "nan", "malformed") like `update_target`.
        """
        if pose.frame_id not in ("", self.base_frame):
            raise InputRejected("frame", f"place target rejected: frame '{pose.frame_id}' is not the base frame "
                                         f"'{self.base_frame}'")
        if not np.all(np.isfinite(pose.position)):
            raise InputRejected("nan", "place target rejected: NaN/inf")
        if np.linalg.norm(pose.position) > 3.0:
            raise InputRejected("malformed", "place target rejected: more than 3 m from the robot base")
        if self.place_source in ("", "grounding"):
            self.place, self.place_source = pose.position.copy(), "grounding"

    def update_latent(self, latent: np.ndarray, now: float) -> None:
        """Store the planner latent received at `now` (as published; the policy maps it to its inputs)."""
        arr = np.asarray(latent, dtype=np.float64).reshape(-1)
        if arr.size == 0 or not np.all(np.isfinite(arr)):
            raise InputRejected("nan", "planner latent rejected: empty or NaN/inf; using none")
        if arr.size > 65536:
            raise InputRejected("malformed", f"planner latent rejected: {arr.size} values is not a latent; using none")
        self.latent = (arr, now)

    def update_wrench(self, wrench: Wrench, now: float) -> None:
        """Store the wrist wrench received at `now`."""
        if not (np.all(np.isfinite(wrench.force)) and np.all(np.isfinite(wrench.torque))):
            raise InputRejected("nan", "wrench rejected: NaN/inf")
        self.wrench = (wrench, now)

    def update_pad(self, pad: str, normal_force: float | None = None, pressure: np.ndarray | None = None,
                   now: float = 0.0) -> None:
        """Store a fingertip pad's normal force (N) and/or its pressure image (kPa) received at `now`."""
        old = self.pads.get(pad, (0.0, 0.0, now))
        force, area = old[0], old[1]
        if normal_force is not None:
            if not np.isfinite(normal_force):
                raise InputRejected("nan", f"tactile/{pad}/force rejected: NaN/inf")
            force = float(normal_force)
        if pressure is not None:
            p = np.asarray(pressure, dtype=np.float64)
            if p.size == 0 or not np.all(np.isfinite(p)):
                raise InputRejected("nan", f"tactile/{pad}/image rejected: empty or NaN/inf")
            area = float(np.count_nonzero(p > self.config.contact_threshold)) * self.config.taxel_area
        self.pads[pad] = (force, area, now)

    def update_image(self, name: str, image: np.ndarray) -> None:
        """Store a named RGB image (for backends that take images)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            raise InputRejected("malformed", f"image '{name}' rejected: expected (H, W, 3) RGB, got {image.shape}")
        self.images[name] = image

    def update_instruction(self, text: str) -> None:
        """Store the (rewritten) instruction."""
        self.instruction = str(text)

    # ---- build ------------------------------------------------------------------------------------
    def build(self, now: float) -> Observation:
        """The observation at `now`.

        Raises InputRejected: "waiting" (no joint state / target / place yet), "stale"
        (joint state or target older than its bound) or "planner" (the planner's subtask is
        not active: paused, waiting, done, ...).
        """
        cfg = self.config
        if self.state is None:
            raise InputRejected("waiting", "waiting for joint_states")
        if self.target is None:
            raise InputRejected("waiting", "waiting for grounding/target")
        if self.place is None:
            raise InputRejected("waiting", "waiting for a place point (parameter place_position, planner subtask or "
                                           "grounding/place_target)")
        q, width, stamp = self.state
        age = now - stamp
        if age > cfg.max_state_age:
            raise InputRejected("stale", f"joint_states are {age:.3f} s old (> {cfg.max_state_age} s): no new chunk")
        grasp, yaw, t_stamp = self.target
        holding = self.holding(now)
        # the gripper opened on an object it held (placed it); closed on nothing = it slipped out instead
        let_go = not holding and self.released is not None and width > cfg.holding_width[1]
        if holding:
            # the object is in the hand: it moves with the hand (grounding may have lost it behind the fingers)
            grasp, yaw = self._in_hand(q, yaw)
        elif let_go and t_stamp <= self.released[1]:
            # placed since grounding last saw it: it stays where the hand left it, and the expert needs that
            # target to move clear even when grounding does not recognise the object there
            grasp, yaw = self._in_hand(self.released[0], yaw)
        elif cfg.max_target_age > 0 and t_stamp > 0 and now - t_stamp > cfg.max_target_age:
            raise InputRejected("stale", f"grounding target is {now - t_stamp:.2f} s old (> {cfg.max_target_age} s): "
                                         "no new chunk until grounding publishes again")
        latent, subtask = np.zeros(LATENT_DIM), 0

        def fresh(t: float) -> bool:
            return cfg.max_planner_age <= 0 or now - t <= cfg.max_planner_age

        if cfg.use_planner_latent and self.latent is not None and fresh(self.latent[1]):
            latent = self.latent[0]
        if self.subtask is not None:
            sub = self.subtask[0]
            if cfg.follow_planner_status and sub.status in HOLD_STATUSES:
                raise InputRejected("planner", f"planner subtask '{sub.skill}' is '{sub.status}': holding, no new chunk")
            if cfg.follow_planner_status and not fresh(self.subtask[1]):
                # the planner republishes its subtask every second: silence means it died or hangs
                raise InputRejected("planner", f"planner silent for {now - self.subtask[1]:.1f} s (> max_planner_age "
                                               f"{cfg.max_planner_age:g} s): holding until it is back")
            if fresh(self.subtask[1]):
                subtask = sub.subtask_id
                if sub.skill == "place" and let_go:
                    # the planner's place covers letting go *and* moving clear; the expert's vocabulary
                    # splits it: "place" ends at the release, "retreat" follows. Its latent was the
                    # place step's: left out (the expert was trained with latent dropout)
                    subtask, latent = SUBTASKS.index("retreat"), np.zeros(LATENT_DIM)
        tactile = None
        if cfg.use_tactile and self.wrench is not None and now - self.wrench[1] <= cfg.max_tactile_age:
            pads = [self.pads.get(p) for p in cfg.tactile_pads]
            if all(p is not None and now - p[2] <= cfg.max_tactile_age for p in pads):
                w = self.wrench[0]
                tactile = tactile_features(w.force, w.torque, [[p[0]] for p in pads], [p[1] for p in pads])
        return Observation(
            arm_positions=q, gripper_width=width,
            target_position=grasp - np.array([0.0, 0.0, cfg.target_center_offset]), grasp_position=grasp,
            grasp_yaw=yaw, place_position=self.place, planner_latent=latent, subtask_id=subtask,
            tactile=tactile, stamp=stamp, instruction=self.instruction, images=dict(self.images),
        )
