"""The safety controller core: the only thing between policies/teleop and the arm's command.

Deterministic on an injected clock: every input method takes `now` (s, the stack's clock)
and `update(now)` is called once per control period; nothing sleeps or reads a clock.

Each cycle:

1. Pick the motion source: e-stop, fault or contact stop -> stop; teleop (twist or joint jog)
   while fresh; else the current chunk until the watchdog expires (`command_timeout` past
   the chunk's last point) -> stop.
2. Plan one control period with ruckig from the *commanded* state (so position, velocity
   and acceleration stay continuous across chunk switches, source switches and stops):
   chunk tracking targets the chunk reference `lookahead` s ahead; teleop targets a joint
   velocity; stops decelerate every joint as fast as the scaled limits allow.
3. Safety filter: the candidate next state is commanded only if the time-optimal stop from
   it stays within the joint position limits (exactly, from ruckig's position extrema),
   keeps the checked frames inside the workspace and out of keep-out boxes, and stays
   collision-free (both checked at samples along that stop no more than `check_step` rad
   apart on any joint, with margins that cover the sampling). Otherwise the controller stops instead, from a state whose own stop
   was verified one cycle earlier. Hence, by induction, every commanded state is within
   the limits and has a verified way to rest. When the robot starts outside a region, the
   rule becomes "never make the violation worse", so it can be moved back in.

Outputs obey the scaled velocity/acceleration/jerk limits of the robot profile; stops use
the same limits (the scaled maximum deceleration).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from vla_stack.core.robot_profile import DEFAULT_ROBOT, RobotProfile, load_robot_profile
from vla_stack.core.safety.base_gate import BaseCommand, BaseGate, BaseGateConfig
from vla_stack.core.safety.estop import EStopLatch
from vla_stack.core.safety.gripper import GripperCommand, GripperPassThrough
from vla_stack.core.safety.guards import ChunkGuard, ContactGuard, ValidChunk
from vla_stack.core.safety.status import ReasonLog, SafetyState, SafetyStatus
from vla_stack.core.safety.streaming import ChunkReference, JerkLimitedStreamer, MotionState, position_extrema
from vla_stack.core.safety.teleop import TeleopServo
from vla_stack.core.safety.watchdog import CommandWatchdog
from vla_stack.core.safety.workspace import Box, WorkspaceGuard
from vla_stack.core.types import ActionChunk, JointState, Wrench
from vla_stack.core.validation import InvalidCommand, check_finite

_POSITION_TOL = 1e-9  # rad: numerical slack on the position-limit check
_MAX_SAMPLES = 24  # most samples checked along one stop trajectory
_INTERVENTION_DEBOUNCE = 1.0  # s: a guard stopping the motion again within this is not counted again


def _help(text: str, default, **kw):
    return field(default=default, metadata={"help": text}, **kw)


def _help_list(text: str, default: list):
    return field(default_factory=lambda: list(default), metadata={"help": text})


@dataclass
class SafetyControllerConfig:
    """Parameters of the safety controller (ROS parameters of `safety_controller`, same names).

    Times in s, distances in m, angles in rad. Lists of boxes are flat: 6 numbers per box
    (xmin, ymin, zmin, xmax, ymax, zmax) in the robot base frame.
    """

    robot: str = _help("Robot profile: name under config/robots or a YAML path.", DEFAULT_ROBOT)
    urdf: str = _help("URDF path overriding the profile's (builtin:<name> = a URDF shipped in a wheel).", "")
    control_rate: float = _help("Control loop rate, Hz (250 default; 500 possible).", 250.0)
    scaling: float = _help("Velocity/acceleration/jerk scaling in (0, 1]; 0 = the robot profile's value.", 0.0)
    position_margin: float = _help("Chunk targets are clipped this far inside the joint position limits, rad.", 0.02)
    lookahead: float = _help("Chunk tracking: target the chunk this far ahead of now, s.", 0.05)
    max_chunk_age: float = _help("Reject chunks whose observation stamp is older than this, s.", 0.5)
    max_future_stamp: float = _help("Reject chunks stamped further than this in the future, s.", 0.05)
    max_chunk_jump: float = _help("Reject chunks jumping more than this (per joint) between points or from the current command, rad.", 0.5)
    max_chunk_points: int = _help("Reject chunks with more points than this.", 1000)
    max_chunk_duration: float = _help("Reject chunks whose last point is further than this from their stamp, s.", 10.0)
    command_timeout: float = _help("Watchdog: no valid input this long past the end of the current chunk -> stop and hold, s.", 0.1)
    teleop_timeout: float = _help("Teleop (twist/jog) input older than this -> stop, s.", 0.2)
    state_timeout: float = _help("No joint_states this long -> FAULT (stop, needs reset), s.", 0.5)
    max_tracking_error: float = _help("Measured minus commanded position above this on any joint -> FAULT, rad (0 = off).", 0.25)
    workspace_enabled: bool = _help("Keep the workspace frames of the robot profile inside the workspace box.", True)
    workspace_min: list = _help_list("Workspace box minimum corner (x, y, z) in the base frame, m.", [-0.6, -0.8, 0.0])
    workspace_max: list = _help_list("Workspace box maximum corner (x, y, z) in the base frame, m.", [1.0, 0.8, 1.3])
    keep_out_boxes: list = _help_list("Keep-out boxes, 6 numbers each (xmin ymin zmin xmax ymax zmax), m.", [])
    workspace_margin: float = _help("Workspace checks use the box shrunk (keep-out boxes grown) by this, m.", 0.01)
    on_violation: str = _help("Chunk points outside the workspace or in collision: 'clip' (truncate at the boundary) or 'reject'.", "clip")
    collision_enabled: bool = _help("Check self- and environment collisions (pinocchio + coal, convex hulls of the URDF collision meshes).", True)
    collision_margin: float = _help("Clearance kept between checked collision pairs, m.", 0.01)
    obstacle_boxes: list = _help_list("Environment obstacles for collision checks, 6 numbers each, m.", [])
    srdf: str = _help("SRDF with disabled collision pairs; empty = the robot profile's.", "")
    check_step: float = _help("Largest joint motion between the samples checked along each stop trajectory, rad.", 0.01)
    chunk_checks: int = _help("Points of each incoming chunk checked (workspace + collision) before it is accepted: evenly spaced plus the last, refined around a problem; the runtime filter checks every cycle.", 8)
    max_contact_force: float = _help("Wrist force above this -> stop and hold, N (0 = off).", 60.0)
    max_grip_pressure: float = _help("Tactile pressure above this -> stop and hold, sensor units (kPa; 0 = off).", 0.0)
    contact_release_ratio: float = _help("Contact stop releases below this fraction of the limit.", 0.8)
    contact_resume: str = _help("After a contact stop: 'auto' (resume on new input once released) or 'reset'.", "auto")
    contact_backoff: float = _help("After a contact stop, retrace the commanded path to where it was this many s before "
                                   "the stop (away from the contact, at the scaled limits, every guard still checking), "
                                   "rejecting input until there; 0 = hold where it stopped.", 1.0)
    teleop_max_linear_speed: float = _help("Teleop twist: largest TCP speed, m/s.", 0.25)
    teleop_max_angular_speed: float = _help("Teleop twist: largest TCP angular speed, rad/s.", 0.8)
    singularity_slowdown: float = _help("Jacobian condition number where teleop starts slowing down.", 17.0)
    singularity_stop: float = _help("Jacobian condition number where teleop stops.", 30.0)
    dls_damping: float = _help("Damping of the damped-least-squares teleop IK.", 0.02)
    gripper_rate: float = _help("Gripper command rate, Hz.", 50.0)
    base_enabled: bool = _help("Run the mobile base gate (cmd_vel_in -> cmd_vel).", False)
    base: BaseGateConfig = field(default_factory=BaseGateConfig, metadata={"help": "Mobile base gate limits."})

    def __post_init__(self) -> None:
        if isinstance(self.base, dict):
            self.base = BaseGateConfig(**self.base)
        positive = ("control_rate", "lookahead", "max_chunk_age", "command_timeout", "teleop_timeout",
                    "state_timeout", "check_step", "gripper_rate", "max_chunk_jump", "max_chunk_duration")
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not (10.0 <= self.control_rate <= 2000.0):
            raise ValueError(f"control_rate must be within 10..2000 Hz, got {self.control_rate}")
        if not (0.0 <= self.scaling <= 1.0):
            raise ValueError(f"scaling must be in (0, 1] (0 = profile value), got {self.scaling}")
        for name in ("position_margin", "max_future_stamp", "max_tracking_error", "workspace_margin",
                     "collision_margin", "max_contact_force", "max_grip_pressure"):
            if not (getattr(self, name) >= 0):
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.on_violation not in ("clip", "reject"):
            raise ValueError(f"on_violation must be 'clip' or 'reject', got '{self.on_violation}'")
        if self.contact_resume not in ("auto", "reset"):
            raise ValueError(f"contact_resume must be 'auto' or 'reset', got '{self.contact_resume}'")
        if not (isinstance(self.contact_backoff, (int, float)) and 0.0 <= self.contact_backoff <= 5.0):
            raise ValueError(f"contact_backoff must be 0..5 s, got {self.contact_backoff!r}")
        if len(self.workspace_min) != 3 or len(self.workspace_max) != 3:
            raise ValueError("workspace_min and workspace_max need 3 numbers each (x, y, z)")
        Box(self.workspace_min, self.workspace_max, "workspace")
        Box.from_flat(self.keep_out_boxes, "keep_out_boxes")
        Box.from_flat(self.obstacle_boxes, "obstacle_boxes")
        if self.max_chunk_points < 1 or self.chunk_checks < 1:
            raise ValueError("max_chunk_points and chunk_checks must be >= 1")
        if not (1.0 <= self.singularity_slowdown < self.singularity_stop):
            raise ValueError("need 1 <= singularity_slowdown < singularity_stop")

    @property
    def dt(self) -> float:
        """Control period, s."""
        return 1.0 / self.control_rate

    def to_dict(self) -> dict:
        """Plain dict of every parameter (nested `base`)."""
        return asdict(self)


@dataclass(frozen=True)
class ArmCommand:
    """What to send to the arm this cycle.

    Args:
        joint_names: arm joints, command order.
        positions, velocities, accelerations: (n,) state one control period ahead (rad, rad/s, rad/s²).
        preview_times: (k,) s from now of the preview points (the first is one control period).
        preview_positions, preview_velocities, preview_accelerations: (k, n) the verified
            continuation: this step and then the stop trajectory from it (ends at rest), so a
            joint_trajectory_controller brings the arm to a controlled stop if commands cease.
        stamp: controller time, s.
    """

    joint_names: tuple[str, ...]
    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    preview_times: np.ndarray
    preview_positions: np.ndarray
    preview_velocities: np.ndarray
    preview_accelerations: np.ndarray
    stamp: float


@dataclass(frozen=True)
class ControlOutput:
    """Result of one `SafetyController.update`: arm command (None before the first joint_states),
    gripper command (None unless due), base command (None unless the base gate is on), state."""

    arm: ArmCommand | None
    gripper: GripperCommand | None
    base: BaseCommand | None
    state: SafetyState


@dataclass
class _Teleop:
    kind: str  # "twist" | "jog"
    value: np.ndarray
    frame: str
    time: float


class SafetyController:
    """The deterministic safety and trajectory controller.

    Args:
        config: parameters (defaults: the default robot profile at 250 Hz).
        profile: robot profile (default: loaded from `config.robot`).
        robot: a `RobotModel` to use for workspace/collision/teleop (default: built from the
            profile's URDF when a guard needs it). The controller owns it afterwards.
        collision: a prebuilt `CollisionChecker` (default: built from the config); lets tests
            share the (slow to build) convex hulls. Its margin must match `collision_margin`.

    Raises:
        ValueError: inconsistent parameters, or a guard that needs kinematics on a profile
            without a URDF.
    """

    def __init__(
        self, config: SafetyControllerConfig | None = None, profile: RobotProfile | None = None, robot=None,
        collision=None,
    ):
        self.config = config = config or SafetyControllerConfig()
        self.profile = profile = profile or load_robot_profile(config.robot, config.urdf)
        s = config.scaling if config.scaling > 0 else profile.scaling
        self.limits = profile.limits.scaled(s, s, s)
        self.target_limits = self.limits.shrunk(config.position_margin)
        self.joint_names = profile.joints
        self.n = len(self.joint_names)
        self.dt = config.dt
        self.streamer = JerkLimitedStreamer(self.limits, self.dt)

        need_model = config.workspace_enabled or config.collision_enabled
        if robot is None and profile.urdf is not None:
            robot = profile.kinematics()
        if need_model and robot is None:
            raise ValueError(
                f"robot profile '{profile.name}' has no URDF, but workspace_enabled/collision_enabled need one: "
                f"set `urdf` (parameter or profile) or disable those guards explicitly"
            )
        self.robot = robot
        self.workspace: WorkspaceGuard | None = None
        if config.workspace_enabled:
            frames = profile.workspace_frames or (profile.tcp_frame,)
            self.workspace = WorkspaceGuard(
                robot, frames, Box(config.workspace_min, config.workspace_max, "workspace"),
                Box.from_flat(config.keep_out_boxes, "keep_out"), config.workspace_margin,
            )
        self.collision = collision if config.collision_enabled else None
        if config.collision_enabled and collision is None:
            from vla_stack.core.kinematics.collision import CollisionChecker

            boxes = Box.from_flat(config.obstacle_boxes, "obstacle")
            srdf = config.srdf or profile.srdf
            self.collision = CollisionChecker(
                robot.copy() if hasattr(robot, "copy") else robot,
                [(b.lower, b.upper) for b in boxes], srdf=srdf or None, margin=config.collision_margin,
            )
        self.servo = TeleopServo(
            robot, self.limits, profile.base_frame, profile.tcp_frame, config.teleop_max_linear_speed,
            config.teleop_max_angular_speed, config.singularity_slowdown, config.singularity_stop, config.dls_damping,
        )
        self.chunk_guard = ChunkGuard(
            self.target_limits, profile.gripper, config.max_chunk_age, config.max_future_stamp, config.max_chunk_jump,
            config.max_chunk_points, config.max_chunk_duration,
        )
        self.contact = ContactGuard(
            config.max_contact_force, config.max_grip_pressure, config.contact_release_ratio, config.contact_resume
        )
        self.estop = EStopLatch()
        self.watchdog = CommandWatchdog(config.command_timeout)
        self.gripper = GripperPassThrough(profile.gripper, config.gripper_rate) if profile.gripper else None
        self.base_gate = BaseGate(config.base) if config.base_enabled else None
        self.log = ReasonLog()

        self._cmd: MotionState | None = None
        self._js_names: tuple[str, ...] | None = None
        self._js_index: list[int] = []
        self._measured: np.ndarray | None = None
        self._measured_time: float | None = None
        self._ref: ChunkReference | None = None
        self._teleop: _Teleop | None = None
        self._fault: str | None = None
        self._intervention: str | None = None
        self._intervention_reason = ""
        self._last_intervention_log: dict[str, float] = {}
        self._state = SafetyState.HOLDING
        self._message = "waiting for joint_states"
        self._mode = "none"
        self._last_now: float | None = None
        self._allowed_cache: tuple[bytes, float, float | None] | None = None
        self._servo_condition = float("nan")
        self._servo_scale = 1.0
        self._singularity = False
        self._preview: list[tuple[float, MotionState]] = []
        self._history: deque[tuple[float, np.ndarray]] = deque()  # (time, commanded position): contact back-off
        self._backoff: np.ndarray | None = None  # where a contact back-off is heading

    # ------------------------------------------------------------------ helpers
    def _record(self, code: str, reason: str, now: float) -> None:
        self.log.record(code, reason, now)

    def _reject(self, exc: InvalidCommand, source: str, now: float) -> bool:
        self._record(exc.code, f"{source} rejected: {exc.reason}", now)
        return False

    def _clear_input(self) -> None:
        self._ref = None
        self._teleop = None
        self.watchdog.clear()
        self._mode = "none"

    def _set_fault(self, code: str, reason: str, now: float) -> None:
        if self._fault is None:
            self._fault = reason
            self._record(code, reason, now)
            self._clear_input()
            if self.gripper is not None:
                self.gripper.hold()

    def _blocked_reason(self) -> tuple[str, str] | None:
        if self.estop.latched:
            return "estop_active", "e-stop is latched (release it and call safety/reset)"
        if self._fault is not None:
            return "fault_active", f"controller is in FAULT ({self._fault}); call safety/reset"
        if self.contact.latched:
            return "contact_stop", "contact stop is active (force/pressure above limit)"
        if self._backoff is not None:
            return "contact_backoff", "backing off from a contact along the commanded path"
        return None

    def _start_backoff(self, now: float) -> None:
        """Contact stop: head back to the commanded position `contact_backoff` s before now."""
        if self.config.contact_backoff <= 0 or not self._history:
            return
        target = self._history[0][1]
        for t, q in self._history:  # oldest first: the last one at or before the look-back time
            if t > now - self.config.contact_backoff:
                break
            target = q
        if self._cmd is not None and float(np.max(np.abs(target - self._cmd.position))) > 1e-4:
            self._backoff = self.target_limits.clip_position(target.copy())
            self._record("contact_backoff", f"backing off to the commanded pose of {self.config.contact_backoff:.1f} s "
                         "before the contact stop; input is rejected until it is there", now)

    # ------------------------------------------------------------------ inputs
    def on_joint_state(self, state: JointState, now: float) -> bool:
        """Measured joint state (any joint order; extra joints ignored). Returns False if rejected.

        The first valid message initialises the commanded state (at rest at the measured
        position). Later messages feed the staleness and tracking-error checks.
        """
        if state.names != self._js_names:  # drivers keep their joint order: map names once
            try:
                index = {n: i for i, n in enumerate(state.names)}
                self._js_index = [index[n] for n in self.joint_names]
            except KeyError as exc:
                self._record("joint_states_missing_joint", f"joint_states rejected: joint {exc.args[0]} missing", now)
                return False
            self._js_names = state.names
        pos = state.positions[self._js_index]
        if not np.isfinite(pos).all():
            self._record("joint_states_nan", "joint_states rejected: arm positions contain NaN/inf", now)
            return False
        self._measured = pos
        self._measured_time = now
        if self.gripper is not None and self.profile.gripper.joint in state.names:
            g = float(state.positions[state.names.index(self.profile.gripper.joint)])
            if math.isfinite(g):
                self.gripper.observe(g * self.profile.gripper.width_per_unit)
        if self._cmd is None:
            self._cmd = MotionState.at_rest(pos)
            self._message = "holding the measured position"
            return True
        if self.config.max_tracking_error > 0 and self._fault is None:
            err = np.abs(pos - self._cmd.position)
            j = int(np.argmax(err))
            if err[j] > self.config.max_tracking_error:
                self._set_fault(
                    "tracking_error",
                    f"{self.joint_names[j]} is {err[j]:.3f} rad from its command (max_tracking_error "
                    f"{self.config.max_tracking_error} rad): robot not following (driver stopped? collision?)",
                    now,
                )
        return True

    def submit_trajectory(
        self,
        names: Sequence[str],
        times: Sequence[float],
        positions: Sequence[Sequence[float]],
        stamp: float,
        now: float,
        velocities: Sequence[Sequence[float]] | None = None,
    ) -> bool:
        """An incoming action chunk (JointTrajectory fields). Returns True if accepted.

        Args:
            names: joint names of the columns.
            times: time_from_start of each point, s.
            positions: one row of positions per point, rad.
            stamp: header.stamp = observation time, s (0 = now).
            now: controller time, s.
            velocities: optional rows of velocities, rad/s.

        An accepted chunk replaces the not-yet-executed part of the current one: its points
        are placed at stamp + time_from_start, the past ones only shape the interpolation.
        """
        if self._cmd is None:
            return self._reject(InvalidCommand("no_joint_states", "no joint_states received yet"), "chunk", now)
        blocked = self._blocked_reason()
        if blocked is not None:
            return self._reject(InvalidCommand(*blocked), "chunk", now)
        if self._teleop is not None and now - self._teleop.time <= self.config.teleop_timeout:
            return self._reject(InvalidCommand("teleop_active", "teleop has priority while its input is fresh"), "chunk", now)
        try:
            last_stamp = self._ref.stamp if self._ref is not None else None
            valid = self.chunk_guard.check(
                names, times, positions, stamp, now, self._cmd.position, last_stamp, velocities
            )
            valid = self._screen_path(valid, now)
        except InvalidCommand as exc:
            return self._reject(exc, "chunk", now)
        if valid.clipped_joints:
            self._record(
                "position_clipped", f"chunk: {valid.clipped_joints} value(s) clipped into the joint position limits", now
            )
        self._ref = ChunkReference.build(
            valid.times, valid.positions, self.limits.velocity, valid.velocities, valid.gripper, valid.stamp
        )
        self._teleop = None
        self._mode = "chunk"
        self.watchdog.clear()
        self.watchdog.feed(now, self._ref.t_end)
        return True

    def submit_chunk(self, chunk: ActionChunk, now: float) -> bool:
        """An ActionChunk (see `submit_trajectory`)."""
        return self.submit_trajectory(
            chunk.joint_names, chunk.times, chunk.positions, chunk.stamp, now, chunk.velocities
        )

    def on_twist(self, linear: Sequence[float], angular: Sequence[float], frame: str, now: float) -> bool:
        """Teleop twist (TCP linear m/s, angular rad/s) in the base or tool frame. Returns True if accepted."""
        if self._cmd is None:
            return self._reject(InvalidCommand("no_joint_states", "no joint_states received yet"), "twist", now)
        blocked = self._blocked_reason()
        if blocked is not None:
            return self._reject(InvalidCommand(*blocked), "twist", now)
        try:
            tw = self.servo.validate_twist(linear, angular, frame)
        except (InvalidCommand, ValueError) as exc:
            if not isinstance(exc, InvalidCommand):
                exc = InvalidCommand("malformed", str(exc))
            return self._reject(exc, "twist", now)
        self._ref = None
        self._teleop = _Teleop("twist", tw, frame or self.profile.base_frame, now)
        self._mode = "teleop_twist"
        return True

    def on_joint_jog(self, names: Sequence[str], velocities: Sequence[float], now: float) -> bool:
        """Teleop joint jog (velocities rad/s by name; unnamed joints 0). Returns True if accepted."""
        if self._cmd is None:
            return self._reject(InvalidCommand("no_joint_states", "no joint_states received yet"), "joint jog", now)
        blocked = self._blocked_reason()
        if blocked is not None:
            return self._reject(InvalidCommand(*blocked), "joint jog", now)
        try:
            qdot = self.servo.jog_to_joint_velocity(names, velocities)
        except InvalidCommand as exc:
            return self._reject(exc, "joint jog", now)
        self._ref = None
        self._teleop = _Teleop("jog", qdot, "", now)
        self._mode = "teleop_jog"
        return True

    def on_estop(self, pressed: bool, now: float) -> None:
        """E-stop input: True latches a stop at maximum deceleration from the next cycle on."""
        if self.estop.set(pressed, now):
            self._record("estop", "e-stop pressed: stopping at maximum deceleration", now)
            self._clear_input()
            if self.gripper is not None:
                self.gripper.hold()

    def on_wrench(self, wrench: Wrench, now: float) -> None:
        """Wrist force/torque (gravity-compensated, N / N·m); too much force stops the arm."""
        try:
            check_finite("wrench", np.concatenate([wrench.force, wrench.torque]))
        except InvalidCommand as exc:
            self._record("wrench_nan", f"wrench rejected: {exc.reason}", now)
            return
        reason = self.contact.on_force(wrench.force)
        if reason:
            self._record("contact_force", f"{reason}: stopping and holding", now)
            self._clear_input()
            self._start_backoff(now)

    def on_tactile(self, max_pressure: float, now: float, sensor: str = "") -> None:
        """Highest taxel pressure of one tactile sensor; too much stops the arm."""
        if not math.isfinite(max_pressure):
            self._record("tactile_nan", f"tactile {sensor} rejected: pressure is NaN/inf", now)
            return
        reason = self.contact.on_pressure(max_pressure)
        if reason:
            self._record("contact_pressure", f"{sensor}: {reason}: stopping and holding", now)
            self._clear_input()
            self._start_backoff(now)

    def on_base_command(self, vx: float, vy: float, wz: float, now: float) -> bool:
        """Requested base velocity (m/s, m/s, rad/s). Returns False if rejected or the gate is off."""
        if self.base_gate is None:
            self._record("base_disabled", "cmd_vel_in ignored: base_enabled is false", now)
            return False
        try:
            self.base_gate.on_command(vx, vy, wz, now)
        except ValueError as exc:
            self._record("base_nan", f"cmd_vel_in rejected: {exc}", now)
            return False
        return True

    def on_scan(self, ranges, angle_min: float, angle_increment: float, range_min: float, range_max: float, now: float) -> None:
        """Laser scan for the base gate (ranges m, angles rad, base frame)."""
        if self.base_gate is not None:
            self.base_gate.on_scan(ranges, angle_min, angle_increment, range_min, range_max, now)

    def reset(self, now: float) -> tuple[bool, str]:
        """`safety/reset`: clear e-stop (if released), fault and contact latches; re-sync to the measured state.

        Refused while the e-stop is pressed, while the arm is still decelerating, or without
        fresh joint_states. Returns (success, message).
        """
        if self._cmd is not None and not self._cmd.is_at_rest(1e-6):
            return False, "arm is still decelerating: call reset again once it has stopped"
        if self._measured is None or self._measured_time is None or now - self._measured_time > self.config.state_timeout:
            return False, "no fresh joint_states: cannot re-synchronise to the robot"
        ok, msg = self.estop.reset()
        if not ok:
            return False, msg
        self._fault = None
        self.contact.reset()
        self._backoff = None
        self._clear_input()
        self._intervention = None
        self._cmd = MotionState.at_rest(self._measured)
        self._allowed_cache = None
        self._record("reset", "reset by operator: holding the measured position", now)
        return True, "reset: holding the measured position, ready for input"

    # ------------------------------------------------------------------ path screening
    def _allowed(self, q: np.ndarray) -> tuple[float, float | None]:
        """What motion from the command `q` may not make worse (the recovery rule).

        Returns (workspace violation at `q`, m: 0 when inside; collision: None when `q` is
        clear, else the current smallest pair distance, m, which a motion must not reduce).
        """
        key = q.tobytes()
        if self._allowed_cache is not None and self._allowed_cache[0] == key:
            return self._allowed_cache[1], self._allowed_cache[2]
        ws = self.workspace.violation(q) if self.workspace is not None else 0.0
        col = None
        if self.collision is not None and self.collision.in_collision(q):
            col = self.collision.min_distance(q)[0]
        self._allowed_cache = (key, ws, col)
        return ws, col

    def _point_problem(
        self, q: np.ndarray, ws_allowed: float, col_allowed: float | None, collision: bool
    ) -> tuple[str, str] | None:
        """Workspace or collision problem at joint positions `q` (relative to the allowed levels), or None."""
        if self.workspace is not None and self.workspace.violation(q) > ws_allowed + 1e-9:
            v = self.workspace.explain(q)
            return "workspace", v.describe() if v else "outside the workspace"
        if collision and self.collision is not None:
            if col_allowed is None:
                if self.collision.in_collision(q):
                    pair = self.collision.first_collision(q)
                    what = f"{pair[0]} and {pair[1]}" if pair else "two bodies"
                    return "collision", f"{what} closer than {self.collision.margin * 1000:.0f} mm"
            else:  # already closer than the margin: only moves that do not get closer
                d, pair = self.collision.min_distance(q)
                if d < col_allowed - 1e-4:
                    return "collision", f"{pair[0]} and {pair[1]} would get closer ({d * 1000:.1f} mm)"
        return None

    def _screen_path(self, valid: ValidChunk, now: float) -> ValidChunk:
        """Workspace/collision check of the chunk's future points: clip at the boundary or reject."""
        if self.workspace is None and self.collision is None:
            return valid
        ws_allowed, col_allowed = self._allowed(self._cmd.position)
        times, pos = valid.times, valid.positions
        i0 = int(np.searchsorted(times, now, side="right"))
        future = list(range(i0, len(times)))
        if not future:
            return valid
        # Evenly spaced points plus the last (cheap: incoming chunks are screened on the control
        # thread); around the first problem, every skipped point is checked to find where it starts.
        stride = max(1, math.ceil(len(future) / self.config.chunk_checks))
        checked = sorted(set(future[::stride]) | {future[-1]})
        bad, problem, previous = None, None, i0 - 1
        for i in checked:
            problem = self._point_problem(pos[i], ws_allowed, col_allowed, True)
            if problem is not None:
                for j in range(previous + 1, i):
                    earlier = self._point_problem(pos[j], ws_allowed, col_allowed, True)
                    if earlier is not None:
                        i, problem = j, earlier
                        break
                bad = i
                break
            previous = i
        if bad is None:
            return valid
        code, reason = problem
        where = f"point {bad} (t={times[bad] - now:+.3f} s): {reason}"
        if self.config.on_violation == "reject":
            raise InvalidCommand(code, where)
        a, ta = (pos[bad - 1], times[bad - 1]) if bad > i0 else (self._cmd.position, now)
        b, tb = pos[bad], times[bad]
        lo, hi = 0.0, 1.0
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            if self._point_problem(a + mid * (b - a), ws_allowed, col_allowed, True) is None:
                lo = mid
            else:
                hi = mid
        t_new = ta + lo * (tb - ta)
        keep_t, keep_p = list(times[:bad]), list(pos[:bad])
        if bad == i0 and lo < 1e-3:
            raise InvalidCommand(code, f"chunk heads straight out of the safe region at {where}")
        if not keep_t or t_new > keep_t[-1] + 1e-6:
            keep_t.append(t_new)
            keep_p.append(a + lo * (b - a))
        if len(keep_t) == 0 or keep_t[-1] <= now:
            raise InvalidCommand(code, f"nothing of the chunk is left before {where}")
        new_t = np.array(keep_t)
        gripper = None if valid.gripper is None else np.interp(new_t, times, valid.gripper)
        self._record(f"{code}_clipped", f"chunk clipped at {where}", now)
        return ValidChunk(new_t, np.array(keep_p), None, gripper, valid.stamp, valid.clipped_joints)

    # ------------------------------------------------------------------ cycle
    def _admissible(self, cand: MotionState) -> tuple[tuple[str, str] | None, list[tuple[float, MotionState]]]:
        """Check the stop trajectory from `cand`; returns (problem or None, checked samples)."""
        traj = self.streamer.plan_stop(cand)
        if traj is None:
            return ("internal", f"no stop trajectory: {self.streamer.last_error}"), []
        mins, maxs = position_extrema(traj)
        lower, upper = self.limits.lower, self.limits.upper
        cur = self._cmd.position
        allowed_pv = max(0.0, float(np.max(np.maximum(lower - cur, cur - upper))))
        pv = np.maximum(lower - mins, maxs - upper)
        if float(np.max(pv)) > allowed_pv + _POSITION_TOL:
            j = int(np.argmax(pv))
            return ("position_limit", f"{self.joint_names[j]} would pass its position limit "
                    f"[{lower[j]:.3f}, {upper[j]:.3f}] rad while stopping"), []
        duration = traj.duration
        travel = float(np.max(maxs - mins)) if duration > 0 else 0.0
        count = min(int(math.ceil(travel / self.config.check_step)), _MAX_SAMPLES) if travel > 0 else 0
        if duration > 0 and count == 0:
            count = 1
        samples: list[tuple[float, MotionState]] = []
        ws_allowed, col_allowed = self._allowed(cur)
        for i in range(count + 1):
            t = duration * i / count if count else 0.0
            if i == 0:
                st = cand
            else:
                p, v, a = traj.at_time(t)
                st = MotionState(np.array(p), np.array(v), np.array(a))
            problem = self._point_problem(st.position, ws_allowed, col_allowed, True)
            if problem is not None:
                code, reason = problem
                return (code, f"{reason} (checked {t:.3f} s into the stop from the next command)"), []
            samples.append((t, st))
        if count:
            samples[-1] = (duration, MotionState(samples[-1][1].position, np.zeros(self.n), np.zeros(self.n)))
        return None, samples

    def _track_chunk(self, now: float):
        ref = self._ref
        target_time = max(now + self.config.lookahead, ref.t_start)
        if target_time >= ref.t_end:
            p, v = ref.positions[-1].copy(), np.zeros(self.n)
            duration = max(ref.t_end - now, 0.0)
        else:
            p, v = ref.sample(target_time)
            duration = target_time - now
        p = self.target_limits.clip_position(p)
        return self.streamer.plan_to(self._cmd, p, v, duration)

    def _teleop_velocity(self, now: float) -> np.ndarray:
        tp = self._teleop
        if tp.kind == "jog":
            self._servo_condition, self._servo_scale = float("nan"), 1.0
            self._singularity = False
            return tp.value
        res = self.servo.twist_to_joint_velocity(self._cmd.position, tp.value, tp.frame)
        self._servo_condition, self._servo_scale = res.condition, res.scale
        if res.reason and not self._singularity:
            self._record("singularity", f"teleop {res.reason}", now)
        self._singularity = bool(res.reason)
        return res.velocity

    def _step_stop(self, now: float) -> list[tuple[float, MotionState]]:
        """Advance the command one period along the time-optimal stop; returns the preview."""
        cmd = self._cmd
        if cmd.is_at_rest(1e-12):
            self._cmd = MotionState.at_rest(cmd.position)
            return [(self.dt, self._cmd)]
        traj = self.streamer.plan_stop(cmd)
        if traj is None:  # cannot happen within limits; freeze rather than extrapolate
            self._record("internal", f"stop planning failed: {self.streamer.last_error}", now)
            self._cmd = MotionState.at_rest(cmd.position)
            return [(self.dt, self._cmd)]
        duration = traj.duration
        if duration <= self.dt:
            p, _, _ = traj.at_time(duration)
            self._cmd = MotionState.at_rest(np.array(p))
            return [(self.dt, self._cmd)]
        p, v, a = traj.at_time(self.dt)
        self._cmd = MotionState(np.array(p), np.array(v), np.array(a))
        preview = [(self.dt, self._cmd)]
        count = min(_MAX_SAMPLES, max(1, int(math.ceil(float(np.max(np.abs(self._cmd.velocity))) * (duration - self.dt)
                                                         / self.config.check_step))))
        for i in range(1, count + 1):
            t = self.dt + (duration - self.dt) * i / count
            p, v, a = traj.at_time(t)
            preview.append((t, MotionState(np.array(p), np.array(v), np.array(a))))
        last_t, last = preview[-1]
        preview[-1] = (last_t, MotionState.at_rest(last.position))
        return preview

    def update(self, now: float) -> ControlOutput:
        """One control cycle at controller time `now` (s). Call once per control period."""
        cfg = self.config
        if self._last_now is not None and now < self._last_now - 1e-3:
            # e.g. a simulator reset: every stamp-aligned input is meaningless now -> stop, wait for new input
            self._record("clock_jump", f"clock went back {self._last_now - now:.3f} s (sim reset?): "
                         "dropping the current input and stopping", now)
            self._clear_input()
            self._history.clear()
            self._backoff = None
            self._measured_time = now if self._measured_time is not None else None
        self._last_now = now
        blocked_for_base = self.estop.latched or self._fault is not None
        base_cmd = self.base_gate.update(now, stop=blocked_for_base) if self.base_gate is not None else None
        if self._cmd is None:
            self._state, self._message = SafetyState.HOLDING, "waiting for joint_states"
            return ControlOutput(None, None, base_cmd, self._state)
        if self._fault is None and now - self._measured_time > cfg.state_timeout:
            self._set_fault("stale_joint_states", f"no joint_states for {now - self._measured_time:.2f} s "
                            f"(state_timeout {cfg.state_timeout} s): driver or simulator down?", now)

        traj = None
        stop_code, stop_reason = "", ""
        blocked = self._blocked_reason()
        backing_off = False
        if blocked is not None and self._backoff is not None and blocked[0] in ("contact_stop", "contact_backoff"):
            stop_code, stop_reason = blocked
            traj = self.streamer.plan_to(self._cmd, self._backoff, np.zeros(self.n), 0.0)
            backing_off = traj is not None
            if traj is None:
                self._record("contact_backoff_stopped", f"back-off planning failed ({self.streamer.last_error}): holding", now)
                self._backoff = None
        elif blocked is not None:
            stop_code, stop_reason = blocked
        elif self._teleop is not None:
            if now - self._teleop.time > cfg.teleop_timeout:
                stop_code, stop_reason = "teleop_timeout", f"no teleop input for {cfg.teleop_timeout} s"
                if not self._cmd.is_at_rest(1e-6):
                    self._record(stop_code, f"{stop_reason}: stopping", now)
                self._clear_input()
            else:
                traj = self.streamer.plan_velocity(self._cmd, self._teleop_velocity(now))
        elif self._ref is not None:
            if self.watchdog.expired(now):
                stop_code = "watchdog"
                stop_reason = f"no valid chunk for {cfg.command_timeout} s past the end of the last one"
                self._record(stop_code, f"{stop_reason}: stopping and holding", now)
                self._clear_input()
            else:
                traj = self._track_chunk(now)
        else:
            stop_code, stop_reason = "idle", "no input"

        following = False
        if traj is not None:
            cand = self.streamer.step(traj)
            if not cand.is_finite():
                problem, samples = ("internal", "planner produced NaN"), []
            else:
                problem, samples = self._admissible(cand)
            if problem is None:
                ws_allowed, col_allowed = self._allowed(self._cmd.position)
                if ws_allowed == 0.0 and col_allowed is None:
                    # the candidate's own position was checked strictly (sample t=0): still clean
                    self._allowed_cache = (cand.position.tobytes(), 0.0, None)
                self._cmd = cand
                self._preview = [(self.dt + t, st) for t, st in samples]
                self._intervention = None
                following = True
            else:
                code, reason = problem
                if backing_off:
                    self._record("contact_backoff_stopped", f"back-off stopped: {reason}; holding", now)
                    self._backoff = None
                    backing_off = False
                if self._intervention != code:
                    self._intervention, self._intervention_reason = code, reason
                    # debounced: creeping along a boundary alternates accept/stop every few cycles
                    if now - self._last_intervention_log.get(code, -math.inf) > _INTERVENTION_DEBOUNCE:
                        self._record(code, f"{reason}: stopping", now)
                    self._last_intervention_log[code] = now
                stop_code, stop_reason = code, reason
        elif traj is None and self._mode != "none" and not stop_code:
            stop_code, stop_reason = "internal", f"planning failed: {self.streamer.last_error}"
            self._record(stop_code, stop_reason, now)
        if not following:
            self._preview = self._step_stop(now)
        moving = not self._cmd.is_at_rest(1e-6)
        if backing_off and following and not moving and float(np.max(np.abs(self._cmd.position - self._backoff))) < 1e-4:
            self._record("contact_backoff_done", "back-off done: holding clear of the contact", now)
            self._backoff = None
        if self.config.contact_backoff > 0:
            self._history.append((now, self._cmd.position.copy()))
            while self._history and self._history[0][0] < now - self.config.contact_backoff - 0.2:
                self._history.popleft()
        self._update_state(following and not backing_off, moving, stop_code, stop_reason, now)

        gripper_cmd = None
        if self.gripper is not None:
            if following and self._ref is not None and self._ref.gripper is not None:
                self.gripper.set_target(self._ref.gripper_at(now))
            elif blocked is not None:
                self.gripper.hold()
            gripper_cmd = self.gripper.update(now)
        return ControlOutput(self._arm_command(now), gripper_cmd, base_cmd, self._state)

    def _update_state(self, following: bool, moving: bool, code: str, reason: str, now: float) -> None:
        if self.estop.latched:
            self._state = SafetyState.ESTOP
            self._message = ("e-stop: stopping at maximum deceleration" if moving else
                             "e-stop latched: release the e-stop, then call safety/reset")
        elif self._fault is not None:
            self._state = SafetyState.FAULT
            self._message = f"FAULT: {self._fault}; {'stopping' if moving else 'holding'}; call safety/reset when resolved"
        elif following:
            self._state = SafetyState.ACTIVE if (moving or self._mode != "chunk" or now < self._ref.t_end) else SafetyState.HOLDING
            self._message = {"chunk": "following the action chunk", "teleop_twist": "teleop (twist)",
                             "teleop_jog": "teleop (joint jog)"}.get(self._mode, "following input")
            if self._state is SafetyState.HOLDING:
                self._message = "holding at the end of the chunk, waiting for the next one"
            if self._singularity and self._mode == "teleop_twist":
                self._message += f" — {self._servo_scale:.0%} speed near a singularity"
        elif moving and self._backoff is not None:
            self._state = SafetyState.STOPPING
            self._message = "contact stop: backing off along the commanded path"
        elif moving:
            self._state = SafetyState.STOPPING
            self._message = f"stopping: {reason or code}"
        else:
            self._state = SafetyState.HOLDING
            self._message = "holding: waiting for input" if code in ("idle", "") else f"holding: {reason or code}"

    def _arm_command(self, now: float) -> ArmCommand:
        pts = self._preview or [(self.dt, self._cmd)]
        return ArmCommand(
            joint_names=self.joint_names,
            positions=self._cmd.position.copy(),
            velocities=self._cmd.velocity.copy(),
            accelerations=self._cmd.acceleration.copy(),
            preview_times=np.array([t for t, _ in pts]),
            preview_positions=np.array([s.position for _, s in pts]),
            preview_velocities=np.array([s.velocity for _, s in pts]),
            preview_accelerations=np.array([s.acceleration for _, s in pts]),
            stamp=now,
        )

    # ------------------------------------------------------------------ status
    @property
    def state(self) -> SafetyState:
        """Current SafetyState."""
        return self._state

    @property
    def commanded(self) -> MotionState | None:
        """Commanded state after the last update (None before joint_states)."""
        return None if self._cmd is None else self._cmd.copy()

    def status(self, now: float) -> SafetyStatus:
        """Snapshot for `safety/status`."""
        values: dict[str, float | str] = {}
        if self._cmd is not None:
            values["max_commanded_speed_ratio"] = float(np.max(np.abs(self._cmd.velocity) / self.limits.velocity))
        if self._ref is not None:
            values["chunk_age_s"] = now - self._ref.stamp
            values["chunk_remaining_s"] = self._ref.t_end - now
        if self._mode == "teleop_twist":
            values["jacobian_condition"] = self._servo_condition
            values["singularity_scale"] = self._servo_scale
        if self._measured_time is not None:
            values["joint_states_age_s"] = now - self._measured_time
        values["contact_force_n"] = self.contact.force
        values["scaling"] = float(self.limits.velocity[0] / self.profile.limits.velocity[0])
        if self.gripper is not None and self.gripper.width is not None:
            values["gripper_width_m"] = self.gripper.width
        return SafetyStatus(
            state=self._state, message=self._message, mode=self._mode, last_code=self.log.last_code,
            last_reason=self.log.last_reason, counters=dict(self.log.counts), estop_pressed=self.estop.pressed,
            stamp=now, values=values,
        )
