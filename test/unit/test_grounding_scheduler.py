"""GroundingScheduler (the grounding node's threading, ROS-free) on a synthetic RGB-D scene with the
offline backends and a controllable detector: detections run in the worker and are adopted on the
next frame; one started before an instruction / exclusion change or a reset is discarded; tracking
goes on while a detection is in flight and no second one starts; re-detection triggers; memory
reloads; the status rate follows the caller's clock; stop() joins the worker and nothing is
published afterwards.

The clock is the `now` argument (s, settable); `SteppedRunner` runs each detection when the test
says so, `ThreadRunner` runs them in the real worker thread (a gated detector holds one in flight).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from grounding_synthetic import Cylinder, default_intrinsics, dots, look_at, render

from vla_stack.core.grounding.embedders import AppearanceEmbedder
from vla_stack.core.grounding.matching import MatchConfig
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.core.grounding.pipeline import Exclusion, GroundingConfig, GroundingFrame, GroundingPipeline
from vla_stack.core.grounding.proposals import DepthClusterDetector
from vla_stack.core.grounding.scheduler import GroundingScheduler, SteppedRunner, ThreadRunner

MINE = dots((226, 214, 196), (176, 70, 46))
INTR = default_intrinsics()
CAMERA = look_at([1.15, 0.0, 0.65], [0.45, 0.0, 0.02])
MUG_XY = (0.50, 0.05)
TASK = "bring my cup to the tray"


class ControlledDetector:
    """The offline depth-cluster detector, counted, and held in flight until `release` is set
    (open by default). Records the thread each detection ran in."""

    def __init__(self, gated: bool = False) -> None:
        self.inner = DepthClusterDetector()
        self.calls = 0
        self.threads: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not gated:
            self.release.set()

    def detect(self, rgb, depth, intrinsics, categories):
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        self.started.set()
        assert self.release.wait(30), "the test never released the detection"
        return self.inner.detect(rgb, depth, intrinsics, categories)


def reference_views() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Four views of my mug from around it (rgb, mask)."""
    views, masks = [], []
    intr = default_intrinsics(160, 160, 40.0)
    for i in range(4):
        az = 2 * np.pi * i / 4 + 0.3
        rgb, _, lab = render([Cylinder(0, 0, texture=MINE)], look_at([0.3 * np.cos(az), 0.3 * np.sin(az), 0.17],
                             [0, 0, 0.045]), intr, table_color=(120, 120, 125), table_center=(0, 0),
                             table_half=(2, 2), seed=i)
        views.append(rgb)
        masks.append(lab == 2)
    return views, masks


@pytest.fixture(scope="module")
def memory(tmp_path_factory):
    mem = PersonalObjectMemory(tmp_path_factory.mktemp("personal_objects"))
    views, masks = reference_views()
    mem.enroll("my_mug", views, "cup", AppearanceEmbedder(), masks=masks)
    return mem


@pytest.fixture(scope="module")
def scene():
    """(rgb, depth) of my mug alone on the table, and of the empty table."""
    rgb, depth, _ = render([Cylinder(*MUG_XY, texture=MINE)], CAMERA, INTR, seed=3)
    empty_rgb, empty_depth, _ = render([], CAMERA, INTR, seed=4)
    return (rgb, depth), (empty_rgb, empty_depth)


def frame(images, stamp: float) -> GroundingFrame:
    rgb, depth = images
    return GroundingFrame(rgb, depth, INTR, CAMERA, stamp)


def make(memory, detector, runner, **config) -> GroundingScheduler:
    """One camera, no place point, status at most every 0.2 s of the test's clock."""
    # a lone candidate is accepted on its score alone: the synthetic mug must clear a low bar
    cfg = GroundingConfig(matching=MatchConfig(accept_threshold=0.5, confident_threshold=0.5), **config)
    pipe = GroundingPipeline(cfg, memory, detector=detector)
    return GroundingScheduler([pipe], ["camera"], place=None, status_period=0.2, runner=runner)


