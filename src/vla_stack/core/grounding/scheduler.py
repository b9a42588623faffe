"""GroundingScheduler: when grounding detects, tracks, adopts and reports, ROS-free.

It is to the grounding node what `RealTimeChunker` is to the action expert: the node converts
messages, calls it and publishes what it returns.

Detection (proposals + embeddings + matching + mask, 0.1-1 s on a CPU) runs in a worker; every
colour frame is tracked (optical flow, ~10 ms) in the caller's thread, so the highlighted image
keeps up with the camera:

    update = scheduler.on_frame(camera_index, frame, now)     # camera callback, now = node clock, s
    if update is None: return                                   # stopped: publish nothing
    image, mask = (update.result.highlighted, update.result.mask) if update.result else (frame.rgb, None)
    if update.rewritten: publish(update.rewritten)
    if update.place: publish(update.place)
    if update.status: publish(update.status)

Rules (the node's behaviour since the threaded grounding node):

- **Generation.** Every instruction change, exclusion change ("not that one") and reset starts a
  new generation. A detection started under generation g is kept only if the generation is still
  g when it finishes, and adopted only if it is still g on the frame that picks it up: otherwise
  it answered an old question and is discarded.
- **Adoption.** A finished detection is adopted on the next frame of its camera
  (`GroundingPipeline.accept_detection`), and in the same call the tracker carries it forward to
  that frame, so every published result is the current frame's.
- **One detection per camera at a time.** A detection is started (on the current frame) when the
  pipeline asks for one (`needs_detection`: no track, every `redetect_every` frames, tracker
  unsure; `needs_detection_now`: the confidence fell below `redetect_below_confidence` on this
  frame) and none is in flight for that camera (a finished one counts as in flight until the
  frame that picks it up). Tracking goes on meanwhile.
- **Verdict.** Status, the rewritten instruction and the place point are reported only once a
  detection has been adopted since the last instruction / exclusion change, reset or memory
  reload: the planner never sees a premature "not_found".
- **Memory reload** (requested, or after a run-time enrolment) is applied on the next frame, in
  the frame thread. It does not start a new generation (a detection in flight is still adopted),
  but the verdict waits for the next adopted detection.
- **Place.** After a detection of the primary camera (index 0) with depth, intrinsics and a camera
  pose, the worker locates the support (tray) once per generation; the place point is reported
  once per generation, when the primary object is found with a base-frame grasp point.
- **Status.** Reported at most every `status_period` s of the caller's clock (sim time under
  `use_sim_time`), at once when (status, object) changes or the clock went back, and always on a
  frame that adopted a detection.
- **Stop.** `stop()` joins the worker; afterwards nothing is adopted and `on_frame` returns None.
- **The user's choice** (`select`, from `grounding/select`: "the left one") is resolved against
  the candidates of the last adopted ambiguous answer (`GroundingPipeline.select`). Accepted: the
  chosen instance is found, tracked and user-confirmed at once, a new generation starts (a
  detection in flight answered the old question) and the status says "found" with the reason
  "user chose ...". Refused (no question pending, index out of range, another generation): a log
  line, the last status again with the reason "selection rejected: ...", nothing else changes.
- **Online confirmation** (`online_confirmation`, off by default: a wrong confirmation would
  drift the memory): a user's choice or confirmation, and a pick the planner reports done with
  the object, add the instance's crop to the object's memory as a confirmed view; "not that one"
  adds the excluded instance's crop as a negative. Each runs in the worker
  (`PersonalObjectMemory.add_confirmed_view` / `add_negative_view`: bounded, rule re-derived,
  bad crops refused), is logged, and reloads the memory.

Threads: `on_frame`, `set_instruction`, `set_exclusions`, `reset` belong to one thread (the
node's executor); `request_reload`, `enroll` and `stop` may be called from any thread. Jobs run
in a `JobRunner`: `ThreadRunner` (a daemon worker, the default) or `SteppedRunner` (tests run
each job when they choose).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np

from vla_stack.core.grounding.embedders import ObjectCrop, crop_object
from vla_stack.core.grounding.imageops import InvalidImage
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.core.grounding.pipeline import (
    DetectionOutcome,
    Exclusion,
    GroundingFrame,
    GroundingPipeline,
    GroundingResult,
)
from vla_stack.core.grounding.places import PlaceConfig, PlaceEstimate, locate_support
from vla_stack.core.grounding.proposals import DepthClusterDetector, Detector
from vla_stack.core.types import Pose

_log = logging.getLogger(__name__)


class JobRunner(Protocol):
    """Runs the scheduler's slow jobs (detections, enrolments) one at a time, in order."""

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job` (dropped after `stop`)."""

    def stop(self, timeout: float) -> bool:
        """Stop running jobs; True when no job runs any more (the worker was joined)."""


class ThreadRunner:
    """One daemon worker thread running the submitted jobs in order (the node's detector thread).

    Args:
        name: thread name (shows in py-spy / debuggers).
        poll: how often the idle worker checks for `stop`, s.
    """

    def __init__(self, name: str = "grounding-detector", poll: float = 0.2) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self._poll = float(poll)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job` for the worker (ignored once stopped)."""
        if not self._stop.is_set():
            self._jobs.put(job)

    @property
    def alive(self) -> bool:
        """True while the worker thread runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=self._poll)
            except queue.Empty:
                continue
            if self._stop.is_set():
                break
            try:
                job()
            except Exception:  # noqa: BLE001 - a job's bug must not end the worker (jobs log their own errors)
                _log.exception("grounding job crashed; the worker goes on")

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the worker to stop and join it for at most `timeout` s; True when it has ended."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)
        return not self._thread.is_alive()


