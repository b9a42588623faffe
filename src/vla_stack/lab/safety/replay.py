"""Replay timed input streams through a `SafetyController` and measure what comes out.

Used by the property tests (limit checks on the commanded stream) and by `bench/safety.py`
(peak jerk and velocity discontinuities at chunk boundaries, against the naive baseline of
sending chunks straight to a position command interface). ROS-free and deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.safety.controller import SafetyController
from vla_stack.core.safety.limits import JointLimits
from vla_stack.core.safety.status import SafetyState
from vla_stack.core.types import ActionChunk, JointState


@dataclass(frozen=True)
class TimedInput:
    """An input delivered just before the control cycle at index `cycle`.

    `apply(controller, now)` delivers it (e.g. `lambda c, t: c.submit_chunk(chunk, t)`).
    """

    cycle: int
    apply: Callable[[SafetyController, float], object]
    label: str = ""


@dataclass
class Trace:
    """Commanded stream of one replay: one row per control cycle.

    Args:
        times: (T,) controller time of each cycle, s.
        positions, velocities, accelerations: (T, n) commanded state, rad, rad/s, rad/s².
        states: SafetyState per cycle.
        boundaries: cycle indices at which a chunk was accepted.
        accepted, rejected: number of inputs accepted / refused.
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    states: list[SafetyState]
    boundaries: list[int] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0


def replay(
    controller: SafetyController,
    inputs: Iterable[TimedInput],
    cycles: int,
    t0: float = 100.0,
    feedback: bool = True,
    on_cycle: Callable[[int, float, SafetyController], None] | None = None,
) -> Trace:
    """Run `cycles` control cycles starting at time `t0` (s), delivering `inputs` on schedule.

    Args:
        controller: a controller that already received its first joint_states (or `feedback`
            gives it the commanded state as the measurement every cycle: perfect tracking).
        inputs: timed inputs (any order).
        cycles: number of `update` calls.
        t0: time of cycle 0, s.
        feedback: publish the commanded position back as joint_states each cycle.
        on_cycle: optional hook called before each update (e.g. to inject an e-stop).
    """
    dt = controller.dt
    by_cycle: dict[int, list[TimedInput]] = {}
    for item in inputs:
        by_cycle.setdefault(item.cycle, []).append(item)
    n = controller.n
    pos, vel, acc = np.empty((cycles, n)), np.empty((cycles, n)), np.empty((cycles, n))
    times, states, boundaries = np.empty(cycles), [], []
    accepted = rejected = 0
    for k in range(cycles):
        now = t0 + k * dt
        if feedback and controller.commanded is not None:
            controller.on_joint_state(JointState(controller.joint_names, controller.commanded.position, stamp=now), now)
        if on_cycle is not None:
            on_cycle(k, now, controller)
        for item in by_cycle.get(k, ()):
            result = item.apply(controller, now)
            if result is True:
                accepted += 1
                if item.label.startswith("chunk"):
                    boundaries.append(k)
            elif result is False:
                rejected += 1
        out = controller.update(now)
        times[k] = now
        if out.arm is None:
            pos[k] = np.nan
            vel[k] = np.nan
            acc[k] = np.nan
        else:
            pos[k], vel[k], acc[k] = out.arm.positions, out.arm.velocities, out.arm.accelerations
        states.append(out.state)
    return Trace(times, pos, vel, acc, states, boundaries, accepted, rejected)