def test_detection_runs_in_the_worker_and_is_adopted_on_the_next_frame(memory, scene):
    det, runner = ControlledDetector(), SteppedRunner()
    s = make(memory, det, runner, redetect_every=0)
    first = s.set_instruction(TASK, now=0.0)
    assert first.status is None and first.rewritten is None  # nothing said before a detection
    u = s.on_frame(0, frame(scene[0], 0.0), now=0.0)
    assert u.result is not None and u.result.objects[0].status == "not_found"
    assert not u.verdict and u.status is None  # no premature "not_found"
    assert s.detection_running(0) and len(runner.jobs) == 1 and det.calls == 0  # queued, not run inline
    # tracking goes on while the detection is in flight, and no second detection starts
    for k in (1, 2):
        u = s.on_frame(0, frame(scene[0], 0.1 * k), now=0.1 * k)
        assert u.result is not None and u.status is None
    assert len(runner.jobs) == 1
    assert runner.run_next() and det.calls == 1 and not s.detection_running(0)
    # the finished detection is adopted on the next frame, and tracked to it
    u = s.on_frame(0, frame(scene[0], 0.3), now=0.3)
    assert u.adopted and u.verdict
    assert u.result.status == "found" and u.result.mode == "track", u.result.reason
    assert u.status is not None and u.status.values["mode"] == "detect" and u.status.values["status"] == "found"
    assert u.rewritten == "bring the red-highlighted cup to the tray"
    u = s.on_frame(0, frame(scene[0], 0.6), now=0.6)
    assert not u.adopted and u.result.status == "found" and u.result.objects[0].source == "tracking"
    assert u.rewritten is None  # published once
    assert u.status is not None and u.status.values["mode"] == "track"
    assert not runner.jobs  # static, confident: no re-detection with redetect_every=0


def _instruction_change(s: GroundingScheduler) -> None:
    s.set_instruction("put my cup on the tray", now=0.0)


def _not_that_one(s: GroundingScheduler) -> None:
    s.set_exclusions([Exclusion((*MUG_XY, 0.05), 0.05, "base")])


def _reset(s: GroundingScheduler) -> None:
    s.reset()
    s.set_instruction(TASK, now=0.0)


@pytest.mark.parametrize("change", [_instruction_change, _not_that_one, _reset], ids=["instruction", "not_that_one", "reset"])
@pytest.mark.parametrize("finished_before_change", [False, True], ids=["in_flight", "finished_unadopted"])
def test_a_detection_of_an_older_generation_is_discarded(memory, scene, change, finished_before_change):
    det, runner = ControlledDetector(), SteppedRunner()
    s = make(memory, det, runner, redetect_every=0)
    s.set_instruction(TASK, now=0.0)
    s.on_frame(0, frame(scene[0], 0.0), now=0.0)
    g = s.generation
    if finished_before_change:
        runner.run_all()  # finished under g, not adopted yet
    change(s)
    assert s.generation > g
    runner.run_all()  # (the in-flight one finishes after the change)
    assert det.calls == 1
    u = s.on_frame(0, frame(scene[0], 0.1), now=0.1)
    assert not u.adopted and not u.verdict and u.status is None
    assert u.result.objects[0].status == "not_found"  # the old detection did not give a track
    # a new detection for the new generation starts on this frame and is adopted on the next
    assert len(runner.jobs) == 1
    runner.run_all()
    u = s.on_frame(0, frame(scene[0], 0.2), now=0.2)
    assert u.adopted and u.verdict and u.status is not None and u.status.values["mode"] == "detect"
    excluded = change is _not_that_one
    assert u.status.values["exclusions"] == (1 if excluded else 0)
    assert u.result.status == ("not_found" if excluded else "found"), u.result.reason


def test_an_identical_instruction_keeps_the_generation_and_a_plain_one_is_passed_through(memory, scene):
    s = make(memory, ControlledDetector(), SteppedRunner())
    s.set_instruction(TASK, now=0.0)
    g = s.generation
    assert s.set_instruction(TASK, now=0.1).status is None and s.generation == g
    u = s.set_instruction("bring the cup to the tray", now=0.2)
    assert s.generation == g + 1 and u.rewritten == "bring the cup to the tray"
    assert u.status is not None and u.status.status == "no_reference" and u.status.level == "OK"
    u = s.set_instruction("\x00\x07 ;;;; %%%%", now=0.3)
    assert u.status.status == "no_reference" and u.status.level == "WARN" and "instruction rejected" in u.status.reason
    u = s.on_frame(0, frame(scene[0], 0.4), now=0.4)
    assert u.result is None  # nothing to ground: the node publishes the plain image


