"""Closed-loop evaluation of a policy + chunk scheduling strategy in simulation, in lockstep.

`run_episode` runs the pick-and-place (`SimPickPlace`, ground-truth targets, no planner) with
the simulation stepped one control period at a time. Inference is computed when requested,
but its result is only *delivered* `delay` control steps later, exactly as if inference took
that long while the robot kept executing: this injects inference delay deterministically,
independent of how fast this machine is.

Smoothness is measured on the executed arm targets a_k (one per control step, rad):

- peak jerk: max over joints and steps of |Δ³a| / dt³ (rad/s³);
- boundary jump: at each step where execution switched to a newly arrived chunk, the change of
  velocity |a_k - 2 a_{k-1} + a_{k-2}| / dt² (rad/s², max over joints) — the acceleration
  spike a discontinuity at the chunk boundary causes; reported as mean and max over the
  episode's boundaries, next to the same quantity at non-boundary steps for reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from vla_stack.core.policy.chunk_scheduler import ChunkScheduler, SchedulerConfig
from vla_stack.core.policy.types import Policy, PolicyError, chunk_to_actions
from vla_stack.lab.policy.simulation import SimPickPlace


@dataclass
class EpisodeMetrics:
    """Outcome of one evaluated episode (times in s, jerk rad/s³, jumps rad/s²)."""

    seed: int
    strategy: str
    delay: int
    success: bool = False
    task_time: float | None = None
    steps: int = 0
    chunks: int = 0
    inferences: int = 0
    inference_errors: int = 0
    hold_steps: int = 0
    peak_jerk: float = 0.0
    boundary_jump_mean: float = 0.0
    boundary_jump_max: float = 0.0
    interior_jump_mean: float = 0.0
    reason: str = ""
    final_status: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serialisable fields."""
        return asdict(self)


def smoothness(executed: np.ndarray, switch_steps: list[int], dt: float) -> dict:
    """Peak jerk and chunk-boundary jumps of executed arm targets (T, 7) (see the module docstring)."""
    out = {"peak_jerk": 0.0, "boundary_jump_mean": 0.0, "boundary_jump_max": 0.0, "interior_jump_mean": 0.0}
    if executed.shape[0] >= 4:
        out["peak_jerk"] = float(np.max(np.abs(np.diff(executed, n=3, axis=0))) / dt**3)
    if executed.shape[0] >= 3:
        acc = np.max(np.abs(executed[2:] - 2 * executed[1:-1] + executed[:-2]), axis=1) / dt**2  # index k-2
        boundary = sorted({k for k in switch_steps if 2 <= k < executed.shape[0]})
        mask = np.zeros(acc.shape[0], dtype=bool)
        for k in boundary:
            mask[k - 2] = True
        if mask.any():
            out["boundary_jump_mean"] = float(acc[mask].mean())
            out["boundary_jump_max"] = float(acc[mask].max())
        if (~mask).any():
            out["interior_jump_mean"] = float(acc[~mask].mean())
    return out


