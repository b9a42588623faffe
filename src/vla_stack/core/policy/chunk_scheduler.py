"""Asynchronous execution of action chunks: when to infer, which action runs at each step.

Time is counted in control steps k (period `control_period`). A chunk computed from the
observation of step k_obs holds actions for steps k_obs, k_obs + 1, ..., k_obs + H - 1
(action i is the target for the end of step k_obs + i). Inference takes d steps (the inference
delay, measured online as arrival step - request step): while it runs, the robot keeps
executing the current chunk.

The scheduler is a pure state machine, driven by its user (the action expert node in real
time, `evaluation.py` in lockstep simulation):

    if sched.needs_inference(k):
        request = sched.make_request(k, observation)      # carries the RTC guidance
        ... run policy.infer(request.observation, request.guidance) somewhere ...
    sched.deliver(actions, request, arrival_step)           # when the chunk is ready
    action = sched.action(k)                                # None = nothing yet: hold still
    future, first_step = sched.plan(k)                      # what will run from k on (to publish)

Strategies (registry `STRATEGIES`, selected by `SchedulerConfig.strategy`):

- `rtc` (default): a new chunk every s steps (s = `execution_horizon`, raised to the delay
  estimate if that is longer); it is generated with real-time chunking guidance (`rtc.py`):
  its first d̂ actions are inpainted to the committed ones, the rest of the overlap softly.
  d̂ = the largest delay among the last `delay_window` measurements (conservative, as the
  paper recommends). Switches to the new chunk as soon as it arrives.
- `naive_async`: the same timing without guidance: switches to the newest chunk on arrival
  (jumps at chunk boundaries).
- `sync`: executes the whole chunk, then infers and holds still until the next one arrives
  (no jumps, but pauses of d steps per chunk).
- `temporal_ensemble` (ACT): infers whenever no inference is running and executes, at each
  step, the weighted mean of every chunk's action for that step, weights exp(-m·j) with j = 0
  for the oldest chunk (m = `ensemble_decay`).

A chunk requested while the robot was not executing anything (start-up, or after the previous
chunk ran out) is executed from its first action on arrival, since the robot stood still.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.policy.rtc import SCHEDULES, prefix_weights
from vla_stack.core.policy.types import Guidance, Observation
from vla_stack.core.registry import Registry

STRATEGIES = Registry("chunk scheduling strategy")


@dataclass(frozen=True)
class SchedulerConfig:
    """How chunks are requested and executed (see the module docstring)."""

    strategy: str = field(default="rtc", metadata={"help": "rtc, naive_async, sync or temporal_ensemble"})
    execution_horizon: int = field(default=8, metadata={"help": "s: steps executed from a chunk before the next request"})
    delay_window: int = field(default=10, metadata={"help": "recent delay measurements the estimate d̂ is the max of"})
    initial_delay: int = field(default=0, metadata={"help": "delay estimate before any measurement, steps"})
    rtc_schedule: str = field(default="exp", metadata={"help": "RTC soft-mask schedule: exp, linear, ones, zeros"})
    max_guidance_weight: float = field(default=5.0, metadata={"help": "RTC guidance clip β"})
    ensemble_decay: float = field(default=0.1, metadata={"help": "temporal_ensemble weight decay m per chunk"})

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            STRATEGIES.get(self.strategy)  # raises KeyError with a "did you mean"
        if self.execution_horizon < 1:
            raise ValueError(f"execution_horizon must be >= 1, got {self.execution_horizon}")
        if self.delay_window < 1 or self.initial_delay < 0:
            raise ValueError("delay_window must be >= 1 and initial_delay >= 0")
        if self.rtc_schedule not in SCHEDULES:
            raise ValueError(f"rtc_schedule must be one of {SCHEDULES}, got {self.rtc_schedule!r}")
        if not self.max_guidance_weight > 0 or self.ensemble_decay < 0:
            raise ValueError("max_guidance_weight must be > 0 and ensemble_decay >= 0")


@dataclass(frozen=True)
class InferenceRequest:
    """One inference to run.

    Args:
        step: control step of the observation.
        observation: what to infer from.
        guidance: RTC constraint for the new chunk (None for other strategies / at start-up).
        delay_estimate: d̂ used for the guidance, steps.
        robot_idle: True if nothing was executing when it was requested.
    """

    step: int
    observation: Observation
    guidance: Guidance | None
    delay_estimate: int
    robot_idle: bool


@dataclass
class _Chunk:
    actions: np.ndarray  # (H, D) absolute
    start: int  # step at which actions[0] executes
    request_step: int

    def covers(self, step: int) -> bool:
        return self.start <= step < self.start + self.actions.shape[0]

    def at(self, step: int) -> np.ndarray:
        i = int(np.clip(step - self.start, 0, self.actions.shape[0] - 1))
        return self.actions[i]


class ChunkScheduler:
    """State machine of asynchronous chunk execution (see the module docstring).

    Args:
        config: strategy and its settings.
        horizon: H, actions per chunk.
        action_dim: numbers per action.
    """

    def __init__(self, config: SchedulerConfig, horizon: int, action_dim: int) -> None:
        self.config = config
        self.horizon = int(horizon)
        self.action_dim = int(action_dim)
        self.strategy = STRATEGIES.create(config.strategy)
        self.reset()

    def reset(self) -> None:
        """Forget chunks, pending requests and delay measurements."""
        self.chunks: list[_Chunk] = []
        self.pending: InferenceRequest | None = None
        self.delays: deque[int] = deque(maxlen=self.config.delay_window)
        self.last_action: np.ndarray | None = None
        self.chunks_installed = 0
        self.switch_steps: list[int] = []

    # ---- delay ----------------------------------------------------------------------------------------
    @property
    def delay_estimate(self) -> int:
        """d̂: the largest recent measured delay (steps), or `initial_delay` before any."""
        return max(self.delays) if self.delays else self.config.initial_delay

    @property
    def execution_horizon(self) -> int:
        """s actually used: the configured one, raised to d̂ (a chunk cannot be replaced before
        the next one can arrive), at most H."""
        return int(min(self.horizon, max(self.config.execution_horizon, self.delay_estimate, 1)))

    # ---- requests ---------------------------------------------------------------------------------------
    @property
    def current(self) -> _Chunk | None:
        """The newest installed chunk."""
        return self.chunks[-1] if self.chunks else None

    def executing(self, step: int) -> bool:
        """True if some chunk still has an action for `step`."""
        return any(c.covers(step) for c in self.chunks)

    def needs_inference(self, step: int) -> bool:
        """True if a new chunk should be requested at `step` (never while one is pending)."""
        return self.pending is None and self.strategy.should_request(self, step)

    def make_request(self, step: int, observation: Observation) -> InferenceRequest:
        """Build (and mark pending) the request for `step`, with guidance for `rtc`."""
        guidance = self.strategy.guidance(self, step) if self.executing(step) else None
        req = InferenceRequest(step, observation, guidance, self.delay_estimate, not self.executing(step))
        self.pending = req
        return req

    def cancel(self) -> None:
        """Drop the pending request (inference failed or its result was rejected)."""
        self.pending = None

    def deliver(self, actions: np.ndarray, request: InferenceRequest, arrival_step: int) -> None:
        """Install the chunk computed for `request`, ready at `arrival_step`.

        Args:
            actions: (H, action_dim) absolute actions.
            request: the request it answers (from `make_request`).
            arrival_step: first step at which it can be executed (measured delay =
                arrival_step - request.step).
        """
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.horizon, self.action_dim):
            raise ValueError(f"chunk must be ({self.horizon}, {self.action_dim}), got {actions.shape}")
        self.delays.append(max(0, int(arrival_step) - request.step))
        if self.pending is request:
            self.pending = None
        start = arrival_step if (request.robot_idle or self.strategy.starts_on_arrival) else request.step
        self.strategy.install(self, _Chunk(actions, int(start), request.step), arrival_step)
        self.chunks_installed += 1
        self.switch_steps.append(int(arrival_step))

    # ---- execution -----------------------------------------------------------------------------------------
    def action(self, step: int) -> np.ndarray | None:
        """Action to execute at `step`; None if there is nothing to execute (hold still)."""
        a = self.strategy.action(self, step)
        if a is not None:
            self.last_action = a
        return a

    def plan(self, step: int) -> tuple[np.ndarray, int] | None:
        """What will execute from `step` on if nothing new arrives: (actions (n, D), first step)."""
        rows = []
        for k in range(step, step + self.horizon):
            a = self.strategy.action(self, k)
            if a is None:
                break
            if not self.strategy.covers(self, k):
                break
            rows.append(a)
        return (np.array(rows), step) if rows else None


class _Strategy:
    starts_on_arrival = False

    def should_request(self, s: ChunkScheduler, step: int) -> bool:
        cur = s.current
        return cur is None or step - cur.start >= s.execution_horizon or not cur.covers(step)

    def guidance(self, s: ChunkScheduler, step: int) -> Guidance | None:
        return None

    def install(self, s: ChunkScheduler, chunk: _Chunk, arrival_step: int) -> None:
        s.chunks = [chunk]

    def covers(self, s: ChunkScheduler, step: int) -> bool:
        return any(c.covers(step) for c in s.chunks)

    def action(self, s: ChunkScheduler, step: int) -> np.ndarray | None:
        cur = s.current
        if cur is None or step < cur.start:
            return None
        return cur.at(step)  # holds the last action after the end


@STRATEGIES.register("naive_async")
class NaiveAsync(_Strategy):
    """New chunk every s steps; switch to it on arrival (see the module docstring)."""


@STRATEGIES.register("rtc")
class RealTimeChunking(_Strategy):
    """Like naive_async, with guided inpainting of the overlap (see the module docstring)."""

    def guidance(self, s: ChunkScheduler, step: int) -> Guidance | None:
        cur = s.current
        if cur is None:
            return None
        prefix = np.array([cur.at(step + i) for i in range(s.horizon)])
        overlap_end = max(0, cur.start + s.horizon - step)
        d = min(s.delay_estimate, overlap_end)
        weights = prefix_weights(d, overlap_end, s.horizon, s.config.rtc_schedule)
        if not np.any(weights > 0):
            return None
        return Guidance(prefix, weights, s.config.max_guidance_weight)


@STRATEGIES.register("sync")
class Synchronous(_Strategy):
    """Execute the whole chunk, then infer while holding still."""

    starts_on_arrival = True

    def should_request(self, s: ChunkScheduler, step: int) -> bool:
        cur = s.current
        return cur is None or step >= cur.start + s.horizon

    def action(self, s: ChunkScheduler, step: int) -> np.ndarray | None:
        cur = s.current
        if cur is None or not cur.covers(step):
            return None  # waiting for the next chunk: hold still
        return cur.at(step)


@STRATEGIES.register("temporal_ensemble")
class TemporalEnsemble(_Strategy):
    """ACT temporal ensembling: weighted mean of every chunk's action for the step."""

    def should_request(self, s: ChunkScheduler, step: int) -> bool:
        return True

    def install(self, s: ChunkScheduler, chunk: _Chunk, arrival_step: int) -> None:
        s.chunks = [c for c in s.chunks if c.start + s.horizon > arrival_step] + [chunk]

    def action(self, s: ChunkScheduler, step: int) -> np.ndarray | None:
        live = [c for c in s.chunks if c.covers(step)]
        if not live:
            cur = s.current
            return None if cur is None or step < cur.start else cur.at(step)
        w = np.exp(-s.config.ensemble_decay * np.arange(len(live)))
        return np.tensordot(w / w.sum(), np.array([c.at(step) for c in live]), axes=1)