def test_redetection_every_n_frames_and_when_the_object_is_lost(memory, scene):
    det, runner = ControlledDetector(), SteppedRunner()
    s = make(memory, det, runner, redetect_every=3)
    s.set_instruction(TASK, now=0.0)
    started = []
    for k in range(7):
        before = det.calls
        s.on_frame(0, frame(scene[0], 0.1 * k), now=0.1 * k)
        started.append(bool(runner.jobs))
        runner.run_all()  # each detection finishes before the next frame
        assert det.calls == before + started[-1]
    # first frame (no track), then every third frame counted from the adopting frame
    assert started == [True, False, True, False, True, False, True]

    det, runner = ControlledDetector(), SteppedRunner()
    s = make(memory, det, runner, redetect_every=0)
    s.set_instruction(TASK, now=0.0)
    s.on_frame(0, frame(scene[0], 0.0), now=0.0)
    runner.run_all()
    for k in range(1, 4):
        u = s.on_frame(0, frame(scene[0], 0.1 * k), now=0.1 * k)
        assert u.result.status == "found" and not runner.jobs  # confident and periodic off: tracking only
    u = s.on_frame(0, frame(scene[1], 0.4), now=0.4)  # the mug is gone: the tracker loses it
    assert u.result.status == "not_found"
    assert len(runner.jobs) == 1  # re-detecting at once


def test_a_memory_reload_withholds_the_verdict_until_the_next_detection(memory, scene):
    det, runner = ControlledDetector(), SteppedRunner()
    s = make(memory, det, runner, redetect_every=2)
    s.set_instruction(TASK, now=0.0)
    s.on_frame(0, frame(scene[0], 0.0), now=0.0)
    runner.run_all()
    assert s.on_frame(0, frame(scene[0], 0.1), now=0.1).verdict
    u = s.on_frame(0, frame(scene[0], 0.2), now=0.2)  # periodic re-detection queued here
    assert u.verdict and len(runner.jobs) == 1
    g = s.generation
    s.request_reload()
    runner.run_all()  # started before the reload: the generation did not change, it is kept
    u = s.on_frame(0, frame(scene[0], 0.3), now=0.3)
    assert s.generation == g and u.adopted and u.verdict and u.status.values["mode"] == "detect"
    s.request_reload()
    u = s.on_frame(0, frame(scene[0], 0.4), now=0.4)  # reloaded: no verdict until a detection is adopted
    assert not u.verdict and u.status is None and u.result.status == "found"


def test_run_time_enrolment_runs_in_the_worker_and_grounds_from_the_next_frame(tmp_path, scene):
    import cv2

    paths = []
    for i, view in enumerate(reference_views()[0]):
        paths.append(str(tmp_path / f"ref{i}.png"))
        assert cv2.imwrite(paths[-1], view[..., ::-1])
    det, runner = ControlledDetector(), SteppedRunner()
    s = make(PersonalObjectMemory(tmp_path / "memory"), det, runner, redetect_every=0)
    u = s.set_instruction(TASK, now=0.0)
    assert u.status.status == "no_reference" and s.target_names == []  # "my cup" is not enrolled yet
    s.enroll("my_mug", "cup", paths, [], False)
    assert len(runner.jobs) == 1  # enrolment (embedding the references) runs in the worker
    runner.run_next()
    assert s.target_names == []  # the memory is reloaded in the frame thread, on the next frame
    u = s.on_frame(0, frame(scene[0], 0.1), now=0.1)
    assert s.target_names == ["my_mug"] and u.result is not None and len(runner.jobs) == 1
    runner.run_all()
    u = s.on_frame(0, frame(scene[0], 0.2), now=0.2)
    assert u.adopted and u.result.status == "found", u.result.reason


def test_status_rate_follows_the_callers_clock(memory, scene):
    det, runner = ControlledDetector(), SteppedRunner()
    s = make(memory, det, runner, redetect_every=0)
    s.set_instruction(TASK, now=10.0)
    s.on_frame(0, frame(scene[0], 10.0), now=10.0)
    runner.run_all()
    said = []
    for now in (10.1, 10.15, 10.2, 10.29, 10.31, 10.4, 5.0, 5.05):  # 5.0: the clock went back (sim reset)
        u = s.on_frame(0, frame(scene[0], now), now=now)
        said.append(u.status is not None)
    # 10.1 adopts (always reported); then at most every 0.2 s of this clock; at once after a jump back
    assert said == [True, False, False, False, True, False, True, False]


def test_tracking_goes_on_in_the_callers_thread_while_the_worker_detects(memory, scene):
    det = ControlledDetector(gated=True)
    runner = ThreadRunner()
    s = make(memory, det, runner, redetect_every=0)
    try:
        s.set_instruction(TASK, now=0.0)
        s.on_frame(0, frame(scene[0], 0.0), now=0.0)
        assert det.started.wait(30)
        tracked = len(s.tracking_ms)
        for k in range(1, 4):  # the detection is held in flight
            u = s.on_frame(0, frame(scene[0], 0.1 * k), now=0.1 * k)
            assert u.result is not None and not u.adopted and u.status is None
        assert len(s.tracking_ms) == tracked + 3 and det.calls == 1 and s.detection_running(0)
        det.release.set()
        adopted, k = False, 4
        while not adopted and k < 1000:  # wait for the state, not for a time
            u = s.on_frame(0, frame(scene[0], 0.1 * k), now=0.1 * k)
            adopted, k = u.adopted, k + 1
        assert adopted and u.result.status == "found"
        assert det.threads == ["grounding-detector"] and threading.current_thread().name != "grounding-detector"
    finally:
        det.release.set()
        assert s.stop(timeout=30)