def run_episode(
    policy: Policy,
    seed: int,
    strategy: str = "rtc",
    delay: int = 0,
    scheduler: SchedulerConfig | None = None,
    num_mugs: int = 3,
    max_time: float = 40.0,
    check_every: int = 5,
    settle_steps: int = 10,
    targets=None,
    task: SimPickPlace | None = None,
    actuator=None,
) -> EpisodeMetrics:
    """One closed-loop episode; see the module docstring.

    Args:
        policy: any `Policy` (its metadata gives H and the control period).
        seed: scene seed.
        strategy: chunk scheduling strategy name (overrides `scheduler.strategy`).
        delay: injected inference delay, control steps.
        scheduler: other scheduler settings.
        num_mugs: look-alike mugs in the scene.
        max_time: time limit, s.
        check_every: steps between ground-truth success checks.
        settle_steps: success must hold this many steps (the mug is not still falling).
        targets: where the expert's targets come from: None = ground truth; else an object with
            `step(task)` (called every control step) and `override(obs, task) -> Observation | None`
            (None: the node would request no chunk), e.g. `grounded_targets.GroundedTargets`.
        task: a ready `SimPickPlace` for `seed` (default: built here with tiny cameras).
        actuator: what executes the actions: None = `task.apply` / `task.hold` each step; else an
            object with `deliver(actions, stamp, task)` (a chunk arrives; stamp = its observation
            time) and `act(action_or_None, task)` (one control step), e.g. a safety controller.

    Returns:
        EpisodeMetrics (task_time = time of first lasting success).
    """
    meta = policy.metadata
    dt = meta.control_period
    base = scheduler or SchedulerConfig()
    cfg = SchedulerConfig(**{**asdict(base), "strategy": strategy})
    sched = ChunkScheduler(cfg, meta.horizon, meta.action_dim)
    task = task or SimPickPlace(seed, num_mugs=num_mugs, control_period=dt)
    policy.reset()
    res = EpisodeMetrics(seed=seed, strategy=strategy, delay=int(delay))
    in_flight: list[tuple[int, object, np.ndarray, float]] = []
    executed: list[np.ndarray] = []
    held = task.observe().arm_positions
    success_since: int | None = None
    last_error = ""
    max_steps = int(round(max_time / dt))

    def deliver(k: int, req, actions: np.ndarray, stamp: float) -> None:
        sched.deliver(actions, req, k)
        if actuator is not None:
            actuator.deliver(actions, stamp, task)

    for k in range(max_steps):
        for item in [it for it in in_flight if it[0] <= k]:
            in_flight.remove(item)
            deliver(k, *item[1:])
        if targets is not None:
            targets.step(task)
        obs = None
        if sched.needs_inference(k):
            obs = task.observe()
            if targets is not None:
                obs = targets.override(obs, task)
        if obs is not None:
            req = sched.make_request(k, obs)
            res.inferences += 1
            try:
                actions = chunk_to_actions(policy.infer(obs, req.guidance if meta.supports_guidance else None), meta)
            except PolicyError as exc:
                # as the node does: no new chunk, the robot finishes/holds the current one
                sched.cancel()
                res.inference_errors += 1
                last_error = f"{exc.code}: {exc.reason}"
                actions = None
            if actions is None:
                pass
            elif delay <= 0:
                deliver(k, req, actions, obs.stamp)
            else:
                in_flight.append((k + int(delay), req, actions, obs.stamp))
        a = sched.action(k)
        if actuator is not None:
            actuator.act(a, task)
        elif a is None:
            task.hold()
        else:
            task.apply(a)
        if a is None:
            res.hold_steps += 1
            executed.append(executed[-1] if executed else held)
        else:
            executed.append(a[:7].copy())
        res.steps = k + 1
        if k % check_every == 0:
            st = task.status()
            if st.success:
                success_since = k if success_since is None else success_since
                if k - success_since >= settle_steps:
                    res.success = True
                    res.task_time = round((success_since + 1) * dt, 3)
                    break
            else:
                success_since = None
    st = task.status()
    res.final_status = asdict(st)
    if not res.success:
        res.reason = (f"time limit {max_time:.0f} s: in_tray={st.in_tray} upright={st.upright} "
                      f"held={st.held} clear={st.clear}")
        if last_error:
            res.reason += f"; {res.inference_errors} inference error(s), last: {last_error}"
    res.chunks = sched.chunks_installed
    res.__dict__.update(smoothness(np.array(executed), sched.switch_steps, dt))
    return res


def summarize(results: list[EpisodeMetrics]) -> dict:
    """Success rate, mean task time of successes, median/max smoothness over `results`."""
    if not results:
        return {}
    ok = [r for r in results if r.success]
    times = [r.task_time for r in ok if r.task_time is not None]
    return {
        "episodes": len(results),
        "success_rate": len(ok) / len(results),
        "task_time_mean_s": float(np.mean(times)) if times else None,
        "task_time_median_s": float(np.median(times)) if times else None,
        "peak_jerk_median": float(np.median([r.peak_jerk for r in results])),
        "boundary_jump_mean": float(np.mean([r.boundary_jump_mean for r in results])),
        "boundary_jump_max": float(np.max([r.boundary_jump_max for r in results])),
        "interior_jump_mean": float(np.mean([r.interior_jump_mean for r in results])),
        "hold_steps_mean": float(np.mean([r.hold_steps for r in results])),
        "inferences_mean": float(np.mean([r.inferences for r in results])),
    }
