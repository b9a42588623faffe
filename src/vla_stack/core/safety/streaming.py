"""Jerk-limited streaming of joint references (ruckig) and time-aligned chunk references.

`JerkLimitedStreamer` wraps ruckig's online trajectory generator for three uses, each
starting from the current *commanded* state (position, velocity, acceleration), so every
output is continuous in position, velocity and acceleration and respects the velocity,
acceleration and jerk limits by construction:

- `plan_to`: reach a target position/velocity no earlier than a given duration (tracking a
  chunk: the target slides along the chunk, re-planned every control cycle);
- `plan_velocity`: reach a target velocity (teleop);
- `plan_stop`: come to rest as fast as the limits allow, each joint on its own (e-stop,
  watchdog, guards; also the "backup" trajectory every command is checked against).

Ruckig's community version does not enforce position limits; the controller checks them on
the stop trajectory (`position_extrema`) before commanding anything.

`ChunkReference` turns an accepted chunk into a C1 function of absolute time (cubic Hermite
between points, velocities from the chunk or from finite differences, zero velocity at the
last point) so the streamer's targets move smoothly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ruckig import ControlInterface, InputParameter, Result, Ruckig, RuckigError, Synchronization, Trajectory

from vla_stack.core.safety.limits import JointLimits

_OK = (Result.Working, Result.Finished)


@dataclass
class MotionState:
    """Commanded joint state.

    Args:
        position: (n,) rad. velocity: (n,) rad/s. acceleration: (n,) rad/s².
    """

    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray

    @classmethod
    def at_rest(cls, position: np.ndarray) -> MotionState:
        """State at `position` with zero velocity and acceleration."""
        p = np.array(position, dtype=np.float64)
        return cls(p, np.zeros_like(p), np.zeros_like(p))

    def copy(self) -> MotionState:
        """Deep copy."""
        return MotionState(self.position.copy(), self.velocity.copy(), self.acceleration.copy())

    def is_at_rest(self, tol: float = 1e-9) -> bool:
        """True when velocity and acceleration are zero within `tol`."""
        return bool((np.abs(self.velocity) <= tol).all() and (np.abs(self.acceleration) <= tol).all())

    def is_finite(self) -> bool:
        """True when no component is NaN/inf."""
        return bool(
            np.isfinite(self.position).all() and np.isfinite(self.velocity).all()
            and np.isfinite(self.acceleration).all()
        )


def sample(traj: Trajectory, t: float) -> MotionState:
    """State of a ruckig trajectory at time `t` s after its start.

    Past its end the trajectory continues at its final velocity with zero acceleration
    (every plan here ends with zero acceleration), so a target reached mid-period does
    not leave the position short of where the velocity says it is.
    """
    duration = traj.duration
    if t <= duration:
        p, v, a = traj.at_time(max(t, 0.0))
        return MotionState(np.array(p), np.array(v), np.array(a))
    p, v, _ = traj.at_time(duration)
    vel = np.array(v)
    return MotionState(np.array(p) + vel * (t - duration), vel, np.zeros_like(vel))


def _phase_extrema(durations, ps, vs, accs, jerks, lo: float, hi: float) -> tuple[float, float]:
    """Fold the position extrema of one jerk-phase sequence into (lo, hi)."""
    for i, dur in enumerate(durations):
        if dur <= 0.0:
            continue
        p, v, a, j = ps[i], vs[i], accs[i], jerks[i]
        if p < lo:
            lo = p
        if p > hi:
            hi = p
        # zeros of v(τ) = v + a τ + j τ²/2 strictly inside (0, dur)
        if j != 0.0:
            disc = a * a - 2.0 * j * v
            if disc < 0.0:
                continue
            sq = math.sqrt(disc)
            roots = ((-a + sq) / j, (-a - sq) / j)
        elif a != 0.0:
            roots = (-v / a,)
        else:
            continue
        for r in roots:
            if 0.0 < r < dur:
                x = p + v * r + a * r * r / 2.0 + j * r * r * r / 6.0
                if x < lo:
                    lo = x
                if x > hi:
                    hi = x
    return lo, hi


def position_extrema(traj: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """Exact (min, max) position of every joint over a single-section ruckig trajectory, rad.

    Computed from the profiles' jerk phases: extrema lie at phase boundaries or where the
    velocity crosses zero inside a phase. (`Trajectory.position_extrema` of the ruckig 0.19
    Python bindings returns stale values for velocity-interface plans, so it is not used.)
    """
    profiles = traj.profiles[0]
    n = len(profiles)
    mins, maxs = np.empty(n), np.empty(n)
    for d, pr in enumerate(profiles):
        ps = pr.p
        lo = hi = ps[7]
        for pre in (pr.brake, pr.accel):
            if pre.duration > 0.0:  # a pre-phase, when the start state is beyond the limits
                lo, hi = _phase_extrema(pre.t, pre.p, pre.v, pre.a, pre.j, lo, hi)
        lo, hi = _phase_extrema(pr.t, ps, pr.v, pr.a, pr.j, lo, hi)
        mins[d], maxs[d] = lo, hi
    return mins, maxs


class JerkLimitedStreamer:
    """Ruckig planner for one arm, reusing its buffers (no allocation beyond numpy results).

    Args:
        limits: the (scaled) limits every plan respects.
        dt: control period, s.

    Not thread-safe. Plans are returned as ruckig `Trajectory` objects owned by this
    instance: each `plan_*` method has its own buffer, valid until that method is called again.
    """

    def __init__(self, limits: JointLimits, dt: float) -> None:
        if not (dt > 0):
            raise ValueError(f"control period must be > 0, got {dt}")
        self.limits = limits
        self.dt = float(dt)
        n = limits.n
        self.n = n
        self._otg = Ruckig(n)
        vmax, amax, jmax = list(limits.velocity), list(limits.acceleration), list(limits.jerk)
        # Keep targets a hair inside the velocity limit: ruckig rejects a target velocity on the limit
        # when the floating-point round trip puts it just above.
        self._vtarget = limits.velocity * (1.0 - 1e-9)

        def make(interface: ControlInterface, sync: Synchronization) -> InputParameter:
            inp = InputParameter(n)
            inp.control_interface = interface
            inp.synchronization = sync
            inp.max_velocity, inp.max_acceleration, inp.max_jerk = vmax, amax, jmax
            inp.target_acceleration = [0.0] * n
            return inp

        self._inp_pos = make(ControlInterface.Position, Synchronization.Time)
        self._inp_vel = make(ControlInterface.Velocity, Synchronization.Time)
        self._inp_stop = make(ControlInterface.Velocity, Synchronization.No)
        self._inp_stop.target_velocity = [0.0] * n
        self._traj_pos = Trajectory(n)
        self._traj_vel = Trajectory(n)
        self._traj_stop = Trajectory(n)
        self.last_error: str = ""

    @staticmethod
    def _set_current(inp: InputParameter, state: MotionState) -> None:
        # Round-off residue (|v| ~ 1e-15 at the end of a stop) sends ruckig's time
        # synchronisation into rare numerical failures; such values are exactly zero physically.
        v = np.where(np.abs(state.velocity) < 1e-12, 0.0, state.velocity)
        a = np.where(np.abs(state.acceleration) < 1e-10, 0.0, state.acceleration)
        inp.current_position = state.position.tolist()
        inp.current_velocity = v.tolist()
        inp.current_acceleration = a.tolist()

    def _calc(self, inp: InputParameter, traj: Trajectory, what: str) -> Trajectory | None:
        try:
            result = self._otg.calculate(inp, traj)
        except RuckigError as exc:  # invalid input (e.g. a target beyond the limits)
            self.last_error = f"{what}: {str(exc).strip()}"
            return None
        if result not in _OK:
            self.last_error = f"{what}: ruckig returned {result.name}"
            return None
        return traj

    def plan_to(
        self, state: MotionState, target_position: np.ndarray, target_velocity: np.ndarray, duration: float
    ) -> Trajectory | None:
        """Jerk-limited trajectory from `state` to (target_position, target_velocity, 0 acceleration).

        Args:
            state: current commanded state.
            target_position: (n,) rad (caller keeps it within position limits).
            target_velocity: (n,) rad/s, clipped to the velocity limits here.
            duration: minimum duration, s (all joints arrive together, no earlier than this;
                later if the limits need more time).

        Returns:
            The trajectory, or None (reason in `last_error`) if ruckig found none.
        """
        inp = self._inp_pos
        self._set_current(inp, state)
        inp.target_position = np.asarray(target_position, dtype=np.float64).tolist()
        inp.target_velocity = np.clip(target_velocity, -self._vtarget, self._vtarget).tolist()
        inp.minimum_duration = float(duration) if duration > 0 else None
        traj = self._calc(inp, self._traj_pos, "plan_to")
        if traj is None and inp.minimum_duration is not None:
            # rare synchronisation failures: fall back to the time-optimal plan to the same target
            inp.minimum_duration = None
            traj = self._calc(inp, self._traj_pos, "plan_to")
        return traj

    def plan_velocity(self, state: MotionState, target_velocity: np.ndarray) -> Trajectory | None:
        """Jerk-limited trajectory from `state` to a constant joint velocity (rad/s, clipped to limits)."""
        inp = self._inp_vel
        self._set_current(inp, state)
        inp.target_velocity = np.clip(target_velocity, -self._vtarget, self._vtarget).tolist()
        return self._calc(inp, self._traj_vel, "plan_velocity")

    def plan_stop(self, state: MotionState) -> Trajectory | None:
        """Time-optimal stop from `state`: every joint decelerates to rest independently."""
        inp = self._inp_stop
        self._set_current(inp, state)
        return self._calc(inp, self._traj_stop, "plan_stop")

    def step(self, traj: Trajectory) -> MotionState:
        """State one control period into `traj`."""
        return sample(traj, self.dt)


@dataclass(frozen=True)
class ChunkReference:
    """An accepted chunk as a C1 reference over absolute time.

    Args:
        times: (H,) absolute times of the points, s (controller clock), strictly increasing.
        positions: (H, n) rad, within the position limits.
        velocities: (H, n) rad/s at the points (the last row is zero: the chunk ends at rest).
        gripper: (H,) gripper opening width per point, m, or None.
        stamp: observation time of the chunk, s.
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    gripper: np.ndarray | None
    stamp: float

    @classmethod
    def build(
        cls,
        times: np.ndarray,
        positions: np.ndarray,
        max_velocity: np.ndarray,
        velocities: np.ndarray | None = None,
        gripper: np.ndarray | None = None,
        stamp: float = 0.0,
    ) -> ChunkReference:
        """Reference through `positions` at absolute `times`.

        Knot velocities: the chunk's own when given, otherwise central finite differences
        (one-sided at the first point); always zero at the last point; clipped to
        `max_velocity`.
        """
        t = np.asarray(times, dtype=np.float64)
        p = np.asarray(positions, dtype=np.float64)
        h = len(t)
        if velocities is not None:
            v = np.array(velocities, dtype=np.float64)
        elif h == 1:
            v = np.zeros_like(p)
        else:
            v = np.empty_like(p)
            v[0] = (p[1] - p[0]) / (t[1] - t[0])
            if h > 2:
                v[1:-1] = (p[2:] - p[:-2]) / (t[2:] - t[:-2])[:, None]
        v[-1] = 0.0
        v = np.clip(v, -max_velocity, max_velocity)
        g = None if gripper is None else np.asarray(gripper, dtype=np.float64)
        return cls(t, p, v, g, float(stamp))

    @property
    def t_start(self) -> float:
        """Absolute time of the first point, s."""
        return float(self.times[0])

    @property
    def t_end(self) -> float:
        """Absolute time of the last point, s."""
        return float(self.times[-1])

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(position rad, velocity rad/s) of the reference at absolute time `t`.

        Before the first point: the first point (with its velocity); after the last: the last
        point at rest; in between: cubic Hermite interpolation.
        """
        times = self.times
        if t <= times[0]:
            return self.positions[0].copy(), self.velocities[0].copy()
        if t >= times[-1]:
            return self.positions[-1].copy(), np.zeros(self.positions.shape[1])
        i = int(np.searchsorted(times, t, side="right")) - 1
        t0, t1 = times[i], times[i + 1]
        h = t1 - t0
        s = (t - t0) / h
        p0, p1 = self.positions[i], self.positions[i + 1]
        m0, m1 = self.velocities[i] * h, self.velocities[i + 1] * h
        s2, s3 = s * s, s * s * s
        pos = (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * m0 + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * m1
        dpos = ((6 * s2 - 6 * s) * p0 + (3 * s2 - 4 * s + 1) * m0 + (-6 * s2 + 6 * s) * p1 + (3 * s2 - 2 * s) * m1) / h
        return pos, dpos

    def gripper_at(self, t: float) -> float | None:
        """Gripper width at absolute time `t` (linear interpolation, held outside), m; None if no gripper column."""
        if self.gripper is None:
            return None
        return float(np.interp(t, self.times, self.gripper))
