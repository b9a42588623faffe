"""Real-time driver of a policy: inference in a worker thread, timing by the chunk scheduler.

`RealTimeChunker` is what the action expert node calls at every control tick:

    out = chunker.tick(now, observation_or_None)
    if out.chunk is not None:
        publish(out.chunk)          # header.stamp = out.chunk.stamp = observation time
    for line in out.events:
        log(line)

Steps are counted from the first tick: step k covers [epoch + k·dt, epoch + (k+1)·dt). A
result's arrival step is the step in which its inference *finished* (so the measured delay
d = arrival - request step is the real latency in control steps, not the tick it was picked
up in). A chunk whose observation is older than `max_observation_age` when it would be
published is dropped (and reported), never published. When time jumps backwards (simulation
reset), everything is reset.

The published chunk is `ChunkScheduler.plan(k)`: what the strategy will execute from now on,
as an `ActionChunk` stamped with the newest observation time, point i at the end of step
k + i (so times are relative to the observation stamp, and points already in the past are
simply never included).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from vla_stack.core.policy.chunk_scheduler import ChunkScheduler, InferenceRequest, SchedulerConfig
from vla_stack.core.policy.types import Observation, Policy, PolicyError, actions_to_chunk, chunk_to_actions
from vla_stack.core.types import ActionChunk


@dataclass
class TickOutput:
    """Result of one tick: a chunk to publish (or None) and log lines for the operator."""

    chunk: ActionChunk | None = None
    events: list[str] = field(default_factory=list)


@dataclass
class _Result:
    request: InferenceRequest
    actions: np.ndarray | None
    error: PolicyError | None
    started: float
    finished: float


class _Worker:
    """One background thread running `policy.infer` for one request at a time."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._jobs: queue.Queue = queue.Queue(maxsize=1)
        self._results: queue.Queue = queue.Queue()
        self.busy = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-inference", daemon=True)
        self._thread.start()

    def submit(self, request: InferenceRequest, stamp_clock: float) -> None:
        self.busy = True
        self._jobs.put((request, stamp_clock))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                request, started = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            t0 = time.monotonic()
            actions, error = None, None
            try:
                chunk = self.policy.infer(request.observation, request.guidance)
                actions = chunk_to_actions(chunk, self.policy.metadata)
            except PolicyError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - a crashing backend must not kill the node
                error = PolicyError("backend_error", f"{type(exc).__name__}: {exc}")
            finished = started + (time.monotonic() - t0)
            self._results.put(_Result(request, actions, error, started, finished))

    def results(self) -> list[_Result]:
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                break
        if out:
            self.busy = False
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


