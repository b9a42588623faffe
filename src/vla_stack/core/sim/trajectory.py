"""Reference generator with the semantics of ros2_control's joint_trajectory_controller (JTC).

`JointTrajectoryFollower` turns incoming trajectories (validated `ActionChunk`s) into a
position/velocity reference sampled at any time:

- A new trajectory replaces whatever remains of the previous one.
- `time_from_start` is relative to the chunk's `stamp`, or to the receipt time when the stamp
  is 0 (as JTC treats a zero header stamp).
- Points at or before the receipt time are skipped; a trajectory whose last point is already
  in the past is rejected (`InvalidCommand("stale")`, previous trajectory kept).
- The reference moves from the commanded state at receipt to the first remaining point, then
  through the points: linearly when the chunk has positions only, by cubic Hermite splines
  when it has velocities too (as JTC does); it holds the last point afterwards.
- A chunk may name a subset of the joints; the others hold their commanded position.

Times are seconds on the robot's clock (sim time); positions rad (m for prismatic joints).
Pure numpy, no MuJoCo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_stack.core.types import ActionChunk
from vla_stack.core.validation import InvalidCommand


class JointTrajectoryFollower:
    """Reference (position, velocity) of a set of joints under JTC semantics.

    Args:
        joint_names: the controlled joints, in the order of every array here.
        initial_positions: (n,) reference held until the first command.
    """

    def __init__(self, joint_names: Sequence[str], initial_positions: Sequence[float]) -> None:
        self.joint_names = tuple(joint_names)
        q = np.asarray(initial_positions, dtype=np.float64)
        if q.shape != (len(self.joint_names),):
            raise ValueError(f"initial_positions must have shape ({len(self.joint_names)},), got {q.shape}")
        self._index = {n: i for i, n in enumerate(self.joint_names)}
        self.hold(q, 0.0)

    # ---- commands ---------------------------------------------------------------------------
    def hold(self, positions: Sequence[float], t: float) -> None:
        """Replace any trajectory by holding `positions` (n,) from time `t` on (forward position command)."""
        q = np.asarray(positions, dtype=np.float64).copy()
        if q.shape != (len(self.joint_names),):
            raise ValueError(f"positions must have shape ({len(self.joint_names)},), got {q.shape}")
        self._times = np.array([t])
        self._pos = q[None, :]
        self._vel: np.ndarray | None = None

    def set_trajectory(self, chunk: ActionChunk, receipt_time: float) -> int:
        """Start following `chunk` (already validated: known joints, finite, increasing times).

        Args:
            chunk: joint names (any order, subset allowed), times relative to `chunk.stamp`
                (or to `receipt_time` when the stamp is 0), positions and optional velocities.
            receipt_time: robot time the command arrived, s.

        Returns:
            Number of points kept (points at or before `receipt_time` are skipped).

        Raises:
            InvalidCommand("unknown_joint") if the chunk names a joint this follower lacks;
            InvalidCommand("stale") if every point lies at or before `receipt_time`. Nothing
            changes when it raises.
        """
        unknown = [n for n in chunk.joint_names if n not in self._index]
        if unknown:
            raise InvalidCommand("unknown_joint", f"unknown joint(s) {unknown}; this controller has {list(self.joint_names)}")
        start = chunk.stamp if chunk.stamp > 0.0 else receipt_time
        abs_times = start + chunk.times
        keep = abs_times > receipt_time + 1e-9
        if not np.any(keep):
            raise InvalidCommand(
                "stale",
                f"trajectory ends at t={abs_times[-1]:.3f} s, before its receipt at t={receipt_time:.3f} s "
                f"(stamp {chunk.stamp:.3f} s + last time_from_start {chunk.times[-1]:.3f} s)",
            )
        p_now, v_now = self.sample(receipt_time)
        cols = [self._index[n] for n in chunk.joint_names]
        k = int(np.count_nonzero(keep))
        pos = np.repeat(p_now[None, :], k + 1, axis=0)
        pos[1:, cols] = chunk.positions[keep]
        vel = None
        if chunk.velocities is not None:
            vel = np.zeros_like(pos)
            vel[0] = v_now
            vel[0, [i for i in range(len(self.joint_names)) if i not in cols]] = 0.0
            vel[1:, cols] = chunk.velocities[keep]
        self._times = np.concatenate([[receipt_time], abs_times[keep]])
        self._pos = pos
        self._vel = vel
        return k

    # ---- reference ------------------------------------------------------------------------
    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Reference (positions (n,), velocities (n,)) at time `t`, s."""
        times, pos = self._times, self._pos
        if t >= times[-1] or len(times) == 1:
            return pos[-1].copy(), np.zeros(pos.shape[1])
        if t <= times[0]:
            return pos[0].copy(), (self._vel[0].copy() if self._vel is not None else np.zeros(pos.shape[1]))
        i = int(np.searchsorted(times, t, side="right")) - 1
        t0, t1 = times[i], times[i + 1]
        h = t1 - t0
        s = (t - t0) / h
        p0, p1 = pos[i], pos[i + 1]
        if self._vel is None:
            return p0 + (p1 - p0) * s, (p1 - p0) / h
        v0, v1 = self._vel[i], self._vel[i + 1]
        s2, s3 = s * s, s * s * s
        h00, h10, h01, h11 = 2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s, -2 * s3 + 3 * s2, s3 - s2
        p = h00 * p0 + h10 * h * v0 + h01 * p1 + h11 * h * v1
        d00, d10, d01, d11 = 6 * s2 - 6 * s, 3 * s2 - 4 * s + 1, -6 * s2 + 6 * s, 3 * s2 - 2 * s
        v = (d00 * p0 + d01 * p1) / h + d10 * v0 + d11 * v1
        return p, v

    @property
    def end_time(self) -> float:
        """Time of the last point (the reference is constant afterwards), s."""
        return float(self._times[-1])

    def active(self, t: float) -> bool:
        """True while a trajectory is still moving the reference at time `t`."""
        return t < self._times[-1]

    @property
    def goal(self) -> np.ndarray:
        """(n,) final reference position."""
        return self._pos[-1].copy()
