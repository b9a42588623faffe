"""Input guards of the safety controller: chunk validation with the clock, and contact force.

Each guard raises `InvalidCommand(code, reason)` (from `vla_stack.core.validation`) or
returns a reason; the controller counts codes and reports the last reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_stack.core.safety.limits import GripperProfile, JointLimits
from vla_stack.core.validation import InvalidCommand, validate_chunk


@dataclass(frozen=True)
class ValidChunk:
    """A chunk that passed validation, in absolute controller time.

    Args:
        times: (H,) absolute times of the points, s.
        positions: (H, n) arm joint targets in the controller's joint order, rad, within limits.
        velocities: (H, n) rad/s or None.
        gripper: (H,) gripper opening width, m, or None.
        stamp: observation time, s.
        clipped_joints: number of values that were clipped into the position limits.
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray | None
    gripper: np.ndarray | None
    stamp: float
    clipped_joints: int = 0


class ChunkGuard:
    """Validates incoming joint trajectories (action chunks) before anything moves.

    Checks, each with its own code: the shared `validate_chunk` checks (empty, length
    mismatch, NaN/inf, non-increasing or negative time_from_start, unknown/duplicate joint
    names; columns are reordered by name), missing arm joints, too many points or too long,
    stamp in the future (beyond `max_future`), stamp older than `max_age`, every point
    already in the past, a stamp older than the chunk being executed (out of order), and
    jumps larger than `max_jump` between consecutive points or from the current command.
    Positions outside the joint limits are clipped into them (counted, not rejected).

    Args:
        limits: limits the positions are clipped into (the command limits, with margin).
        gripper: gripper profile, if the chunk may carry a gripper column.
        max_age: oldest acceptable observation stamp, s before now.
        max_future: newest acceptable stamp, s after now (clock skew allowance).
        max_jump: largest joint change, rad, between consecutive points and from the current command.
        max_points: most points per chunk.
        max_duration: longest chunk, s (from its stamp to its last point).
    """

    def __init__(
        self,
        limits: JointLimits,
        gripper: GripperProfile | None = None,
        max_age: float = 0.5,
        max_future: float = 0.05,
        max_jump: float = 0.5,
        max_points: int = 1000,
        max_duration: float = 10.0,
    ) -> None:
        self.limits = limits
        self.gripper = gripper
        self.max_age = max_age
        self.max_future = max_future
        self.max_jump = max_jump
        self.max_points = max_points
        self.max_duration = max_duration
        self.arm_joints = limits.names
        self.expected = limits.names + ((gripper.joint,) if gripper is not None else ())

    def check(
        self,
        names: Sequence[str],
        times: Sequence[float],
        positions: Sequence[Sequence[float]],
        stamp: float,
        now: float,
        current_position: np.ndarray,
        last_stamp: float | None = None,
        velocities: Sequence[Sequence[float]] | None = None,
    ) -> ValidChunk:
        """Validate one chunk; return it in absolute time or raise InvalidCommand.

        Args:
            names, times, positions, velocities: the JointTrajectory fields (times =
                time_from_start, s; positions rad, one row per point).
            stamp: header.stamp, s (0 = "now on receipt").
            now: controller time, s.
            current_position: (n,) commanded arm position, rad.
            last_stamp: stamp of the chunk being executed, s (None = none).
        """
        if len(times) > self.max_points:
            raise InvalidCommand("too_many_points", f"chunk has {len(times)} points (max {self.max_points})")
        if not np.isfinite(stamp):
            raise InvalidCommand("nan", f"chunk stamp is not finite ({stamp})")
        chunk = validate_chunk(names, times, positions, self.expected, allow_subset=True, velocities=velocities)
        missing = [j for j in self.arm_joints if j not in chunk.joint_names]
        if missing:
            raise InvalidCommand("missing_joint", f"chunk lacks arm joint(s) {missing}; it names {list(names)}")
        if stamp == 0.0:
            stamp = now
        if stamp > now + self.max_future:
            raise InvalidCommand(
                "stamp_in_future", f"chunk stamp is {stamp - now:.3f} s in the future (clock skew? max {self.max_future} s)"
            )
        age = now - stamp
        if age > self.max_age:
            raise InvalidCommand("stale_chunk", f"chunk observation is {age:.3f} s old (max_chunk_age {self.max_age} s)")
        if last_stamp is not None and stamp < last_stamp:
            raise InvalidCommand(
                "out_of_order", f"chunk stamp {stamp:.3f} is older than the executing chunk's {last_stamp:.3f} s"
            )
        t_abs = stamp + chunk.times
        if t_abs[-1] <= now:
            raise InvalidCommand("expired", f"every point of the chunk is in the past (last at {t_abs[-1] - now:+.3f} s)")
        if chunk.times[-1] > self.max_duration:
            raise InvalidCommand("too_long", f"chunk spans {chunk.times[-1]:.2f} s (max {self.max_duration} s)")
        cols = {n: i for i, n in enumerate(chunk.joint_names)}
        arm = chunk.positions[:, [cols[j] for j in self.arm_joints]]
        vel = None
        if chunk.velocities is not None:
            vel = chunk.velocities[:, [cols[j] for j in self.arm_joints]]
        clipped_arm = self.limits.clip_position(arm)
        n_clipped = int(np.count_nonzero(clipped_arm != arm))
        gripper = None
        if self.gripper is not None and self.gripper.joint in cols:
            g = self.gripper
            gripper = np.clip(chunk.positions[:, cols[g.joint]] * g.width_per_unit, g.min_width, g.max_width)
        if len(arm) > 1:
            steps = np.max(np.abs(np.diff(clipped_arm, axis=0)), axis=1)
            if np.max(steps) > self.max_jump:
                i = int(np.argmax(steps))
                raise InvalidCommand(
                    "jump", f"chunk jumps {steps[i]:.3f} rad between points {i} and {i + 1} (max_chunk_jump {self.max_jump})"
                )
        # Deviation of the chunk from the current command where execution would start.
        i_next = int(np.searchsorted(t_abs, now, side="right"))
        start = clipped_arm[min(i_next, len(t_abs) - 1)]
        if i_next > 0 and i_next < len(t_abs):
            t0, t1 = t_abs[i_next - 1], t_abs[i_next]
            s = (now - t0) / (t1 - t0)
            start = (1 - s) * clipped_arm[i_next - 1] + s * clipped_arm[i_next]
        dev = np.abs(start - current_position)
        if np.max(dev) > self.max_jump:
            j = int(np.argmax(dev))
            raise InvalidCommand(
                "jump",
                f"chunk starts {dev[j]:.3f} rad away from the current command on {self.arm_joints[j]} "
                f"(max_chunk_jump {self.max_jump})",
            )
        return ValidChunk(t_abs, clipped_arm, vel, gripper, float(stamp), n_clipped)