class SteppedRunner:
    """Runs submitted jobs only when told (tests interleave detection and frames deterministically)."""

    def __init__(self) -> None:
        self.jobs: deque[Callable[[], None]] = deque()
        self.stopped = False

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job` (ignored once stopped)."""
        if not self.stopped:
            self.jobs.append(job)

    def run_next(self) -> bool:
        """Run the oldest queued job in this thread; False when there was none."""
        if not self.jobs:
            return False
        self.jobs.popleft()()
        return True

    def run_all(self) -> int:
        """Run every queued job (and those they queue); returns how many ran."""
        n = 0
        while self.run_next():
            n += 1
        return n

    def stop(self, timeout: float = 0.0) -> bool:
        """Drop the queued jobs; nothing runs afterwards."""
        self.stopped = True
        self.jobs.clear()
        return True


@dataclass(frozen=True)
class StatusReport:
    """One grounding status to publish (the node turns it into a DiagnosticArray "grounding").

    Args:
        level: "OK" or "WARN".
        status: found / not_found / ambiguous / no_reference.
        reason: why, for the operator.
        values: key/values of the status: status, reason, instruction, mode (detect/track),
            camera, object, score, candidates, runner_up_score, candidate_boxes (when ambiguous: "x0,y0,x1,y1:score;..."
            px in the colour image), target (x,y,z m), target_frame,
            detection_ms, tracking_ms_p95, exclusions, rewritten, generation (of the answer: a
            choice made on it names it), category, selection ("rejected: ..." after a refused
            choice), confirmed (the user's choice being kept) (those that apply).
    """

    level: str
    status: str
    reason: str
    values: dict[str, Any]

    @property
    def message(self) -> str:
        """One-line summary (at most 300 characters)."""
        return f"{self.status}: {self.reason}"[:300]


@dataclass
class GroundingUpdate:
    """What to publish after one call of the scheduler (None fields: nothing to publish).

    Args:
        camera: index of the camera the frame came from (0 = primary).
        result: the frame's grounding (tracked, after adopting a finished detection), or None
            when there is nothing to ground (publish the plain image and no markers).
        adopted: this frame adopted a detection (status mode "detect").
        verdict: a detection has been adopted for the current task (else status is withheld).
        rewritten: a new rewritten instruction (published latched, once per change).
        place: the place point (grasp point of the held object on the support), base frame, once
            per generation.
        status: a status due now.
    """

    camera: int = 0
    result: GroundingResult | None = None
    adopted: bool = False
    verdict: bool = False
    rewritten: str | None = None
    place: Pose | None = None
    status: StatusReport | None = None


@dataclass
class _CameraState:
    """Detection state of one camera (owned by the frame thread, except `done`/`pending`, which the worker fills)."""

    index: int
    name: str
    pipeline: GroundingPipeline
    pending: bool = False  # a detection is queued or running
    done: tuple[int, DetectionOutcome] | None = None  # (generation, outcome) finished, not adopted yet
    verdict: bool = False  # a detection was adopted since the last change
    last_detection_s: float = float("nan")
    last_candidates: str = ""  # match scores of every candidate at the last adopted detection
    last_runner_up: str = ""
    last_boxes: str = ""  # "x0,y0,x1,y1:score;..." of every candidate at the last adopted detection
    asked: int = -1  # generation of the last adopted answer that asks the user which one (-1: none)


class GroundingScheduler:
    """Detection in a worker, tracking per frame, adoption by generation (see the module docstring).

    Args:
        pipelines: one `GroundingPipeline` per camera, the primary camera first (they may share
            stage objects and the memory directory).
        names: camera names for logs and status (default camera0, camera1, ...).
        place: support (place point) localisation settings; None = no place point.
        status_period: status at most this often, s of the caller's clock (changes go out at once).
        runner: where detections and enrolments run (default: a `ThreadRunner`).
        logger: object with info/warning/error(str) (an rclpy logger or Python logging).
        support_detector: depth-cluster detector of supports (default: `DepthClusterDetector`
            without a size prior).
        online_confirmation: add confirmed views / negatives to the memory (see the module doc).
    """

    def __init__(
        self,
        pipelines: list[GroundingPipeline],
        names: list[str] | None = None,
        place: PlaceConfig | None = None,
        status_period: float = 0.2,
        runner: JobRunner | None = None,
        logger: Any = None,
        support_detector: Detector | None = None,
        online_confirmation: bool = False,
    ) -> None:
        if not pipelines:
            raise ValueError("GroundingScheduler needs at least one camera pipeline")
        names = list(names) if names is not None else [f"camera{k}" for k in range(len(pipelines))]
        if len(names) != len(pipelines):
            raise ValueError(f"{len(names)} camera names for {len(pipelines)} pipelines")
        if not status_period >= 0:
            raise ValueError(f"status_period must be >= 0 s, got {status_period}")
        self.cameras = [_CameraState(k, n, p) for k, (n, p) in enumerate(zip(names, pipelines, strict=True))]
        self.base_frame = pipelines[0].config.base_frame
        self.place_config = place
        self._support_detector: Detector | None = None
        if place is not None:
            self._support_detector = support_detector or DepthClusterDetector(use_size_prior=False)
        self.status_period = float(status_period)
        self.log = logger if logger is not None else _log
        self._generation = 0
        self._lock = threading.Lock()
        self._reload = threading.Event()
        self._stopped = threading.Event()
        self._support: tuple[int, PlaceEstimate] | None = None  # (generation, estimate), worker -> frame thread
        self._place_published: tuple[int, np.ndarray] | None = None
        self._last_status: tuple[str, str] | None = None
        self._last_status_time = -np.inf
        self._last_rewritten: str | None = None
        self._instruction = ""
        self._throttled: dict[str, float] = {}
        self.tracking_ms: deque[float] = deque(maxlen=200)  # tracking time of the last frames, ms
        self._runner: JobRunner = runner if runner is not None else ThreadRunner()
        self.online_confirmation = bool(online_confirmation)
        self._last_report: StatusReport | None = None
        # online confirmation: the primary object's last sure view (name, crop, grasp point, frame_id)
        self._last_view: tuple[str, ObjectCrop, np.ndarray | None, str] | None = None
        self._pick: tuple[int, int, str] | None = None  # (plan_id, index, object) of the pick under way
        self.memory_changes: list[str] = []  # online additions done (log lines), for tests and status

    # ------------------------------------------------------------------ state
    @property
    def generation(self) -> int:
        """Current generation (bumped by every instruction / exclusion change and reset)."""
        with self._lock:
            return self._generation

    @property
    def instruction(self) -> str:
        """The instruction being grounded ("" after a reset)."""
        return self._instruction

    @property
    def target_names(self) -> list[str]:
        """Personal objects being grounded by the primary camera, in instruction order."""
        return self.cameras[0].pipeline.target_names

    @property
    def memory_names(self) -> list[str]:
        """Enrolled objects as the primary pipeline sees them."""
        return self.cameras[0].pipeline.memory.names()

    def detection_running(self, camera: int = 0) -> bool:
        """True while a detection of `camera` is queued or running."""
        return self.cameras[camera].pending

    @property
    def stopped(self) -> bool:
        """True after `stop()`."""
        return self._stopped.is_set()

    # ------------------------------------------------------------------ inputs
    def set_instruction(self, text: str, now: float) -> GroundingUpdate:
        """A new instruction: re-parse, drop the tracks, new generation (an identical instruction
        that is already being grounded is ignored). Returns what to publish at once (the
        instruction passed through, a no_reference status)."""
        update = GroundingUpdate()
        from vla_stack.core.planning.selection import parse_choice  # (the planner's reading of user text)

        if self._instruction and parse_choice(text).kind != "none":
            # "the left one" typed on task/instruction: the planner takes it as a choice; the task stays
            self.log.info(f"{text[:80]!r} is a choice among candidates, not a task: still grounding "
                          f"{self._instruction[:80]!r}")
            return update
        if text == self._instruction and self.cameras[0].pipeline.target_names:
            # the same task again (a repeated publish, a late joiner): keep grounding, don't restart
            if self._throttle("duplicate instruction", 5.0):
                self.log.info(f"instruction {text[:80]!r} is already being grounded; duplicate ignored")
            return update
        self.log.info(f"instruction: {text[:120]!r}")
        with self._lock:
            self._generation += 1
        parsed = None
        for cam in self.cameras:
            parsed = cam.pipeline.set_instruction(text)
            cam.pipeline.reset()
            cam.verdict = False
        self._instruction = text
        self._last_status = None
        self._last_view = None
        if parsed is None or not parsed.valid:
            why = parsed.reason if parsed is not None else "no camera"
            self.log.warning(f"instruction rejected: {why}; grounding nothing")
            update.status = self._status("no_reference", f"instruction rejected: {why}", {}, now, force=True, level="WARN")
            return update
        if not parsed.object_names:
            # nothing personal: pass the instruction through unchanged, ground nothing
            update.rewritten = self._rewritten(parsed.text)
            unresolved = "; ".join(f"'{r.text}': {r.reason}" for r in parsed.references if not r.resolved)
            reason = (f"no enrolled object to ground ({unresolved})" if unresolved
                      else "instruction has no personal reference; nothing to ground")
            update.status = self._status("no_reference", reason, {}, now, force=True)
        return update

    def set_exclusions(self, exclusions: list[Exclusion]) -> None:
        """Replace the excluded instances ("not that one"; [] clears them): new generation, re-ground.

        Raises:
            ValueError: an exclusion without a finite position and a radius > 0.
        """
        old = list(self.cameras[0].pipeline.exclusions)
        with self._lock:
            self._generation += 1
        for cam in self.cameras:
            cam.pipeline.set_exclusions(exclusions)
            cam.verdict = False
        if self.online_confirmation:
            self._negative_for(exclusions, old)

    def reset(self) -> None:
        """Forget the task (instruction, tracks, exclusions, place) and re-read the memory: a new episode."""
        with self._lock:
            self._generation += 1
            self._support = None
            for cam in self.cameras:
                cam.done = None
        for cam in self.cameras:
            cam.pipeline.clear()
            cam.pipeline.reload_memory()
            cam.verdict = False
        self._instruction = ""
        self._last_rewritten = None
        self._place_published = None
        self._last_status = None
        self._last_view = None
        self._pick = None

    def request_reload(self) -> None:
        """Re-read the personal-object memory on the next frame (any thread)."""
        self._reload.set()

    def enroll(self, name: str, category: str, images: list[str], aliases: list[str], overwrite: bool,
               not_mine: list[str] | None = None) -> None:
        """Enrol a personal object from image files in the worker (checked and self-calibrated, with
        `not_mine` photos of look-alikes as negatives), then reload the memory (any thread)."""
        self._runner.submit(partial(self._enroll, name, category, images, aliases, overwrite, list(not_mine or [])))

    def select(self, selector: str, index: int | None = None, box: tuple[float, float, float, float] | None = None,
               name: str = "", generation: int = 0, text: str = "", now: float = 0.0) -> GroundingUpdate:
        """The user's choice of candidate (`contracts.SelectionRequest`, see the module doc). Returns
        what to publish: the status (found, or the last one with "selection rejected: ...")."""
        update = GroundingUpdate()
        cam = self.cameras[0]
        with self._lock:
            current = self._generation
        said = f" ('{text[:60]}')" if text else ""
        if generation and generation != current and selector != "current":
            why = (f"stale: it answers grounding's question of generation {generation}, grounding is at generation "
                   f"{current} now (the task, the exclusions or the scene changed); ask again")
            return self._refuse(why, said, now)
        if selector != "current" and cam.asked != current:
            why = "no question pending: grounding is not asking which one"
            if cam.pipeline.pending_choice(name or None) and cam.asked >= 0:
                why = f"stale: the question was asked in generation {cam.asked}, grounding is at {current} now"
            return self._refuse(why, said, now)
        outcome = cam.pipeline.select(selector, index, box, name, text)
        if not outcome.accepted:
            return self._refuse(outcome.reason, "", now)
        with self._lock:
            self._generation += 1  # a detection in flight answered the question the user just settled
            self._support = (self._generation, self._support[1]) if self._support is not None else None
            for c in self.cameras:
                c.done = None
        cam.asked = -1
        cam.verdict = True
        og = outcome.grounding
        self.log.info(f"selection: {outcome.reason}; '{outcome.name}' found and tracked as user-confirmed")
        values: dict[str, Any] = {"mode": "select", "camera": cam.name, "object": outcome.name,
                                  "score": f"{og.score:.4f}" if og is not None else "", "selection": "accepted",
                                  "confirmed": outcome.reason, "generation": self.generation,
                                  "exclusions": len(cam.pipeline.exclusions)}
        update.status = self._status("found", outcome.reason, values, now, force=True, level="OK")
        if og is not None:
            frame = outcome.crop_frame
            crop = self._crop(frame.rgb if frame is not None else None, og.mask)
            if crop is None and self._last_view is not None and self._last_view[0] == outcome.name:
                crop = self._last_view[1]  # "yes, that one": the last sure view of the object found now
            conf = cam.pipeline.confirmed.get(outcome.name)
            if crop is not None:
                where = np.asarray(conf.position, float) if conf is not None and conf.position is not None else None
                self._last_view = (outcome.name, crop, where, conf.frame_id if where is not None else "")
                if self.online_confirmation:
                    self._add_view(outcome.name, crop, outcome.reason)
        return update

    def _refuse(self, why: str, said: str, now: float) -> GroundingUpdate:
        self.log.warning(f"selection rejected{said}: {why}; nothing changed")
        update = GroundingUpdate()
        last = self._last_report
        status = last.status if last is not None else "not_found"
        values = dict(last.values) if last is not None else {}
        values["selection"] = f"rejected: {why}"
        reason = f"selection rejected: {why}; " + (last.reason if last is not None else "")
        values["reason"] = reason
        update.status = StatusReport(last.level if last is not None else "WARN", status, reason, values)
        return update

    def on_subtask(self, skill: str, status: str, plan_id: int, index: int, obj: str = "") -> None:
        """The planner's current subtask (`planner/subtask`): a pick of plan P at index i followed by a
        later step of the same plan means the pick is done (the object is held); with
        `online_confirmation` its last sure view is added to the memory."""
        if skill == "pick" and status in ("active", "waiting", "paused", "pending"):
            self._pick = (plan_id, index, obj)
            return
        pick, self._pick = self._pick, None
        if status in ("failed", "cancelled") or pick is None:
            return
        done = (skill == "pick" and status == "done") or (plan_id == pick[0] and index > pick[1])
        if done and self.online_confirmation:
            view = self._last_view
            if view is None or view[0] not in self.target_names:
                self.log.info("pick done, but no sure view of the object to add to its memory")
                return
            self._add_view(view[0], view[1], f"successful pick of the {pick[2] or view[0]}")

    def _crop(self, rgb: np.ndarray | None, mask: np.ndarray | None) -> ObjectCrop | None:
        if rgb is None or mask is None or not mask.any():
            return None
        try:
            return crop_object(rgb, mask)
        except InvalidImage:
            return None

    def _add_view(self, name: str, crop: ObjectCrop, why: str) -> None:
        self._runner.submit(partial(self._memory_job, "view", name, crop, why))

    def _negative_for(self, exclusions: list[Exclusion], old: list[Exclusion]) -> None:
        """Online: a new exclusion at the primary object's last sure view is a wrong pick: a negative."""
        view = self._last_view
        if view is None or view[2] is None:
            return
        name, crop, point, frame_id = view
        for e in exclusions:
            if e in old or e.frame_id != frame_id:
                continue
            p = np.asarray(e.position, float)
            d = float(np.hypot(*(point[:2] - p[:2]))) if frame_id == self.base_frame else float(np.linalg.norm(point - p))
            if d <= e.radius:
                self._runner.submit(partial(self._memory_job, "negative", name, crop, "user: not that one"))
                self._last_view = None
                return

    def _memory_job(self, kind: str, name: str, crop: ObjectCrop, why: str) -> None:
        """Worker: add a confirmed view / a negative to the memory, then reload it on the next frame."""
        primary = self.cameras[0].pipeline
        try:
            memory = PersonalObjectMemory(primary.memory.root)
            if kind == "view":
                obj = memory.add_confirmed_view(name, crop, primary.embedder, top_k=primary.config.matching.top_k,
                                                source=why)
            else:
                obj = memory.add_negative_view(name, crop, primary.embedder, top_k=primary.config.matching.top_k,
                                               source=why)
        except (ValueError, KeyError, OSError) as exc:
            self.log.warning(f"online confirmation: {kind} of '{name}' not added ({why}): {exc}; the memory is unchanged")
            return
        rule = obj.rule
        what = "confirmed view" if kind == "view" else "negative"
        line = (f"online confirmation: added a {what} to '{name}' ({why}); now {len(obj.crops)} views "
                f"({obj.online_views} online), {len(obj.negatives)} negatives"
                + (f"; rule re-derived: floor {rule.accept_threshold:.3f}, margin {rule.margin:.3f}" if rule else ""))
        self.memory_changes.append(line)
        self.log.info(line)
        self._reload.set()

    # ------------------------------------------------------------------ frames
    def on_frame(self, camera: int, frame: GroundingFrame, now: float) -> GroundingUpdate | None:
        """Ground one colour frame of camera `camera`: apply a pending memory reload, adopt a
        finished detection, track to this frame, start a detection if one is due, and say what
        to publish. `now` is the caller's clock (s) for the status rate. None after `stop()`.

        Raises:
            InvalidImage: the frame's colour image is unusable (the caller checks it first).
        """
        if self._stopped.is_set():
            return None
        if self._reload.is_set():
            self._reload.clear()
            for c in self.cameras:
                c.pipeline.reload_memory()
                c.verdict = False
            self.log.info(f"personal-object memory reloaded: {self.memory_names}")
        cam = self.cameras[camera]
        pipe = cam.pipeline
        update = GroundingUpdate(camera=camera)
        if not pipe.target_names:
            return update
        # adopt a finished detection (from an earlier frame), then track it to this frame
        with self._lock:  # (done, pending) read together: a finished detection is never mistaken for none
            done, cam.done = cam.done, None
            generation = self._generation
            busy = cam.pending
        adopted = done is not None and done[0] == generation
        if adopted:
            assert done is not None
            outcome = done[1]
            pipe.accept_detection(outcome)
            cam.verdict = True
            cam.last_detection_s = outcome.timings.get("detection_s", float("nan"))
            first = outcome.objects[0] if outcome.objects else None
            cam.last_candidates = ",".join(f"{c.score:.4f}" for c in first.candidates) if first else ""
            cam.last_runner_up = f"{first.runner_up.score:.4f}" if first and first.runner_up else ""
            cam.last_boxes = (";".join(f"{c.bbox[0]},{c.bbox[1]},{c.bbox[2]},{c.bbox[3]}:{c.score:.4f}"
                                       for c in first.candidates) if first else "")
            cam.asked = generation if first is not None and pipe.pending_choice(first.name) else -1
            if camera == 0 and first is not None and first.status == "found" and first.source == "detection":
                crop = self._crop(outcome.frame.rgb, first.mask)
                tgt = first.target.grasp_base or first.target.grasp_camera if first.target is not None else None
                if crop is not None:
                    self._last_view = (first.name, crop, np.asarray(tgt.position, float) if tgt is not None else None,
                                       tgt.frame_id if tgt is not None else "")
        t0 = time.perf_counter()  # tracking latency: compute time, wall clock
        objects = pipe.track(frame)
        tracking_s = time.perf_counter() - t0
        result = pipe.result_from_tracking(frame, objects, tracking_s)
        if not adopted:
            self.tracking_ms.append(tracking_s * 1e3)
        if (pipe.needs_detection() or pipe.needs_detection_now()) and not busy:
            cam.pending = True
            self._runner.submit(partial(self._detect, cam, generation, frame))
        update.result, update.adopted, update.verdict = result, adopted, cam.verdict
        if camera == 0:
            self._report(cam, result, update, now)
        return update

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop: nothing is adopted or reported any more; join the worker for at most `timeout` s.
        Returns True when the worker has ended (False: a detection is still running; it is
        discarded when it finishes)."""
        self._stopped.set()
        with self._lock:
            for cam in self.cameras:
                cam.done = None
        return self._runner.stop(timeout)

    # ------------------------------------------------------------------ worker jobs
    def _detect(self, cam: _CameraState, generation: int, frame: GroundingFrame) -> None:
        """Worker: detect in `frame`; keep the outcome only if the generation did not change meanwhile."""
        try:
            if self._stopped.is_set():
                return
            outcome = cam.pipeline.detect(frame)
            with self._lock:
                if generation == self._generation and not self._stopped.is_set():
                    cam.done = (generation, outcome)
            self._locate_support(cam, generation, frame)
        except (InvalidImage, ValueError, KeyError) as exc:
            if self._throttle("detection failed", 2.0):
                self.log.warning(f"{cam.name}: detection failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - a backend bug must not end grounding
            if self._throttle("detection crashed", 2.0):
                self.log.error(f"{cam.name}: detection crashed: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                cam.pending = False

    def _locate_support(self, cam: _CameraState, generation: int, frame: GroundingFrame) -> None:
        """Worker: find the place support once per generation (primary camera, with depth and pose)."""
        if (self._support_detector is None or cam.index != 0 or frame.depth is None or frame.intrinsics is None
                or frame.camera_pose is None or self._stopped.is_set()):
            return
        with self._lock:
            if self._support is not None and self._support[0] == generation:
                return
        det = self._support_detector.detect(frame.rgb, frame.depth, frame.intrinsics, ["support"])
        place = locate_support(det, frame.depth, frame.intrinsics, frame.camera_pose, self.place_config)
        if place is None:
            if self._throttle("no place support", 10.0):
                self.log.warning("no place support (tray/plate) found on the table: no grounding/place_target")
            return
        with self._lock:
            self._support = (generation, place)

    def _enroll(self, name: str, category: str, images: list[str], aliases: list[str], overwrite: bool,
                not_mine: list[str] | None = None) -> None:
        """Worker: enrol into the memory directory (photos checked, own decision rule derived), then
        have the next frame reload it."""
        t0 = time.perf_counter()
        primary = self.cameras[0].pipeline
        try:
            memory = PersonalObjectMemory(primary.memory.root)
            obj = memory.enroll(name, images, category, primary.embedder, aliases=aliases, overwrite=overwrite,
                                source="grounding/enroll topic", not_mine=not_mine or [], self_calibrate=True,
                                top_k=primary.config.matching.top_k)
        except (ValueError, OSError) as exc:
            self.log.error(f"enrolment of '{name}' failed: {exc}; nothing was stored")
            return
        rule = obj.rule
        rates = (f"; expected true accept {rule.true_accept_rate:.0%}, false accept {rule.false_accept_rate:.0%}"
                 if rule is not None else "")
        self.log.info(f"enrolled '{name}' ({category}, {len(images)} images, {len(obj.negatives)} 'not mine') in "
                      f"{time.perf_counter() - t0:.2f} s{rates}")
        for w in rule.warnings if rule is not None else ():
            self.log.warning(f"enrolled '{name}': {w}")
        self._reload.set()

    # ------------------------------------------------------------------ outputs (frame thread)
    def _report(self, cam: _CameraState, result: GroundingResult, update: GroundingUpdate, now: float) -> None:
        """Primary camera: rewritten instruction, place point and status, once a verdict exists."""
        if not cam.verdict:
            return  # no verdict yet for this task: say nothing rather than "not found"
        if result.status == "found":
            update.rewritten = self._rewritten(result.rewritten_instruction)
            update.place = self._place(result)
        values: dict[str, Any] = {"mode": "detect" if update.adopted else "track", "camera": cam.name}
        primary = result.primary()
        if primary is not None:
            values["object"] = primary.name
            values["score"] = f"{primary.score:.4f}"
            values["candidates"] = cam.last_candidates  # every proposal's score at the last detection
            if cam.last_runner_up:
                values["runner_up_score"] = cam.last_runner_up
            values["category"] = primary.category
            if (result.status == "ambiguous" or cam.asked >= 0) and cam.last_boxes:
                values["candidate_boxes"] = cam.last_boxes  # which ones to ask the user about (none is highlighted)
            chosen = cam.pipeline.confirmed.get(primary.name)
            if chosen is not None:
                values["confirmed"] = chosen.reason
            if primary.target is not None:
                g = primary.target.grasp_base or primary.target.grasp_camera
                values["target"] = ",".join(f"{v:.4f}" for v in g.position)
                values["target_frame"] = g.frame_id
        values["detection_ms"] = f"{cam.last_detection_s * 1e3:.1f}"
        if self.tracking_ms:
            values["tracking_ms_p95"] = f"{np.percentile(self.tracking_ms, 95):.1f}"
        values["exclusions"] = len(cam.pipeline.exclusions)
        values["rewritten"] = result.rewritten_instruction
        values["generation"] = self.generation
        level = "OK" if result.status == "found" else "WARN"
        update.status = self._status(result.status, result.reason, values, now, force=False, level=level)

    def _rewritten(self, text: str) -> str | None:
        """The rewritten instruction if it is new (published once per change), else None."""
        if not text or text == self._last_rewritten:
            return None
        self._last_rewritten = text
        self.log.info(f"rewritten instruction: {text!r}")
        return text

    def _place(self, result: GroundingResult) -> Pose | None:
        """The place point, once the object and the support of this generation are known (once per generation)."""
        with self._lock:
            support, generation = self._support, self._generation
        primary = result.primary()
        if (support is None or support[0] != generation or primary is None or primary.status != "found"
                or primary.target is None or primary.target.grasp_base is None):
            return None
        if self._place_published is not None and self._place_published[0] == generation:
            return None
        place = support[1]
        grasp_height = float(primary.target.grasp_base.position[2]) - place.table_z
        point = place.place_point(grasp_height)
        self._place_published = (generation, point)
        self.log.info(
            f"place target: support {np.round(place.extent, 2).tolist()} m wide at "
            f"{np.round(place.center, 3).tolist()}; grasp point goes to {np.round(point, 3).tolist()} ({self.base_frame})")
        return Pose(point, np.array([0.0, 0.0, 0.0, 1.0]), result.stamp, self.base_frame)

    def _status(self, status: str, reason: str, values: dict[str, Any], now: float, force: bool,
                level: str = "OK") -> StatusReport | None:
        """A status report if one is due (rate limit by `status_period` of the caller's clock)."""
        key = (status, str(values.get("object", "")))
        if values.get("mode") == "detect":
            force = True  # every detection verdict is reported
        if (not force and key == self._last_status and self._last_status_time <= now
                and now - self._last_status_time < self.status_period):
            return None
        if key != self._last_status:
            if status in ("found", "no_reference"):
                self.log.info(f"grounding: {status}: {reason[:200]}")
            else:
                self.log.warning(f"grounding: {status}: {reason[:200]}")
        self._last_status, self._last_status_time = key, now
        vals = {"status": status, "reason": reason, "instruction": self._instruction, **values}
        self._last_report = StatusReport(level, status, reason, vals)
        return self._last_report

    def _throttle(self, key: str, period: float) -> bool:
        """True when the log line `key` may go out again (at most once per `period` s of wall time)."""
        now = time.monotonic()
        if now - self._throttled.get(key, -np.inf) < period:
            return False
        self._throttled[key] = now
        return True


__all__ = ["GroundingScheduler", "GroundingUpdate", "JobRunner", "StatusReport", "SteppedRunner", "ThreadRunner"]
