"""What the planner knows about the robot and the scene, and whether a subtask is done.

`WorldModel` collects the latest joint states, fingertip contact forces, wrist wrench and the
grounding result, each with the planner-clock time it arrived. `SubtaskMonitor` turns that into
a verdict per subtask (running / done / failed / waiting) with a reason an operator can read.

Everything here runs on an injected clock (float seconds): no wall-clock reads, no ROS.

Conventions: the robot (arm joints, finger joints, ready pose) comes from its `RobotProfile`
(config/robots/<robot>.yaml); gripper width = sum of the finger joint positions (m; a single
reported finger counts as the profile's `width_per_unit` times its position); positions in the
robot base frame (m); forces in N.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vla_stack.core.planning.skills import Subtask
from vla_stack.core.robot_profile import RobotProfile, load_robot_profile
from vla_stack.core.types import JointState, Pose, Wrench

GROUNDING_STATUSES = ("found", "not_found", "ambiguous", "no_reference")
"""Grounding outcomes the planner understands (see core/grounding/pipeline.py)."""


@dataclass
class MonitorConfig:
    """Thresholds of the progress monitor. Lengths m, angles rad, forces N, times s."""

    home_tolerance: float = field(
        default=0.05, metadata={"help": "go_home is done when every arm joint is this close to the robot's ready pose, rad"}
    )
    open_width: float = field(default=0.07, metadata={"help": "gripper width above which it counts as open, m"})
    empty_width: float = field(
        default=0.01, metadata={"help": "gripper width below which it is closed on nothing (missed grasp, drop), m"}
    )
    contact_force: float = field(
        default=1.0, metadata={"help": "normal force per fingertip pad that counts as contact, N"}
    )
    handover_pull_force: float = field(
        default=5.0, metadata={"help": "wrist force change that counts as a person pulling the object, N"}
    )
    confirm_time: float = field(
        default=0.3, metadata={"help": "a done/failed condition must hold this long before it counts, s"}
    )
    finger_still_speed: float = field(
        default=0.005, metadata={"help": "finger speed below which the gripper has stopped moving, m/s"}
    )
    stale_after: float = field(default=1.0, metadata={"help": "sensor data older than this is ignored, s"})
    subtask_timeout: float = field(
        default=60.0, metadata={"help": "an active subtask that takes longer than this fails, s (0 = never)"}
    )
    grounding_grace: float = field(
        default=2.0,
        metadata={"help": "once a pick has been under way with a target, grounding may lose the object for this "
                  "long (s) before the pick waits for it: approaching fingers hide the object from the camera"},
    )
    grounding_timeout: float = field(
        default=20.0,
        metadata={"help": "a pick waiting this long for grounding to find the object fails, s (0 = never)"},
    )
    exclusion_radius: float = field(
        default=0.05, metadata={"help": "a grounding target this close to an excluded one is the same object, m"}
    )
    wait_seconds: float = field(default=2.0, metadata={"help": "duration of a wait without seconds, s"})
    place_clear_time: float = field(
        default=2.0,
        metadata={"help": "a place is done once the object has been released for this long, s: the action expert "
                  "moves the hand clear of the object after letting go (it was trained to), and a place marked done "
                  "at the release would hold the open fingers around it"},
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.empty_width < self.open_width:
            raise ValueError(f"need 0 <= empty_width < open_width, got {self.empty_width}, {self.open_width}")
        for name in ("home_tolerance", "contact_force", "handover_pull_force", "stale_after", "exclusion_radius"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("confirm_time", "subtask_timeout", "grounding_grace", "grounding_timeout", "wait_seconds", "finger_still_speed",
                     "place_clear_time"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class GroundingState:
    """Latest grounding result.

    Args:
        status: "found" / "not_found" / "ambiguous" / "no_reference", or "" before any.
        status_time: planner time it arrived, s.
        target: latest grasp point (base frame), or None.
        target_time: planner time it arrived, s.
        instruction: latest rewritten instruction, "" before any.
        instruction_time: planner time it arrived, s.
        reason: grounding's explanation of its status.
    """

    status: str = ""
    status_time: float = -1.0
    target: Pose | None = None
    target_time: float = -1.0
    instruction: str = ""
    instruction_time: float = -1.0
    reason: str = ""


class WorldModel:
    """Latest observations, each with the planner-clock time it arrived.

    Args:
        config: thresholds.
        profile: the robot (arm joints, finger joints, ready pose of go_home); None = the
            default robot profile.

    Raises:
        ValueError: the robot has no gripper (the monitor judges grasps by its width).
    """

    def __init__(self, config: MonitorConfig, profile: RobotProfile | None = None) -> None:
        self.config = config
        self.profile = profile = profile or load_robot_profile()
        if profile.gripper is None:
            raise ValueError(f"robot profile '{profile.name}' has no gripper: the planner's monitor needs one")
        self.arm_joints = profile.joints
        self.finger_joints = profile.gripper.joints
        self.home_positions = profile.ready_pose
        self.gripper_width: float | None = None
        self.finger_speed: float | None = None
        self.arm_positions: np.ndarray | None = None
        self.joints_time = -1.0
        self.pad_forces: dict[str, tuple[float, float]] = {}  # pad -> (normal force N, time)
        self.wrench_force: np.ndarray | None = None
        self.wrench_time = -1.0
        self.grounding = GroundingState()
        self.rejected: list[str] = []

    # -- updates ------------------------------------------------------------------------------
    def update_joints(self, state: JointState, now: float) -> str | None:
        """Take gripper width and arm positions from `state`; returns a rejection reason or None.

        Joint states without the finger joints or with NaN in them are rejected (the last good
        values stay); the arm part is optional (a gripper-only driver may publish just fingers).
        """
        try:
            fingers = state.position_of(self.finger_joints)
        except KeyError as exc:
            return f"joint_states rejected: {exc.args[0]}"
        if not np.all(np.isfinite(fingers)):
            return f"joint_states rejected: finger positions contain NaN/inf ({fingers.tolist()})"
        self.gripper_width = float(np.sum(fingers)) * (self.profile.gripper.width_per_unit if len(fingers) == 1 else 1.0)
        if state.velocities is not None:
            index = {n: i for i, n in enumerate(state.names)}
            v = state.velocities[[index[n] for n in self.finger_joints]]
            self.finger_speed = float(np.sum(np.abs(v))) if np.all(np.isfinite(v)) else None
        else:
            self.finger_speed = None
        try:
            arm = state.position_of(self.arm_joints)
            self.arm_positions = arm if np.all(np.isfinite(arm)) else None
        except KeyError:
            self.arm_positions = None
        self.joints_time = now
        return None

    def update_pad_force(self, pad: str, normal_force: float, now: float) -> str | None:
        """Normal force of one fingertip pad (N, into the pad); NaN/inf rejected with a reason."""
        if not np.isfinite(normal_force):
            return f"tactile force of pad '{pad}' rejected: not finite ({normal_force})"
        self.pad_forces[pad] = (float(normal_force), now)
        return None

    def update_wrench(self, wrench: Wrench, now: float) -> str | None:
        """Wrist force (N); NaN/inf rejected with a reason."""
        if not (np.all(np.isfinite(wrench.force)) and np.all(np.isfinite(wrench.torque))):
            return "wrench rejected: contains NaN/inf"
        self.wrench_force = np.asarray(wrench.force, dtype=float)
        self.wrench_time = now
        return None

    def update_grounding_status(self, status: str, now: float, reason: str = "") -> str | None:
        """Grounding outcome ("found", ...); an unknown status is rejected with a reason."""
        if status not in GROUNDING_STATUSES:
            return f"grounding status '{status}' not understood (expected one of {GROUNDING_STATUSES})"
        self.grounding.status = status
        self.grounding.status_time = now
        self.grounding.reason = reason
        return None

    def update_grounding_target(self, target: Pose, now: float) -> str | None:
        """Grasp point of the grounded object (base frame, m); NaN rejected with a reason."""
        if not np.all(np.isfinite(target.position)):
            return "grounding target rejected: position contains NaN/inf"
        self.grounding.target = target
        self.grounding.target_time = now
        return None

    def update_grounding_instruction(self, text: str, now: float) -> None:
        """Rewritten instruction from grounding."""
        self.grounding.instruction = text
        self.grounding.instruction_time = now

    # -- derived ------------------------------------------------------------------------------
    def joints_fresh(self, now: float) -> bool:
        """True when joint states arrived within `stale_after`."""
        return self.gripper_width is not None and now - self.joints_time <= self.config.stale_after

    def in_contact(self, now: float) -> bool | None:
        """Both (all) fresh fingertip pads above the contact force; None without tactile data."""
        fresh = [f for f, t in self.pad_forces.values() if now - t <= self.config.stale_after]
        if not fresh:
            return None
        return all(f >= self.config.contact_force for f in fresh)

    def any_contact(self, now: float) -> bool | None:
        """Any fresh pad above the contact force; None without tactile data."""
        fresh = [f for f, t in self.pad_forces.values() if now - t <= self.config.stale_after]
        if not fresh:
            return None
        return any(f >= self.config.contact_force for f in fresh)

    def gripper_open(self, now: float) -> bool | None:
        """Width above open_width; None without fresh joint states."""
        if not self.joints_fresh(now):
            return None
        return bool(self.gripper_width > self.config.open_width)  # type: ignore[operator]

    def gripper_closed_empty(self, now: float) -> bool | None:
        """Fingers closed on nothing (width below empty_width); None without fresh joint states."""
        if not self.joints_fresh(now):
            return None
        return bool(self.gripper_width < self.config.empty_width)  # type: ignore[operator]

    def fingers_still(self) -> bool:
        """Finger speed below finger_still_speed (True when velocities are not published)."""
        return self.finger_speed is None or self.finger_speed <= self.config.finger_still_speed

    def holding(self, now: float) -> bool | None:
        """Something is between the closed fingers: width between empty and open, fingers
        stopped, and (when tactile data exists) both pads in contact. None without joint states."""
        if not self.joints_fresh(now):
            return None
        width = self.gripper_width
        assert width is not None
        if not (self.config.empty_width <= width <= self.config.open_width):
            return False
        contact = self.in_contact(now)
        if contact is not None:
            return contact
        return self.fingers_still()

    def at_home(self, now: float) -> bool | None:
        """Every arm joint within home_tolerance of the robot's ready pose; None without arm
        positions or when the profile has no ready pose."""
        if self.arm_positions is None or self.home_positions is None or not self.joints_fresh(now):
            return None
        err = np.abs(self.arm_positions - np.asarray(self.home_positions))
        return bool(np.all(err <= self.config.home_tolerance))

    def target_position(self, now: float, max_age: float | None = None) -> np.ndarray | None:
        """Latest grounding target position (m), or None when none or older than `max_age` s."""
        g = self.grounding
        if g.target is None:
            return None
        if max_age is not None and now - g.target_time > max_age:
            return None
        return np.asarray(g.target.position, dtype=float)

    def summary(self, now: float) -> dict[str, object]:
        """Key/values for the status topic."""
        width = "n/a" if self.gripper_width is None else f"{self.gripper_width:.4f}"
        holding = self.holding(now)
        return {
            "gripper_width_m": width,
            "holding": "unknown" if holding is None else holding,
            "contact": {None: "no tactile data", True: True, False: False}[self.in_contact(now)],
            "joint_states_age_s": "never" if self.joints_time < 0 else f"{now - self.joints_time:.2f}",
            "grounding_status": self.grounding.status or "none yet",
        }


Verdict = Literal["running", "done", "failed", "waiting"]


@dataclass(frozen=True)
class Assessment:
    """Monitor verdict on the active subtask, with the reason (for status and logs)."""

    verdict: Verdict
    reason: str = ""


class _Debounce:
    """Tracks how long named conditions have held continuously."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def held(self, name: str, condition: bool | None, now: float, duration: float) -> bool:
        if not condition:
            self._since.pop(name, None)
            return False
        start = self._since.setdefault(name, now)
        return now - start >= duration

    def reset(self) -> None:
        self._since.clear()