class ContactGuard:
    """Stops the arm when the wrist force or the tactile pressure exceeds its limit.

    Trips (latches) when |force| > `max_force` N or the highest taxel pressure >
    `max_pressure` (sensor units, kPa for taxel arrays). A limit of 0 disables that input.
    Releasing: with `resume="auto"` the latch clears once the readings fall below
    `release_ratio` x limit (new input is still needed to move again); with `resume="reset"`
    only `reset()` clears it. After `reset()` the guard stays disarmed until the readings have
    fallen below the release level once, so the arm can be moved away from a contact that
    keeps the reading high.
    """

    def __init__(self, max_force: float = 0.0, max_pressure: float = 0.0, release_ratio: float = 0.8, resume: str = "auto"):
        if max_force < 0 or max_pressure < 0:
            raise ValueError(f"contact limits must be >= 0 (0 = off), got {max_force}, {max_pressure}")
        if not (0 < release_ratio <= 1):
            raise ValueError(f"release_ratio must be in (0, 1], got {release_ratio}")
        if resume not in ("auto", "reset"):
            raise ValueError(f"contact resume must be 'auto' or 'reset', got '{resume}'")
        self.max_force = max_force
        self.max_pressure = max_pressure
        self.release_ratio = release_ratio
        self.resume = resume
        self.latched = False
        self.armed = True
        self._force = 0.0
        self._pressure = 0.0

    def _below_release(self) -> bool:
        f_ok = self.max_force <= 0 or self._force < self.release_ratio * self.max_force
        p_ok = self.max_pressure <= 0 or self._pressure < self.release_ratio * self.max_pressure
        return f_ok and p_ok

    def _update(self) -> str | None:
        if self._below_release():
            self.armed = True
            if self.latched and self.resume == "auto":
                self.latched = False
        if not self.armed or self.latched:
            return None
        if self.max_force > 0 and self._force > self.max_force:
            self.latched = True
            return f"wrist force {self._force:.1f} N above max_contact_force {self.max_force:.1f} N"
        if self.max_pressure > 0 and self._pressure > self.max_pressure:
            self.latched = True
            return f"tactile pressure {self._pressure:.1f} above max_grip_pressure {self.max_pressure:.1f}"
        return None

    def on_force(self, force: np.ndarray) -> str | None:
        """New wrist force (3,) N; returns a reason if this trips the guard."""
        self._force = float(np.linalg.norm(force))
        return self._update()

    def on_pressure(self, max_pressure: float) -> str | None:
        """New highest taxel pressure; returns a reason if this trips the guard."""
        self._pressure = float(max_pressure)
        return self._update()

    def reset(self) -> None:
        """Clear the latch; stay disarmed until the readings fall below the release level."""
        self.latched = False
        self.armed = self._below_release()

    @property
    def force(self) -> float:
        """Last |force|, N."""
        return self._force

    @property
    def pressure(self) -> float:
        """Last highest taxel pressure."""
        return self._pressure
