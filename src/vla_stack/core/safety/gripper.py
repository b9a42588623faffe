"""Gripper pass-through: the chunk's gripper column becomes width commands, rate-limited in
speed, sent at their own rate with a force limit."""

from __future__ import annotations

from dataclasses import dataclass

from vla_stack.core.safety.limits import GripperProfile


@dataclass(frozen=True)
class GripperCommand:
    """One gripper command: opening `width` m, grasp force limit `max_force` N, at `stamp` s."""

    width: float
    max_force: float
    stamp: float


class GripperPassThrough:
    """Speed- and force-limited gripper commands.

    Args:
        profile: gripper limits (width range, max speed m/s, max force N).
        rate: command rate, Hz (commands are produced at most this often).
    """

    def __init__(self, profile: GripperProfile, rate: float = 50.0) -> None:
        if not (rate > 0):
            raise ValueError(f"gripper rate must be > 0 Hz, got {rate}")
        self.profile = profile
        self.period = 1.0 / rate
        self._width: float | None = None
        self._target: float | None = None
        self._last_update: float | None = None
        self._last_sent: float | None = None

    @property
    def width(self) -> float | None:
        """Current commanded width, m (None until known)."""
        return self._width

    def clip(self, width: float) -> float:
        """`width` clipped into the gripper's range, m."""
        return min(max(width, self.profile.min_width), self.profile.max_width)

    def observe(self, measured_width: float) -> None:
        """Measured width, m: initialises the command before the first target arrives."""
        if self._width is None:
            self._width = self.clip(measured_width)

    def set_target(self, width: float) -> None:
        """Desired width, m (clipped to the range)."""
        self._target = self.clip(width)
        if self._width is None:
            self._width = self._target

    def hold(self) -> None:
        """Stop changing the width (e-stop, fault): target = current command."""
        self._target = self._width

    def update(self, now: float) -> GripperCommand | None:
        """Advance the rate-limited width to `now`; a command when one is due, else None."""
        if self._last_update is not None and self._width is not None and self._target is not None:
            step = self.profile.max_speed * max(now - self._last_update, 0.0)
            delta = self._target - self._width
            self._width += max(-step, min(step, delta))
        self._last_update = now
        if self._width is None:
            return None
        if self._last_sent is not None and now - self._last_sent < self.period - 1e-9:
            return None
        self._last_sent = now
        return GripperCommand(self._width, self.profile.max_force, now)