class SubtaskMonitor:
    """Decides whether the active subtask is running, done, failed, or waiting for a precondition.

    Call `start(subtask, now)` when a subtask (or a retry of it) becomes active, `pause(now)` /
    `resume(now)` around user pauses (paused time does not count towards timeouts or waits),
    and `assess(world, now)` periodically.

    Args:
        config: thresholds.
    """

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.subtask: Subtask | None = None
        self._started = 0.0
        self._paused_at: float | None = None
        self._paused_total = 0.0
        self._debounce = _Debounce()
        self._seen_open = False
        self._seen_holding = False
        self._waiting_since: float | None = None
        self._pick_under_way = False  # the pick ran with grounding's target at least once
        self.excluded: list[np.ndarray] = []
        self.uses_grounding = False
        self.wrench_at_start: np.ndarray | None = None

    def start(self, subtask: Subtask, now: float, world: WorldModel) -> None:
        """Begin monitoring `subtask` (a new one or a new attempt)."""
        self.subtask = subtask
        self._started = now
        self._paused_at = None
        self._paused_total = 0.0
        self._debounce.reset()
        self._seen_open = bool(world.gripper_open(now))
        self._seen_holding = bool(world.holding(now))
        self._waiting_since = None
        self._pick_under_way = False
        self.wrench_at_start = None if world.wrench_force is None else world.wrench_force.copy()

    def pause(self, now: float) -> None:
        """Stop the clock of the active subtask (user said stop/wait)."""
        if self._paused_at is None:
            self._paused_at = now

    def resume(self, now: float) -> None:
        """Restart the clock after `pause`; debounced conditions start over."""
        if self._paused_at is not None:
            self._paused_total += now - self._paused_at
            self._paused_at = None
        self._debounce.reset()

    def active_time(self, now: float) -> float:
        """Seconds the subtask has been active, paused time excluded."""
        end = self._paused_at if self._paused_at is not None else now
        return max(0.0, end - self._started - self._paused_total)

    def target_is_excluded(self, position: np.ndarray | None) -> bool:
        """True when `position` is within exclusion_radius of an excluded instance."""
        if position is None:
            return False
        return any(float(np.linalg.norm(position - e)) < self.config.exclusion_radius for e in self.excluded)

    def assess(self, world: WorldModel, now: float) -> Assessment:
        """Verdict on the active subtask (see the module docstring)."""
        s = self.subtask
        if s is None:
            return Assessment("running", "no subtask")
        cfg = self.config
        hold = cfg.confirm_time
        elapsed = self.active_time(now)
        if world.gripper_open(now):
            self._seen_open = True
        holding = world.holding(now)
        if holding:
            self._seen_holding = True

        if s.skill == "pick":
            # once something is in the hand, grounding losing sight of it (behind the fingers) is expected
            waiting = None if holding else self._grounding_precondition(world, now)
            if waiting is not None:
                if self._waiting_since is None:
                    self._waiting_since = now
                waited = now - self._waiting_since
                lost = waiting.startswith("waiting for grounding: object")  # not an exclusion: those act at once
                if lost and self._pick_under_way and waited <= cfg.grounding_grace:
                    return Assessment("running", f"{waiting} (for {waited:.1f} s; grace {cfg.grounding_grace:g} s)")
                if cfg.grounding_timeout > 0 and waited > cfg.grounding_timeout:
                    return Assessment("failed", f"{waiting} for {waited:.0f} s")
                return Assessment("waiting", waiting)
            self._waiting_since = None
            self._pick_under_way = True
            if self._debounce.held("holding", holding, now, hold):
                return Assessment("done", f"holding the {s.arguments.get('object', 'object')}")
            if self._seen_open and self._debounce.held("empty", world.gripper_closed_empty(now), now, hold):
                return Assessment(
                    "failed", f"grasp missed: the gripper closed to {1000 * (world.gripper_width or 0):.0f} mm with nothing in it"
                )
        elif s.skill in ("place", "hand_over"):
            released = bool(world.gripper_open(now)) and not world.any_contact(now)
            settle = max(hold, cfg.place_clear_time) if s.skill == "place" else hold
            if self._debounce.held("released", released, now, settle):
                return Assessment("done", "released the object" + (" and moved clear" if settle > hold else ""))
            if s.skill == "hand_over" and holding and self._pulled(world, now):
                if self._debounce.held("pulled", True, now, hold):
                    return Assessment("done", "the person took the object (pull felt at the wrist)")
            if self._debounce.held("dropped", world.gripper_closed_empty(now), now, hold):
                return Assessment("failed", "object dropped: the gripper closed on nothing before the release")
        elif s.skill == "open_gripper":
            if self._debounce.held("open", world.gripper_open(now), now, hold):
                return Assessment("done", "gripper open")
        elif s.skill == "close_gripper":
            closed = world.joints_fresh(now) and not world.gripper_open(now) and world.fingers_still()
            if self._debounce.held("closed", closed, now, hold):
                return Assessment("done", "gripper closed")
        elif s.skill == "go_home":
            if self._debounce.held("home", world.at_home(now), now, hold):
                return Assessment("done", "arm at home")
        elif s.skill == "wait":
            seconds = s.arguments.get("seconds")
            duration = cfg.wait_seconds if seconds is None else float(seconds)
            if elapsed >= duration:
                return Assessment("done", f"waited {duration:g} s")
            return Assessment("running", f"waiting {duration - elapsed:.1f} s more")

        if cfg.subtask_timeout > 0 and elapsed > cfg.subtask_timeout:
            return Assessment("failed", f"timed out after {elapsed:.0f} s (limit {cfg.subtask_timeout:g} s)")
        if not world.joints_fresh(now):
            return Assessment("running", "no fresh joint_states: cannot judge progress")
        return Assessment("running", "")

    def _grounding_precondition(self, world: WorldModel, now: float) -> str | None:
        """Why a pick cannot start yet (grounding), or None."""
        if not self.uses_grounding:
            return None
        g = world.grounding
        if g.status in ("", "no_reference"):
            return None
        if g.status != "found":
            detail = f" ({g.reason})" if g.reason else ""
            return f"waiting for grounding: object {g.status.replace('_', ' ')}{detail}"
        if self.excluded and (g.target is None or g.target_time < self._started):
            return "waiting for grounding to re-ground without the excluded object"
        if self.target_is_excluded(world.target_position(now)):
            return "waiting for grounding: the target is still the excluded object"
        return None

    def _pulled(self, world: WorldModel, now: float) -> bool:
        if world.wrench_force is None or self.wrench_at_start is None:
            return False
        if now - world.wrench_time > self.config.stale_after:
            return False
        return float(np.linalg.norm(world.wrench_force - self.wrench_at_start)) >= self.config.handover_pull_force


def grounding_status_from_report(reports: dict[str, dict]) -> tuple[str, str] | None:
    """(status, reason) from a grounding status report, or None when it holds no status.

    `reports` is `{name: {"level", "message", "values": {key: value}}}` (what
    `ros.conversions.diagnostics_to_dict` returns). The status is taken from the value
    "status" when present, else from the first word of the message ("found: ...").
    The reason is the value "reason" when present, else the message.
    """
    for report in reports.values():
        values = report.get("values", {}) or {}
        message = str(report.get("message", ""))
        status = str(values.get("status", "")).strip().lower()
        if status not in GROUNDING_STATUSES:
            first = message.strip().split(maxsplit=1)[0].strip(":,;.").lower() if message.strip() else ""
            status = first if first in GROUNDING_STATUSES else ""
        if status:
            return status, str(values.get("reason", "") or message)
    return None