def test_stop_joins_the_worker_and_nothing_is_published_afterwards(memory, scene):
    det = ControlledDetector(gated=True)
    runner = ThreadRunner()
    s = make(memory, det, runner, redetect_every=0)
    s.set_instruction(TASK, now=0.0)
    s.on_frame(0, frame(scene[0], 0.0), now=0.0)
    assert det.started.wait(30)
    assert not s.stop(timeout=0.05)  # the detection is still running: not joined yet ...
    det.release.set()
    assert runner.stop(timeout=30) and not runner.alive  # ... it ends once the detection returns
    assert s.cameras[0].done is None  # its result was discarded
    assert s.on_frame(0, frame(scene[0], 0.1), now=0.1) is None  # nothing to publish after stop
    s.enroll("late", "cup", [], [], False)  # ignored after stop, no worker to run it
    assert det.calls == 1

    idle = GroundingScheduler([GroundingPipeline(GroundingConfig(), memory, detector=ControlledDetector())])
    assert idle.stop(timeout=30)


def test_ambiguous_status_carries_every_candidate_with_its_box_and_highlights_nothing(memory):
    """decision per_object, my mug twice in view: the status says "ambiguous" with the candidates'
    scores and boxes (what the planner reports and a user can choose from); no highlight, no target."""
    twins, depth, _ = render([Cylinder(0.48, -0.08, texture=MINE, yaw=0.4), Cylinder(0.48, 0.10, texture=MINE, yaw=0.4)],
                             CAMERA, INTR, seed=5)
    cfg = GroundingConfig(matching=MatchConfig(decision="per_object"), redetect_every=0)
    pipe = GroundingPipeline(cfg, memory, detector=ControlledDetector())
    runner = SteppedRunner()
    s = GroundingScheduler([pipe], ["camera"], place=None, status_period=0.2, runner=runner)
    s.set_instruction(TASK, now=0.0)
    s.on_frame(0, frame((twins, depth), 0.0), now=0.0)
    runner.run_all()
    u = s.on_frame(0, frame((twins, depth), 0.1), now=0.1)
    assert u.adopted and u.status is not None and u.status.status == "ambiguous", u.result.reason
    values = u.status.values
    assert "cannot tell which one is mine" in values["reason"] and "candidates:" in values["reason"]
    boxes = values["candidate_boxes"].split(";")
    assert len(boxes) == 2 and all(len(b.split(":")[0].split(",")) == 4 for b in boxes)
    assert len(values["candidates"].split(",")) == 2 and "runner_up_score" in values
    assert not u.result.mask.any() and np.array_equal(u.result.highlighted, twins) and "target" not in values
    assert u.rewritten is None and u.place is None


def test_run_time_enrolment_checks_the_photos_and_stores_nothing_on_bad_input(tmp_path, scene):
    import cv2

    views = reference_views()[0]
    paths = []
    for i, view in enumerate([views[0], views[1], np.zeros_like(views[2])]):
        paths.append(str(tmp_path / f"ref{i}.png"))
        assert cv2.imwrite(paths[-1], view[..., ::-1])
    messages: list[str] = []

    class Log:
        def info(self, m):
            messages.append(m)

        warning = error = info

    runner = SteppedRunner()
    pipe = GroundingPipeline(GroundingConfig(), PersonalObjectMemory(tmp_path / "memory"), detector=ControlledDetector())
    s = GroundingScheduler([pipe], ["camera"], place=None, runner=runner, logger=Log())
    s.enroll("my_mug", "cup", paths, [], False, not_mine=[])
    runner.run_all()
    assert any("enrolment of 'my_mug' failed" in m and "nothing was stored" in m for m in messages), messages
    assert PersonalObjectMemory(tmp_path / "memory").names() == []
    s.enroll("my_mug", "cup", paths[:2], [], False, not_mine=[paths[1]])  # good photos (+ a 'not mine', for the wiring)
    runner.run_all()
    obj = PersonalObjectMemory(tmp_path / "memory").get("my_mug")
    assert obj.rule is not None and len(obj.negatives) == 1
    assert any("expected true accept" in m for m in messages), messages