class RealTimeChunker:
    """Policy + scheduler + inference thread (see the module docstring).

    Args:
        policy: the backend.
        scheduler: strategy and settings.
        max_observation_age: never publish a chunk computed from an observation older than this, s.
        threaded: run inference in a worker thread (False: inline, for tests; then the
            measured delay is 0 unless the tick itself is late).
    """

    def __init__(self, policy: Policy, scheduler: SchedulerConfig | None = None, max_observation_age: float = 0.5,
                 threaded: bool = True) -> None:
        if not max_observation_age > 0:
            raise ValueError(f"max_observation_age must be > 0, got {max_observation_age}")
        self.policy = policy
        self.scheduler_config = scheduler or SchedulerConfig()
        self.max_observation_age = float(max_observation_age)
        meta = policy.metadata
        self.dt = meta.control_period
        self.scheduler = ChunkScheduler(self.scheduler_config, meta.horizon, meta.action_dim)
        self._worker = _Worker(policy) if threaded else None
        self._inline: list[_Result] = []
        self.latencies_ms: deque[float] = deque(maxlen=200)
        self.counters = {"inferences": 0, "chunks_published": 0, "inference_errors": 0, "stale_chunks_dropped": 0}
        self.last_error = ""
        self.last_delay = 0
        self.reset()

    def reset(self) -> None:
        """Restart: forget chunks and timing (the policy is reset too)."""
        self.epoch: float | None = None
        self._last_now = -math.inf
        self.scheduler.reset()
        self.policy.reset()
        self._newest_stamp = 0.0

    def step_of(self, t: float) -> int:
        """Control step containing time `t` (s)."""
        assert self.epoch is not None
        return int(math.floor((t - self.epoch) / self.dt + 1e-9))

    def tick(self, now: float, observation: Observation | None) -> TickOutput:
        """Advance to time `now` (s): collect finished inference, maybe start one, maybe publish."""
        out = TickOutput()
        if self.epoch is None:
            self.epoch = now
        if now < self._last_now - 1e-6:
            out.events.append(f"clock went back from {self._last_now:.3f} s to {now:.3f} s (simulation reset?): "
                              "dropping every chunk and starting over")
            if self._worker is not None:
                self._worker.results()
            self.reset()
            self.epoch = now
        self._last_now = now
        k = self.step_of(now)
        results = self._worker.results() if self._worker is not None else self._inline
        self._inline = []
        delivered = False
        for res in results:
            if self.scheduler.pending is not res.request:
                continue  # from before a reset
            if res.error is not None:
                self.scheduler.cancel()
                self.counters["inference_errors"] += 1
                self.last_error = f"{res.error.code}: {res.error.reason}"
                out.events.append(f"inference failed ({self.last_error}); no new chunk, the robot finishes/holds the last one")
                continue
            self.latencies_ms.append((res.finished - res.started) * 1e3)
            age = now - res.request.observation.stamp
            if age > self.max_observation_age:
                self.scheduler.cancel()
                self.counters["stale_chunks_dropped"] += 1
                out.events.append(f"chunk dropped: computed from an observation {age:.3f} s old "
                                  f"(> max_observation_age {self.max_observation_age} s)")
                continue
            arrival = max(res.request.step, min(k, int(math.ceil((res.finished - self.epoch) / self.dt - 1e-9))))
            self.scheduler.deliver(res.actions, res.request, arrival)
            self.last_delay = arrival - res.request.step
            self._newest_stamp = res.request.observation.stamp
            delivered = True
        if observation is not None and self.scheduler.needs_inference(k) and not self._busy():
            request = self.scheduler.make_request(k, observation)
            self.counters["inferences"] += 1
            if self._worker is not None:
                self._worker.submit(request, now)
            else:
                self._run_inline(request, now)
                return self._merge(out, self.tick(now, None))
        if delivered:
            plan = self.scheduler.plan(k)
            if plan is not None:
                actions, first = plan
                times_abs = self.epoch + self.dt * (first + 1 + np.arange(actions.shape[0]))
                offset = float(times_abs[0] - self._newest_stamp - self.dt)
                chunk = actions_to_chunk(actions, self._newest_stamp, self.policy.metadata, time_offset=offset)
                out.chunk = chunk
                self.counters["chunks_published"] += 1
        return out

    @staticmethod
    def _merge(first: TickOutput, second: TickOutput) -> TickOutput:
        first.events.extend(second.events)
        first.chunk = second.chunk or first.chunk
        return first

    def _busy(self) -> bool:
        return self._worker is not None and self._worker.busy

    def _run_inline(self, request: InferenceRequest, now: float) -> None:
        actions, error = None, None
        try:
            actions = chunk_to_actions(self.policy.infer(request.observation, request.guidance), self.policy.metadata)
        except PolicyError as exc:
            error = exc
        # inline inference counts as instantaneous in stack time (tests drive the clock)
        self._inline.append(_Result(request, actions, error, now, now))

    def stats(self) -> dict:
        """Figures for the node's status: latency (ms), delays (steps), counters, strategy."""
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(0)
        return {
            "strategy": self.scheduler_config.strategy,
            "backend": self.policy.metadata.name,
            "inference_latency_ms": round(float(lat[-1]), 2) if lat.size else -1.0,
            "inference_latency_p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else -1.0,
            "inference_latency_p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else -1.0,
            "measured_delay_steps": self.last_delay,
            "delay_estimate_steps": self.scheduler.delay_estimate,
            "execution_horizon_steps": self.scheduler.execution_horizon,
            "control_period_s": self.dt,
            "inference_running": self._busy(),
            **self.counters,
            "guidance_skipped": int(getattr(self.policy, "guidance_skipped", 0)),
            "latent_rejected": int(getattr(self.policy, "latent_rejected", 0)),
            "last_error": self.last_error,
        }

    def config_dict(self) -> dict:
        """Scheduler settings (for logs)."""
        return asdict(self.scheduler_config)

    def close(self) -> None:
        """Stop the inference thread."""
        if self._worker is not None:
            self._worker.close()
