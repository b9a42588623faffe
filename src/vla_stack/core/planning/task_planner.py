"""The planner core: instruction -> plan -> monitored execution, with interjections and memory.

`TaskPlanner` is a state machine driven by three kinds of calls, all thread-safe:

- inputs (fast, from sensor/ROS callbacks): `on_instruction`, `on_feedback`,
  `on_grounding_instruction`, `on_grounding_status`, `on_grounding_target`, `on_joint_state`,
  `on_pad_force`, `on_wrench`, `on_image`;
- `step()` (periodic, e.g. 10 Hz): monitors the active subtask (done / failed / waiting),
  advances, retries a missed grasp (bounded), replans after other failures (bounded), and
  stops waiting for grounding after `grounding_wait`;
- planning work (slow, from a worker thread): `take_job()` + `run_job(job)` call the backend
  without holding the lock; a job superseded by a newer instruction is dropped.

Outputs: `current_subtask()` (what to publish on planner/subtask), `latent_key()` (what the
latent must encode), `status()` (planner/status), `exclusion_request()` (grounding/exclude),
and `version`, which increments on every change worth publishing at once.

States: idle -> grounding (waiting up to `grounding_wait` s for the rewritten instruction) ->
planning -> executing -> done | failed; rejected (garbage, nothing planned); cancelled. `paused`
(the user said stop/wait) is a flag on top: the active subtask is published as "paused" and
its timers stop.

Interjections (on task/feedback, or as a whole instruction): "stop", "wait", "continue",
"cancel", "not that one" (exclude the targeted instance, ask grounding to re-ground, put the
object back first if it is already held), "put it back" (return the last moved object to
where it was picked). Any other text is a new instruction that replaces the current task once
its plan is ready (a rejected replacement leaves the current task running).

Choosing among candidates (`core.planning.selection`): while grounding asks which instance is
"mine" (status "ambiguous" with its candidates, or a lone candidate it would not accept), the
status message asks ("I can't tell which cup is yours: 2 candidates, left 0.91, right 0.90 —
which one?") and feedback such as "the left one", "the second one", "the nearest cup", "yes,
that one" or a click (`{"select": 1}`) becomes a `SelectionRequest` for grounding
(`selection_request()`, published when `selection_version` changes); the pick resumes once
grounding answers "found". "yes, that one" while grounding has found the object confirms it. A
choice that fits nothing ("the purple one", "the left one" with nothing asked) is reported
with the reason and changes nothing.

Memory: the last completed subtasks and tasks (bounded by count and age). A repeated
instruction whose plan equals a recently completed task is not redone, unless grounding now
sees the object more than `moved_tolerance` away from where the task left it.

Everything runs on the injected `clock` (float seconds); no wall-clock reads, no ROS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from vla_stack.core.contracts import ExclusionRequest, SelectionRequest
from vla_stack.core.planning.backends.base import PlannerBackend, PlanningState, PlanRequest, PlanResult
from vla_stack.core.planning.monitor import MonitorConfig, SubtaskMonitor, WorldModel
from vla_stack.core.planning.selection import Choice, GroundingChoice, check_choice, parse_choice
from vla_stack.core.planning.skills import Subtask, plan_summary
from vla_stack.core.planning.text import (
    Interjection,
    check_instruction_text,
    classify_interjection,
    rewrite_matches,
)
from vla_stack.core.robot_profile import RobotProfile
from vla_stack.core.types import JointState, Pose, Wrench

PlannerState = Literal["idle", "grounding", "planning", "executing", "done", "failed", "rejected", "cancelled"]
_LEVELS = {"OK": 0, "WARN": 1, "ERROR": 2}


@dataclass
class TaskPlannerConfig:
    """Behaviour of the planner state machine. Times in s, lengths in m."""

    use_grounding: bool = field(
        default=True,
        metadata={"help": "wait for grounding's rewritten instruction and target (false: plan the raw instruction at once)"},
    )
    grounding_wait: float = field(
        default=10.0, metadata={"help": "longest wait for grounding's rewritten instruction before planning the raw one, s "
                                "(the first detection after start-up takes seconds on a busy machine)"}
    )
    max_grasp_retries: int = field(default=2, metadata={"help": "retries of a missed grasp before the task fails"})
    max_replans: int = field(default=2, metadata={"help": "replans after other failed subtasks before the task fails"})
    memory_size: int = field(default=20, metadata={"help": "completed subtasks and tasks remembered"})
    memory_duration: float = field(default=600.0, metadata={"help": "completed tasks older than this are forgotten, s"})
    moved_tolerance: float = field(
        default=0.05, metadata={"help": "a remembered task is redone when its object moved more than this since, m"}
    )
    event_hold: float = field(default=5.0, metadata={"help": "an event stays in the status message this long, s"})
    target_update_distance: float = field(
        default=0.02, metadata={"help": "a pick's position argument follows the grounding target when it moves more than this, m"}
    )
    target_max_age: float = field(default=5.0, metadata={"help": "grounding targets older than this are not used, s"})

    def __post_init__(self) -> None:
        for name in ("grounding_wait", "memory_duration", "moved_tolerance", "event_hold", "target_update_distance",
                     "target_max_age"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_grasp_retries", "max_replans"):
            if not 0 <= getattr(self, name) <= 20:
                raise ValueError(f"{name} must be 0..20, got {getattr(self, name)}")
        if not 1 <= self.memory_size <= 1000:
            raise ValueError(f"memory_size must be 1..1000, got {self.memory_size}")


@dataclass(frozen=True)
class PlannerEvent:
    """Something an operator should read (shown in the status for `event_hold` s)."""

    level: str
    message: str
    time: float


@dataclass(frozen=True)
class PlannerStatus:
    """What goes on planner/status: level OK/WARN/ERROR, a one-line message, key/values."""

    level: str
    message: str
    values: dict[str, Any]


@dataclass
class PlanJob:
    """A planning request waiting for the worker.

    Args:
        seq: job number; a job whose seq is not the latest is dropped when it finishes.
        kind: "new" (an instruction) or "replan" (after a failure).
        request: what the backend gets.
        instruction: the user's text it serves.
    """

    seq: int
    kind: Literal["new", "replan"]
    request: PlanRequest
    instruction: str


@dataclass
class CompletedTask:
    """A finished task in memory."""

    instruction: str
    steps: tuple[Subtask, ...]
    finished_at: float
    object_name: str | None
    picked_from: np.ndarray | None
    object_after: np.ndarray | None


class TaskPlanner:
    """The planner state machine (see the module docstring).

    Args:
        backend: planner backend (offline, vlm, ...).
        config: state-machine settings.
        monitor_config: progress-monitor thresholds.
        profile: the robot (`RobotProfile`; None = the default profile).
        clock: returns the current time in s (ROS/sim time in the node, a fake in tests).
        logger: object with info/warning/error(str) (Python logging or an rclpy logger).
    """

    def __init__(
        self,
        backend: PlannerBackend,
        config: TaskPlannerConfig | None = None,
        monitor_config: MonitorConfig | None = None,
        clock: Callable[[], float] | None = None,
        logger: Any = None,
        profile: RobotProfile | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or TaskPlannerConfig()
        self.monitor_config = monitor_config or MonitorConfig()
        self.clock = clock or time.monotonic
        self.log = logger or logging.getLogger(__name__)
        self._lock = threading.RLock()
        self.world = WorldModel(self.monitor_config, profile)
        self.monitor = SubtaskMonitor(self.monitor_config)
        self.monitor.uses_grounding = self.config.use_grounding
        self.state: PlannerState = "idle"
        self.paused = False
        self.instruction = ""  # what the user said for the current task
        self.planning_text = ""  # what was planned from (rewritten by grounding)
        self.plan: list[Subtask] = []
        self.index = 0
        self.plan_id = 0
        self.replans = 0
        self.version = 0
        self.last_event: PlannerEvent | None = None
        self.last_result: PlanResult | None = None
        self.rejected_instructions = 0
        self.done_subtasks: deque[tuple[Subtask, float]] = deque(maxlen=self.config.memory_size)
        self.completed_tasks: deque[CompletedTask] = deque(maxlen=self.config.memory_size)
        self.exclusions: list[np.ndarray] = []
        self.exclusion_version = 0
        self._exclusion_reason = ""
        self._pending_instruction = ""
        self._pending_time = 0.0
        self._job: PlanJob | None = None
        self._job_seq = 0
        self._resume_on_reject = False
        self._task_started = 0.0
        self._picked_from: np.ndarray | None = None
        self._held_object: str | None = None
        self._image: np.ndarray | None = None
        self._frame_id = ""
        self.choice: GroundingChoice | None = None  # what grounding asks the user to choose from
        self._asked: tuple[int, tuple] | None = None  # (generation, boxes) of the question last logged
        self.selection: SelectionRequest | None = None
        self.selection_version = 0

    # ================================================================== inputs
    def on_instruction(self, text: object) -> bool:
        """A new instruction (task/instruction). Interjection words are routed to `on_feedback`.

        Returns True when it was accepted for planning (garbage is reported and returns False).
        """
        with self._lock:
            if isinstance(text, str) and (classify_interjection(text) is not None or parse_choice(text).kind != "none"):
                return self.on_feedback(text)
            reason = check_instruction_text(text)
            if reason is not None:
                self._reject_text(text, reason)
                return False
            assert isinstance(text, str)
            self._start_instruction(text.strip())
            return True

    def on_feedback(self, text: object) -> bool:
        """User feedback (task/feedback): an interjection, or a new instruction replacing the task.

        Returns True when it was understood (acted on or accepted for planning).
        """
        with self._lock:
            kind = classify_interjection(text) if isinstance(text, str) else None
            if kind is not None:
                assert isinstance(text, str)
                self._interject(kind, text.strip())
                return True
            choice = parse_choice(text)
            if choice.kind != "none":
                return self._choose(choice)
            reason = check_instruction_text(text)
            if reason is not None:
                self._reject_text(text, f"feedback not understood ({reason})")
                return False
            assert isinstance(text, str)
            self._start_instruction(text.strip())
            return True

    def on_grounding_instruction(self, text: str) -> None:
        """Grounding's rewritten instruction; plans it when the planner is waiting for one and it
        is a rewrite of the pending instruction (`text.rewrite_matches`; stale ones are ignored)."""
        with self._lock:
            now = self.clock()
            self.world.update_grounding_instruction(text, now)
            if self.state == "grounding" and now >= self._pending_time - 0.5:
                if check_instruction_text(text) is None and not rewrite_matches(self._pending_instruction, text):
                    self.log.info(f"planner: grounding instruction {_quote(text)} is not a rewrite of "
                                  f"{_quote(self._pending_instruction)}; still waiting")
                    return
                if check_instruction_text(text) is not None:
                    self._event("WARN", f"grounding sent an unusable rewritten instruction {text[:60]!r}; planning the instruction as given")
                    self._queue_job("new", self._pending_instruction)
                else:
                    self._queue_job("new", text.strip())

    def on_grounding_status(self, status: str, reason: str = "", choice: GroundingChoice | None = None) -> None:
        """Grounding outcome; "no_reference" (nothing personal to ground) ends the wait at once.
        `choice`: the candidates grounding asks the user to choose from (`selection.grounding_choice_from_report`)."""
        with self._lock:
            now = self.clock()
            problem = self.world.update_grounding_status(status, now, reason)
            if problem is not None:
                self.log.warning(f"planner: {problem}; ignored")
                return
            self.choice = choice if status in ("ambiguous", "not_found") else None
            if choice is not None and self.choice is not None and self._task_running():
                key = (choice.generation, choice.boxes)
                if key != self._asked:
                    self._asked = key
                    self._event("WARN", self.choice.question(self._object_word()))
            if self.state == "grounding" and status == "no_reference" and now >= self._pending_time - 0.5:
                self._queue_job("new", self._pending_instruction)

    def on_grounding_target(self, target: Pose) -> None:
        """Grasp point of the grounded object (robot base frame, m)."""
        with self._lock:
            problem = self.world.update_grounding_target(target, self.clock())
            if problem is not None:
                self.log.warning(f"planner: {problem}; ignored")
            elif target.frame_id:
                self._frame_id = target.frame_id

    def on_joint_state(self, state: JointState) -> str | None:
        """Joint states; returns a rejection reason (for a throttled log) or None."""
        with self._lock:
            return self.world.update_joints(state, self.clock())

    def on_pad_force(self, pad: str, normal_force: float) -> str | None:
        """Normal force of a fingertip pad, N; returns a rejection reason or None."""
        with self._lock:
            return self.world.update_pad_force(pad, normal_force, self.clock())

    def on_wrench(self, wrench: Wrench) -> str | None:
        """Wrist wrench; returns a rejection reason or None."""
        with self._lock:
            return self.world.update_wrench(wrench, self.clock())

    def on_image(self, image: np.ndarray) -> None:
        """Latest prompted image (H, W, 3) uint8 RGB, for VLM backends."""
        with self._lock:
            self._image = image

    # ================================================================== planning work
    def take_job(self) -> PlanJob | None:
        """The pending planning job, if any (the caller must `run_job` it)."""
        with self._lock:
            job, self._job = self._job, None
            return job

    def has_job(self) -> bool:
        """True when a planning job waits."""
        with self._lock:
            return self._job is not None

    def run_job(self, job: PlanJob) -> PlanResult:
        """Run the backend on `job` (slow; no lock held) and apply the result."""
        try:
            result = self.backend.plan(job.request)
        except Exception as exc:  # noqa: BLE001 - a backend bug must not kill the planner
            result = PlanResult(False, reason=f"planner backend error: {type(exc).__name__}: {exc}", backend=self.backend.name)
        self.apply_result(job, result)
        return result

    def plan_now(self) -> PlanResult | None:
        """Run the pending job in this thread (tests, scripts). None when there is none."""
        job = self.take_job()
        return self.run_job(job) if job is not None else None

    def apply_result(self, job: PlanJob, result: PlanResult) -> None:
        """Install (or report) the backend's answer to `job`, unless a newer job superseded it."""
        with self._lock:
            if job.seq != self._job_seq or self.state != "planning":
                self.log.info(f"planner: dropped the plan for {job.instruction!r} (superseded)")
                return
            now = self.clock()
            self.last_result = result
            shown = _quote(job.instruction)
            ms = result.scores.get("ms", result.scores.get("vlm_ms", result.scores.get("generate_ms", "?")))
            via = f"{result.backend}{' fallback' if result.fallback else ''}, {ms} ms"
            if job.kind == "replan":
                if not result.ok or not result.subtasks:
                    self._fail(f"replanning failed: {result.reason or 'empty plan'}")
                    return
                self._install_plan(result.subtasks, now)
                self._event("WARN", f"replanned {shown}: {plan_summary(self.plan)} ({via})")
                return
            if not result.ok:
                self.rejected_instructions += 1
                message = f"instruction {shown} not understood: {result.reason}; nothing planned"
                if self._resume_on_reject:
                    self._resume_previous(now)
                    self._event("ERROR", message + "; the previous task continues")
                else:
                    self.state = "rejected"
                    self._event("ERROR", message)
                return
            if not result.subtasks:
                self._finish_without_plan(now, f"nothing to do for {shown}: {result.reason}")
                return
            previous = self._recent_completion(result.subtasks, now)
            if previous is not None:
                self._finish_without_plan(
                    now,
                    f"already done: {_quote(previous.instruction)} was completed {now - previous.finished_at:.0f} s ago "
                    f"({plan_summary(list(previous.steps))}); not redoing it (say 'put it back' to undo it)",
                )
                return
            self.instruction = job.instruction
            self.planning_text = job.request.instruction
            self._picked_from = None
            self._clear_exclusions()
            self.replans = 0
            self._task_started = now
            self._install_plan(result.subtasks, now)
            self._event("OK", f"plan for {shown}: {plan_summary(self.plan)} ({via})")

    # ================================================================== periodic
    def step(self) -> bool:
        """Advance the state machine; True when something worth publishing changed."""
        with self._lock:
            v0 = self.version
            now = self.clock()
            if self.state == "grounding" and now - self._pending_time >= self.config.grounding_wait:
                self._event(
                    "WARN",
                    f"no rewritten instruction from grounding within {self.config.grounding_wait:g} s; planning "
                    f"{_quote(self._pending_instruction)} as given",
                )
                self._queue_job("new", self._pending_instruction)
            if self.state == "executing" and not self.paused and self.plan:
                self._advance(now)
            return self.version != v0

    # ================================================================== outputs
    def current_subtask(self) -> Subtask | None:
        """The subtask to publish on planner/subtask (None before the first plan)."""
        with self._lock:
            if not self.plan:
                return None
            return self.plan[min(self.index, len(self.plan) - 1)]

    def latent_key(self) -> tuple[str, Subtask | None] | None:
        """(instruction, subtask) the latent must encode now, or None before the first plan."""
        with self._lock:
            s = self.current_subtask()
            if s is None:
                return None
            return (self.planning_text or self.instruction, s)

    def selection_request(self) -> SelectionRequest | None:
        """The user's last choice of candidate for grounding (publish when `selection_version` changes)."""
        with self._lock:
            return self.selection

    def exclusion_request(self) -> ExclusionRequest:
        """The current exclusion set for grounding (publish when `exclusion_version` changes)."""
        with self._lock:
            obj = ""
            for s in self.plan:
                if s.skill == "pick":
                    obj = str(s.arguments.get("object", ""))
            return ExclusionRequest(
                tuple(tuple(float(v) for v in p) for p in self.exclusions),  # type: ignore[misc]
                self.monitor_config.exclusion_radius, self._frame_id, obj, self.planning_text or self.instruction,
                self.clock(), self._exclusion_reason,
            )

    def status(self) -> PlannerStatus:
        """Level, message and values for planner/status."""
        with self._lock:
            now = self.clock()
            s = self.current_subtask()
            level = {"failed": "ERROR", "rejected": "ERROR", "cancelled": "WARN"}.get(self.state, "OK")
            if s is not None and self.state == "executing" and s.status in ("waiting", "paused"):
                level = "WARN"
            if self.paused:
                level = "WARN" if level == "OK" else level
            summary = self._state_summary()
            message = summary
            ev = self.last_event
            if ev is not None and now - ev.time <= self.config.event_hold:
                message = ev.message
                if _LEVELS[ev.level] > _LEVELS[level]:
                    level = ev.level
            question = ""
            if self.choice is not None and self.world.grounding.status in ("ambiguous", "not_found") and self._task_running():
                question = self.choice.question(self._object_word())
                if ev is None or now - ev.time > self.config.event_hold or ev.level == "OK" or ev.message == question:
                    message = question
                level = "WARN" if level == "OK" else level
            result = self.last_result
            values: dict[str, Any] = {
                "question": question,
                "selections": self.selection_version,
                "state": self.state,
                "paused": self.paused,
                "summary": summary,
                "instruction": self.instruction,
                "planning_instruction": self.planning_text,
                "plan": plan_summary(self.plan) if self.plan else "",
                "plan_id": self.plan_id,
                "subtask_index": s.index if s else -1,
                "subtask": s.description if s else "",
                "subtask_status": s.status if s else "",
                "subtask_reason": s.reason if s else "",
                "attempt": s.attempt if s else 0,
                "replans": self.replans,
                "backend": self.backend.name,
                "last_plan": (result.reason[:200] if result else ""),
                "last_plan_fallback": bool(result.fallback) if result else False,
                "rejected_instructions": self.rejected_instructions,
                "last_event": ev.message if ev else "",
                "recent_subtasks": "; ".join(st.description for st, _ in list(self.done_subtasks)[-5:]),
                "exclusions": len(self.exclusions),
                **self.world.summary(now),
            }
            return PlannerStatus(level, message, values)

    # ================================================================== internals
    def _changed(self) -> None:
        self.version += 1

    def _event(self, level: str, message: str) -> None:
        self.last_event = PlannerEvent(level, message, self.clock())
        # one call site per severity: rclpy loggers refuse a call site whose severity changes
        if level == "ERROR":
            self.log.error(f"planner: {message}")
        elif level == "WARN":
            self.log.warning(f"planner: {message}")
        else:
            self.log.info(f"planner: {message}")
        self._changed()

    def _state_summary(self) -> str:
        s = self.current_subtask()
        if self.state == "executing" and s is not None:
            extra = f": {s.reason}" if s.reason else ""
            return f"step {s.index + 1}/{len(self.plan)} {s.description} ({s.status}{extra})"
        if self.state == "grounding":
            return f"waiting for grounding to rewrite {_quote(self._pending_instruction)}"
        if self.state == "planning":
            return f"planning {_quote(self._pending_instruction or self.instruction)}"
        if self.state == "done":
            return f"done: {_quote(self.instruction)}" if self.instruction else "done"
        if self.state == "failed" and s is not None:
            return f"failed at {s.description}: {s.reason}"
        return self.state

    def _task_running(self) -> bool:
        return self.state in ("grounding", "planning", "executing")

    def _reject_text(self, text: object, reason: str) -> None:
        self.rejected_instructions += 1
        shown = _quote(text) if isinstance(text, str) else f"<{type(text).__name__}>"
        if self._task_running():
            self._event("WARN", f"instruction {shown} rejected: {reason}; nothing planned, the current task continues")
        else:
            self.state = "rejected"
            self._event("ERROR", f"instruction {shown} rejected: {reason}; nothing planned")

    def _start_instruction(self, text: str) -> None:
        now = self.clock()
        if self.state in ("grounding", "planning") and text == self._pending_instruction:
            self.log.info(f"planner: {_quote(text)} is already being planned; duplicate ignored")
            return
        self._resume_on_reject = self.state == "executing" or (
            self.state in ("planning", "grounding") and self._resume_on_reject
        )
        if self.state == "executing" and self.plan:
            self.monitor.pause(now)
            s = self.plan[self.index]
            if not s.finished:
                self.plan[self.index] = s.with_status("paused", f"planning the new instruction {_quote(text)}")
        self._pending_instruction = text
        self._pending_time = now
        if self.config.use_grounding:
            self.state = "grounding"
            self._job = None
            self._job_seq += 1
            g = self.world.grounding
            if g.instruction and g.instruction_time >= now - 0.5 and rewrite_matches(text, g.instruction):
                self._queue_job("new", g.instruction)
            else:
                self._event("OK", f"instruction {_quote(text)} received; waiting up to {self.config.grounding_wait:g} s for grounding")
        else:
            self._queue_job("new", text)
            self._event("OK", f"instruction {_quote(text)} received; planning")

    def _queue_job(self, kind: Literal["new", "replan"], planning_text: str) -> None:
        self._job_seq += 1
        now = self.clock()
        request = PlanRequest(planning_text, self._planning_state(now), raw_instruction=self._pending_instruction or self.instruction,
                              image=self._image)
        instruction = self._pending_instruction if kind == "new" else self.instruction
        self._job = PlanJob(self._job_seq, kind, request, instruction)
        self.state = "planning"
        self._changed()

    def _planning_state(self, now: float) -> PlanningState:
        w = self.world
        use_g = self.config.use_grounding
        pos = w.target_position(now, self.config.target_max_age) if use_g else None
        if pos is not None and self.monitor.target_is_excluded(pos):
            pos = None
        return PlanningState(
            holding=bool(w.holding(now)),
            gripper_open=w.gripper_open(now),
            at_home=w.at_home(now),
            grounding_status=w.grounding.status if use_g else "",
            object_position=None if pos is None else (float(pos[0]), float(pos[1]), float(pos[2])),
            frame_id=self._frame_id,
            held_object=self._held_object,
            history=tuple(s.description for s, _ in self.done_subtasks),
        )

    def _install_plan(self, subtasks: list[Subtask], now: float) -> None:
        self.plan_id += 1
        n = len(subtasks)
        self.plan = [
            replace(s, index=i, plan_size=n, plan_id=self.plan_id, status="pending", reason="", attempt=1,
                    instruction=self.planning_text or self.instruction)
            for i, s in enumerate(subtasks)
        ]
        self.index = 0
        self.state = "executing"
        self._resume_on_reject = False
        self._activate(now)

    def _activate(self, now: float) -> None:
        s = self.plan[self.index]
        s = self._with_target(s, now)
        self.plan[self.index] = s.with_status("paused" if self.paused else "active", "user pause" if self.paused else "")
        self.monitor.uses_grounding = self.config.use_grounding
        self.monitor.excluded = list(self.exclusions)
        self.monitor.start(self.plan[self.index], now, self.world)
        if self.paused:
            self.monitor.pause(now)
        self._changed()

    def _with_target(self, s: Subtask, now: float) -> Subtask:
        """`s` with the latest grounding target as its position (picks only)."""
        if s.skill != "pick" or not self.config.use_grounding:
            return s
        pos = self.world.target_position(now, self.config.target_max_age)
        if pos is None or self.monitor.target_is_excluded(pos):
            return s
        old = s.arguments.get("position")
        if old is not None and float(np.linalg.norm(np.asarray(old) - pos)) < self.config.target_update_distance:
            return s
        args = {**s.arguments, "position": [round(float(v), 4) for v in pos], "frame_id": self._frame_id}
        return replace(s, arguments=args)

    def _advance(self, now: float) -> None:
        s = self.plan[self.index]
        if s.finished:
            return
        a = self.monitor.assess(self.world, now)
        if a.verdict == "waiting":
            if s.status != "waiting" or s.reason != a.reason:
                self.plan[self.index] = s.with_status("waiting", a.reason)
                self._changed()
            return
        if a.verdict == "running":
            updated = self._with_target(s, now)
            if s.status == "waiting":
                updated = updated.with_status("active")
            if updated != s:
                self.plan[self.index] = updated
                self._changed()
            return
        if a.verdict == "done":
            self._on_done(s, a.reason, now)
        else:
            self._on_failure(s, a.reason, now)

    def _on_done(self, s: Subtask, reason: str, now: float) -> None:
        if s.skill == "pick":
            pos = s.arguments.get("position")
            self._picked_from = np.asarray(pos, dtype=float) if pos is not None else None
            self._held_object = str(s.arguments.get("object", "object"))
        elif s.skill in ("place", "hand_over", "open_gripper"):
            self._held_object = None
        done = s.with_status("done", reason)
        self.plan[self.index] = done
        self.done_subtasks.append((done, now))
        if self.index + 1 < len(self.plan):
            self.index += 1
            self._activate(now)
            self._event("OK", f"{s.description}: done ({reason}); next: {self.plan[self.index].description}")
            return
        self.state = "done"
        after = self.world.target_position(now, 2.0) if self.config.use_grounding else None
        obj = next((str(t.arguments.get("object")) for t in self.plan if t.skill == "pick"), None)
        self.completed_tasks.append(
            CompletedTask(self.planning_text or self.instruction, tuple(self.plan), now, obj, self._picked_from, after)
        )
        self._event("OK", f"task done: {_quote(self.instruction)} ({plan_summary(self.plan)}) in {now - self._task_started:.1f} s")

    def _on_failure(self, s: Subtask, reason: str, now: float) -> None:
        cfg = self.config
        if s.skill == "pick" and s.attempt <= cfg.max_grasp_retries:
            retry = replace(s, attempt=s.attempt + 1, status="active", reason=f"retry after: {reason}")
            self.plan[self.index] = retry
            self.monitor.start(retry, now, self.world)
            self._event("WARN", f"{s.description} failed ({reason}); retrying, attempt {retry.attempt} of {cfg.max_grasp_retries + 1}")
            return
        if s.skill != "pick" and self.replans < cfg.max_replans:
            self.replans += 1
            self.plan[self.index] = s.with_status("failed", reason)
            self._pending_instruction = ""
            self._queue_job("replan", self.planning_text or self.instruction)
            self._event("WARN", f"{s.description} failed ({reason}); replanning ({self.replans} of {cfg.max_replans})")
            return
        tries = f" after {s.attempt} attempts" if s.skill == "pick" else ""
        self._fail(f"{s.description} failed{tries}: {reason}")

    def _fail(self, message: str) -> None:
        self.state = "failed"
        if self.plan:
            s = self.plan[self.index]
            if s.status != "failed":
                self.plan[self.index] = s.with_status("failed", message)
        self._event("ERROR", f"{message}; give a new instruction, or say 'continue' to try this step again")

    def _finish_without_plan(self, now: float, message: str) -> None:
        if self._resume_on_reject:
            self._resume_previous(now)
            self._event("OK", message + "; the previous task continues")
        else:
            self.state = "done"
            self._event("OK", message)

    def _resume_previous(self, now: float) -> None:
        self._resume_on_reject = False
        self.state = "executing"
        s = self.plan[self.index]
        if s.status == "paused" and not self.paused:
            self.plan[self.index] = s.with_status("active")
            self.monitor.resume(now)
        self._changed()

    def _recent_completion(self, subtasks: list[Subtask], now: float) -> CompletedTask | None:
        for task in reversed(self.completed_tasks):
            if now - task.finished_at > self.config.memory_duration:
                continue
            if len(task.steps) != len(subtasks) or not all(a.same_step(b) for a, b in zip(task.steps, subtasks, strict=True)):
                continue
            current = self.world.target_position(now, self.config.target_max_age) if self.config.use_grounding else None
            if current is not None and task.object_after is not None:
                if float(np.linalg.norm(current - task.object_after)) > self.config.moved_tolerance:
                    continue  # the object moved since: the memory is stale
            return task
        return None

    def _clear_exclusions(self) -> None:
        if self.exclusions:
            self.exclusions = []
            self.monitor.excluded = []
            self._exclusion_reason = "new task"
            self.exclusion_version += 1
            self._changed()

    # ------------------------------------------------------------------ interjections
    def _interject(self, kind: Interjection, text: str) -> None:
        now = self.clock()
        if kind in ("stop", "wait"):
            if not self._task_running():
                self._event("OK", f"'{text}': no task is running; nothing to {kind}")
                return
            self.paused = True
            self.monitor.pause(now)
            if self.plan and self.state == "executing":
                s = self.plan[self.index]
                if not s.finished:
                    self.plan[self.index] = s.with_status("paused", f"user said '{text}'")
            verb = "stopped" if kind == "stop" else "paused"
            self._event("WARN", f"{verb} by the user ('{text}'): holding still; say 'continue' to resume or give a new instruction")
        elif kind == "continue":
            if self.paused:
                self.paused = False
                self.monitor.resume(now)
                if self.state == "executing" and self.plan:
                    s = self.plan[self.index]
                    if s.status == "paused":
                        self.plan[self.index] = s.with_status("active")
                self._event("OK", f"continuing ({self._state_summary()})")
            elif self.state == "failed" and self.plan:
                s = replace(self.plan[self.index], status="active", attempt=1, reason="retry requested by the user")
                self.plan[self.index] = s
                self.state = "executing"
                self.replans = 0
                self.monitor.start(s, now, self.world)
                self._event("OK", f"retrying {s.description} as asked")
            else:
                self._event("OK", f"'{text}': nothing to continue ({self.state})")
        elif kind == "cancel":
            if not (self._task_running() or self.paused):
                self._event("OK", f"'{text}': no task to cancel")
                return
            self._job = None
            self._job_seq += 1
            self.paused = False
            self._resume_on_reject = False
            self.state = "cancelled"
            if self.plan:
                s = self.plan[self.index]
                if not s.finished:
                    self.plan[self.index] = s.with_status("cancelled", f"user said '{text}'")
            self._event("WARN", f"task {_quote(self.instruction)} cancelled by the user")
        elif kind == "not_that_one":
            self._not_that_one(text, now)
        elif kind == "put_back":
            self._put_back(text, now)

    def _object_word(self) -> str:
        """The object noun of the task ("cup") for questions; "" = grounding's category word."""
        for s in self.plan:
            if s.skill == "pick" and s.arguments.get("object"):
                return str(s.arguments["object"]).split()[-1]
        return ""

    def _choose(self, choice: Choice) -> bool:
        """The user chose a candidate (see the module doc): a `SelectionRequest` for grounding, or
        an event saying why nothing changes. True when a request was made."""
        text = choice.text.strip()
        shown = _quote(text)
        if not choice.understood:
            self._event("WARN", f"{shown}: not understood ({choice.reason}); nothing changed")
            return False
        asked = self.choice
        selector = choice.selector
        g = self.world.grounding
        if asked is None:
            if choice.confirm and g.status == "found" and self._task_running():
                selector = "current"
            else:
                state = g.status.replace("_", " ") if g.status else "no answer yet"
                self._event("WARN", f"{shown}: nothing to choose: grounding is not asking which one (grounding: {state}); "
                            "nothing changed")
                return False
        else:
            if choice.confirm and asked.count != 1:
                self._event("WARN", f"{shown}: which one? {asked.question(self._object_word())}")
                return False
            problem = check_choice(choice, asked.count)
            if problem is not None:
                self._event("WARN", f"{shown}: {problem}; nothing changed")
                return False
        now = self.clock()
        self.selection = SelectionRequest(
            selector, choice.index, choice.box, asked.object if asked is not None else "",
            asked.generation if asked is not None else 0, now, "user", text[:200], self.planning_text or self.instruction)
        self.selection_version += 1
        what = (f"confirming the {g.status.replace('_', ' ')} object" if selector == "current"
                else f"choosing {self.selection.describe()} among {asked.count if asked else 0} candidate(s)")
        self._event("OK", f"{shown}: {what}; asked grounding to take it")
        return True

    def _not_that_one(self, text: str, now: float) -> None:
        picks = [i for i, s in enumerate(self.plan[: self.index + 1]) if s.skill == "pick"]
        if not picks or self.state not in ("executing", "planning", "failed"):
            hint = " (the task is finished: say 'put it back', then repeat the instruction)" if self.state == "done" else ""
            self._event("WARN", f"'{text}': no object is being picked right now; nothing to exclude{hint}")
            return
        pick_i = picks[-1]
        pick = self.plan[pick_i]
        held = pick.status == "done"
        pos = None
        if held and self._picked_from is not None:
            pos = self._picked_from
        if pos is None:
            pos = self.world.target_position(now, self.config.target_max_age)
        if pos is None and pick.arguments.get("position") is not None:
            pos = np.asarray(pick.arguments["position"], dtype=float)
        if pos is None:
            self._event("WARN", f"'{text}': no target position is known yet, so there is nothing to exclude")
            return
        self.exclusions.append(np.asarray(pos, dtype=float))
        self._exclusion_reason = f"user: {text}"
        self.exclusion_version += 1
        self.monitor.excluded = list(self.exclusions)
        obj = str(pick.arguments.get("object", "object"))
        fresh_pick = Subtask("pick", {"object": obj})
        where = f"({pos[0]:.2f}, {pos[1]:.2f}, {pos[2]:.2f}) m"
        self.paused = False
        if held:
            back = Subtask("place", {"object": obj, "target": "where it was", "position": [float(v) for v in pos],
                                     "frame_id": self._frame_id})
            rest = [s for s in self.plan[pick_i + 1:] if not s.finished]
            self._job = None
            self._job_seq += 1
            self._install_plan([back, fresh_pick, *rest], now)
            self._event("WARN", f"'{text}': putting the {obj} back at {where}, then picking another one; asked grounding to exclude it")
            return
        self._job = None
        self._job_seq += 1
        self.state = "executing"
        self.index = pick_i
        self.plan[pick_i] = replace(pick, arguments={"object": obj}, attempt=1, status="waiting",
                                    reason="re-grounding without the excluded object")
        self.monitor.excluded = list(self.exclusions)
        self.monitor.start(self.plan[pick_i], now, self.world)
        self._event("WARN", f"'{text}': excluding the object at {where}; asked grounding to re-ground")

    def _put_back(self, text: str, now: float) -> None:
        pick_done = [s for s in self.plan[: self.index + 1] if s.skill == "pick" and s.status == "done"]
        holding_now = self.state in ("executing", "failed", "planning") and pick_done and self._held_object is not None
        if holding_now:
            obj = self._held_object or "object"
            steps = [self._back_step(obj, self._picked_from)]
            label = f"put the {obj} back where it was"
        else:
            task = next((t for t in reversed(self.completed_tasks) if t.object_name), None)
            if task is None:
                self._event("WARN", f"'{text}': nothing to put back (no object was moved recently)")
                return
            obj = task.object_name or "object"
            pick_args: dict[str, Any] = {"object": obj}
            current = self.world.target_position(now, self.config.target_max_age) if self.config.use_grounding else None
            where_now = current if current is not None else task.object_after
            if where_now is not None:
                pick_args.update(position=[float(v) for v in where_now], frame_id=self._frame_id)
            steps = [Subtask("pick", pick_args), self._back_step(obj, task.picked_from)]
            self.completed_tasks.remove(task)
            label = f"put the {obj} back where it was"
        self._job = None
        self._job_seq += 1
        self.paused = False
        self.instruction = text
        self.planning_text = label
        self.replans = 0
        self._task_started = now
        self._install_plan(steps, now)
        self._event("OK", f"'{text}': {plan_summary(self.plan)}")

    def _back_step(self, obj: str, where: np.ndarray | None) -> Subtask:
        args: dict[str, Any] = {"object": obj, "target": "where it was"}
        if where is not None:
            args.update(position=[float(v) for v in where], frame_id=self._frame_id)
        return Subtask("place", args)


def _quote(text: object, limit: int = 60) -> str:
    s = str(text)
    return repr(s if len(s) <= limit else s[: limit - 3] + "...")