def limit_violations(
    positions: np.ndarray,
    dt: float,
    limits: JointLimits,
    velocities: np.ndarray | None = None,
    accelerations: np.ndarray | None = None,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
) -> list[str]:
    """Every limit violation of a commanded stream, as readable strings (empty = none).

    Checks, per joint: positions within [lower, upper]; finite-difference velocity,
    acceleration and jerk of the positions (1st/2nd/3rd differences over `dt`) within the
    limits — these hold for any stream sampled from a continuous motion that respects the
    limits — and, when given, the reported velocities/accelerations and the jerk between
    consecutive accelerations. Tolerance: limit * (1 + rel_tol) + abs_tol (scaled by the
    differencing: abs_tol / dt^k), i.e. floating-point slack only.
    """
    out: list[str] = []
    p = np.asarray(positions, dtype=np.float64)
    if not np.all(np.isfinite(p)):
        out.append("non-finite commanded position")
        return out

    def check(name: str, values: np.ndarray, limit: np.ndarray, slack: float) -> None:
        bound = limit * (1 + rel_tol) + slack
        over = np.abs(values) > bound
        if np.any(over):
            k, j = np.argwhere(over)[0]
            out.append(f"{name} of {limits.names[j]} at sample {k}: {values[k, j]:.6g} > {bound[j]:.6g}")

    low = p < limits.lower - abs_tol
    high = p > limits.upper + abs_tol
    if np.any(low | high):
        k, j = np.argwhere(low | high)[0]
        out.append(f"position of {limits.names[j]} at sample {k}: {p[k, j]:.6f} outside [{limits.lower[j]}, {limits.upper[j]}]")
    if len(p) > 1:
        check("fd velocity", np.diff(p, axis=0) / dt, limits.velocity, abs_tol / dt)
    if len(p) > 2:
        check("fd acceleration", np.diff(p, 2, axis=0) / dt**2, limits.acceleration, abs_tol / dt**2)
    if len(p) > 3:
        check("fd jerk", np.diff(p, 3, axis=0) / dt**3, limits.jerk, abs_tol / dt**3)
    if velocities is not None:
        check("velocity", np.asarray(velocities), limits.velocity, abs_tol)
    if accelerations is not None:
        a = np.asarray(accelerations)
        check("acceleration", a, limits.acceleration, abs_tol)
        if len(a) > 1:
            check("jerk", np.diff(a, axis=0) / dt, limits.jerk, abs_tol / dt)
    return out


def naive_position_stream(chunks: Sequence[tuple[int, ActionChunk]], cycles: int, dt: float, t0: float,
                          start: np.ndarray) -> np.ndarray:
    """Baseline: what a position interface receives when chunks go straight to it.

    Each cycle commands the most recent chunk's position at that time (linear
    interpolation between points, held before its first and after its last point, the way a
    forward position controller or a joint_trajectory_controller without blending sees
    positions-only points). `chunks` are (arrival cycle, chunk) in arrival order, chunk
    columns in the controller's joint order. Returns (cycles, n) positions.
    """
    out = np.empty((cycles, len(start)))
    current: ActionChunk | None = None
    queue = list(chunks)
    last = np.asarray(start, dtype=np.float64)
    for k in range(cycles):
        now = t0 + k * dt
        while queue and queue[0][0] <= k:
            current = queue.pop(0)[1]
        if current is not None:
            t_abs = current.stamp + current.times
            last = np.array([np.interp(now, t_abs, current.positions[:, j]) for j in range(current.positions.shape[1])])
        out[k] = last
    return out


def boundary_metrics(positions: np.ndarray, dt: float, boundaries: Sequence[int], limits: JointLimits,
                     window: int = 3) -> dict[str, float]:
    """Smoothness at chunk boundaries of a commanded position stream.

    Finite differences over `dt` give velocity, acceleration and jerk. A boundary has a
    "velocity discontinuity" when, within `window` cycles of it, the velocity changes in one
    period by more than the acceleration limit allows (|Δv| > a_max·dt on any joint): a step
    the robot cannot follow (real arms fault on these).

    Returns dict: peak_jerk (rad/s³, any joint, whole stream), peak_jerk_ratio_any (/ that
    joint's limit), peak_boundary_jerk and peak_boundary_jerk_ratio (within `window` cycles of
    a boundary), velocity_discontinuities (number of boundaries with one).
    """
    p = np.asarray(positions)
    v = np.diff(p, axis=0) / dt
    a = np.diff(v, axis=0) / dt
    j = np.diff(a, axis=0) / dt
    ratio = np.abs(j) / limits.jerk
    jumps = np.abs(np.diff(v, axis=0)) > limits.acceleration * dt * (1 + 1e-6) + 1e-9
    discontinuities = 0
    peak_b, peak_b_ratio = 0.0, 0.0
    for b in boundaries:
        lo, hi = max(b - window, 0), min(b + window, len(j))
        if hi > lo:
            peak_b = max(peak_b, float(np.max(np.abs(j[lo:hi]))))
            peak_b_ratio = max(peak_b_ratio, float(np.max(ratio[lo:hi])))
        jl, jh = max(b - window, 0), min(b + window, len(jumps))
        discontinuities += int(np.any(jumps[jl:jh]))
    return {
        "peak_jerk": float(np.max(np.abs(j))) if j.size else 0.0,
        "peak_jerk_ratio_any": float(np.max(ratio)) if ratio.size else 0.0,
        "peak_boundary_jerk": peak_b,
        "peak_boundary_jerk_ratio": peak_b_ratio,
        "velocity_discontinuities": float(discontinuities),
    }
