"""Resolving grounding's "ambiguous" from the user (issue 13, build 2), grounding side, ROS-free:
`GroundingPipeline.select` resolves "the left one" / "the nearest one" / an ordinal / a click
spatially against the candidates of its last ambiguous answer, highlights and tracks the chosen
instance as user-confirmed and keeps it on later detections; a choice that does not fit changes
nothing and says why. `GroundingScheduler.select` adds the generation check and the status, and
(online_confirmation) the memory additions. Synthetic RGB-D scenes of identical mugs."""

from __future__ import annotations

import numpy as np
import pytest
from grounding_synthetic import Cylinder, default_intrinsics, dots, look_at, render

from vla_stack.core.grounding.embedders import AppearanceEmbedder
from vla_stack.core.grounding.matching import MatchConfig
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.core.grounding.pipeline import Exclusion, GroundingConfig, GroundingFrame, GroundingPipeline
from vla_stack.core.grounding.scheduler import GroundingScheduler, SteppedRunner

MINE = dots((226, 214, 196), (176, 70, 46))
INTR = default_intrinsics()
CAMERA = look_at([1.15, 0.0, 0.65], [0.45, 0.0, 0.02])
TASK = "bring my cup to the tray"
# three identical mugs: image left to right = base y ascending; nearest to the camera = largest x
THREE = [Cylinder(0.40, -0.13, texture=MINE, yaw=0.4), Cylinder(0.56, 0.0, texture=MINE, yaw=0.4),
         Cylinder(0.46, 0.13, texture=MINE, yaw=0.4)]
TWO = [Cylinder(0.48, -0.08, texture=MINE, yaw=0.4), Cylinder(0.48, 0.10, texture=MINE, yaw=0.4)]


def reference_views(n: int = 4, seed: int = 0):
    views, masks = [], []
    intr = default_intrinsics(160, 160, 40.0)
    for i in range(n):
        az = 2 * np.pi * i / n + 0.3
        rgb, _, lab = render([Cylinder(0, 0, texture=MINE)], look_at([0.3 * np.cos(az), 0.3 * np.sin(az), 0.17],
                             [0, 0, 0.045]), intr, table_color=(120, 120, 125), table_center=(0, 0),
                             table_half=(2, 2), seed=seed + i)
        views.append(rgb)
        masks.append(lab == 2)
    return views, masks


def enrolled(root) -> PersonalObjectMemory:
    mem = PersonalObjectMemory(root)
    views, masks = reference_views()
    mem.enroll("my_mug", views, "cup", AppearanceEmbedder(), masks=masks, self_calibrate=True)
    return mem


@pytest.fixture(scope="module")
def memory(tmp_path_factory):
    return enrolled(tmp_path_factory.mktemp("personal_objects"))


@pytest.fixture(scope="module")
def scenes():
    out = {}
    for key, cyl, seed in (("three", THREE, 5), ("two", TWO, 6), ("two_later", TWO, 16)):  # later: other sensor noise
        rgb, depth, labels = render(cyl, CAMERA, INTR, seed=seed)
        out[key] = (rgb, depth, labels)
    return out


def frame(scene, stamp: float, depth: bool = True) -> GroundingFrame:
    rgb, d, _ = scene
    return GroundingFrame(rgb, d if depth else None, INTR if depth else None, CAMERA, stamp)


def pipeline(memory, **config) -> GroundingPipeline:
    pipe = GroundingPipeline(GroundingConfig(matching=MatchConfig(decision="per_object"), **config), memory)
    pipe.set_instruction(TASK)
    return pipe


def which(mask: np.ndarray, labels: np.ndarray) -> int:
    """Index of the cylinder a mask covers (label 2 + i)."""
    counts = [np.count_nonzero(mask & (labels == 2 + i)) for i in range(int(labels.max()) - 1)]
    assert max(counts) > 0.5 * np.count_nonzero(mask), counts
    return int(np.argmax(counts))


def ambiguous(pipe, scene, depth: bool = True):
    res = pipe.process(frame(scene, 0.0, depth))
    assert res.status == "ambiguous", res.reason
    assert not res.mask.any()  # highlights none
    return res


@pytest.mark.parametrize("selector, index, expected", [
    ("left", None, 0), ("right", None, 2), ("middle", None, 1), ("nearest", None, 1), ("farthest", None, 0),
    ("ordinal", 0, 0), ("ordinal", 1, 1), ("ordinal", 2, 2), ("ordinal", -1, 2),
])
def test_a_spatial_choice_picks_that_candidate_and_it_is_found_and_tracked(memory, scenes, selector, index, expected):
    pipe = pipeline(memory)
    res = ambiguous(pipe, scenes["three"])
    assert len(res.objects[0].candidates) == 3 and pipe.pending_choice() == 3
    out = pipe.select(selector, index, text=f"the {selector} one")
    assert out.accepted, out.reason
    assert out.reason.startswith("user chose") and "score" in out.reason
    labels = scenes["three"][2]
    assert which(out.grounding.mask, labels) == expected
    # tracked from there: found, highlighted, with a 3D target on the chosen mug
    res = pipe.process(frame(scenes["three"], 0.1))
    o = res.objects[0]
    assert res.status == "found" and o.source == "tracking" and "user chose" in o.reason, o.reason
    assert which(o.mask, labels) == expected and res.mask.any()
    assert o.target is not None and abs(o.target.centroid_base.position[1] - THREE[expected].y) < 0.03
    assert "my_mug" in pipe.confirmed and pipe.pending_choice() == 0


def test_the_chosen_instance_is_kept_on_later_detections_though_the_matcher_cannot_tell(memory, scenes):
    pipe = pipeline(memory)
    ambiguous(pipe, scenes["two"])
    assert pipe.select("right").accepted
    for k in range(3):
        res = pipe.process(frame(scenes["two"], 0.1 * (k + 1)), force_detection=True)
        o = res.objects[0]
        assert res.status == "found" and o.source == "detection", o.reason
        assert o.reason.startswith("the instance the user chose") and "matcher: ambiguous" in o.reason
        assert which(o.mask, scenes["two"][2]) == 1


def test_clicks_by_index_and_by_box(memory, scenes):
    pipe = pipeline(memory)
    res = ambiguous(pipe, scenes["three"])
    boxes = [c.bbox for c in res.objects[0].candidates]
    k = int(np.argmax([b[0] for b in boxes]))  # the rightmost box, by list position
    out = pipe.select("index", k)
    assert out.accepted and "a click on the right one" in out.reason
    assert which(out.grounding.mask, scenes["three"][2]) == 2
    pipe = pipeline(memory)
    ambiguous(pipe, scenes["three"])
    b = boxes[int(np.argmin([b[0] for b in boxes]))]
    out = pipe.select("box", box=(b[0] + 2.0, b[1] + 2.0, b[2] - 1.0, b[3]))
    assert out.accepted and which(out.grounding.mask, scenes["three"][2]) == 0


def test_nearest_without_depth_is_the_largest_box(memory, scenes):
    pipe = pipeline(memory)
    pipe.process(frame(scenes["three"], 0.0))
    pending = pipe._pending["my_mug"]
    for p in pending.proposals:
        p.centroid_camera = None  # as a box detector without depth gives them
    out = pipe.select("nearest")
    assert out.accepted, out.reason
    areas = [(p.bbox[2] - p.bbox[0]) * (p.bbox[3] - p.bbox[1]) for p in pending.proposals]
    assert which(out.grounding.mask, scenes["three"][2]) == which(pending.proposals[int(np.argmax(areas))].mask,
                                                                   scenes["three"][2])


@pytest.mark.parametrize("selector, index, needle", [
    ("middle", None, "no middle one among 2"),
    ("ordinal", 4, "there are 2 candidates, no #5"),
    ("index", 2, "candidate #2 does not exist"),
    ("box", None, "no box given"),
    ("only", None, "there are 2 candidates, not one"),
    ("current", None, "nothing is highlighted to confirm"),
    ("purple", None, "unknown selector"),
])
def test_a_choice_that_does_not_fit_changes_nothing(memory, scenes, selector, index, needle):
    pipe = pipeline(memory)
    ambiguous(pipe, scenes["two"])
    out = pipe.select(selector, index)
    assert not out.accepted and needle in out.reason, out.reason
    assert pipe.pending_choice() == 2 and not pipe.confirmed  # the question still stands
    assert pipe.process(frame(scenes["two"], 0.1)).status == "ambiguous"
    assert pipe.select("box", box=(0.0, 0.0, 5.0, 5.0)).reason.startswith("the box")  # overlaps nothing


def test_no_question_pending_and_exclusions_void_the_question(memory, scenes):
    pipe = pipeline(memory)
    out = pipe.select("left")
    assert not out.accepted and "no question pending" in out.reason
    ambiguous(pipe, scenes["two"])
    pipe.set_exclusions([Exclusion((0.48, 0.10, 0.05), 0.05, "base")])  # "not that one" changes the candidates
    assert pipe.pending_choice() == 0 and "no question pending" in pipe.select("left").reason


def test_not_that_one_about_the_chosen_instance_and_a_new_task_drop_the_choice(memory, scenes):
    pipe = pipeline(memory)
    ambiguous(pipe, scenes["two"])
    assert pipe.select("left").accepted and "my_mug" in pipe.confirmed
    pipe.set_exclusions([Exclusion((0.48, 0.10, 0.05), 0.05, "base")])  # the other one: the choice stays
    assert "my_mug" in pipe.confirmed
    pipe.set_exclusions([Exclusion((0.48, -0.08, 0.05), 0.05, "base")])  # the chosen one
    assert "my_mug" not in pipe.confirmed
    ambiguous_again = pipe.process(frame(scenes["two"], 0.2), force_detection=True)
    assert ambiguous_again.status != "found" or which(ambiguous_again.objects[0].mask, scenes["two"][2]) == 1
    pipe.set_exclusions([])
    pipe.reset()  # (else the instance tracked since the exclusion is kept: temporal evidence)
    assert pipe.process(frame(scenes["two"], 0.3)).status == "ambiguous"
    assert pipe.select("left").accepted
    pipe.set_instruction("put my cup on the tray")
    assert not pipe.confirmed


def test_yes_confirms_the_object_found_now(memory, scenes):
    pipe = pipeline(memory)
    ambiguous(pipe, scenes["two"])
    assert pipe.select("right").accepted
    pipe.process(frame(scenes["two"], 0.1))
    pipe._confirmed.clear()
    out = pipe.select("current", text="yes, that one")
    assert out.accepted and "user confirmed the highlighted cup" in out.reason
    assert pipe.confirmed["my_mug"].position is not None


# ---------------------------------------------------------------------------------------- scheduler
def scheduler(memory, online: bool = False, redetect_every: int = 0):
    runner = SteppedRunner()
    pipe = GroundingPipeline(GroundingConfig(matching=MatchConfig(decision="per_object"), redetect_every=redetect_every),
                             memory)
    s = GroundingScheduler([pipe], ["camera"], place=None, status_period=0.2, runner=runner, online_confirmation=online)
    s.set_instruction(TASK, now=0.0)
    return s, runner


def ask(s, runner, scene):
    s.on_frame(0, frame(scene, 0.0), now=0.0)
    runner.run_all()
    u = s.on_frame(0, frame(scene, 0.1), now=0.1)
    assert u.status is not None and u.status.status == "ambiguous"
    assert u.status.values["generation"] == s.generation and u.status.values["category"] == "cup"
    assert len(u.status.values["candidate_boxes"].split(";")) == 2
    return u.status.values["generation"]


def test_scheduler_accepts_a_choice_of_the_current_question_and_says_found(memory, scenes):
    s, runner = scheduler(memory)
    gen = ask(s, runner, scenes["two"])
    s.on_frame(0, frame(scenes["two"], 0.15), now=0.15)  # (no detection in flight: redetect_every 0, ambiguous re-asks)
    u = s.select("left", generation=gen, text="the left one", now=0.2)
    assert u.status.status == "found" and u.status.reason.startswith("user chose the left one")
    assert u.status.values["selection"] == "accepted" and s.generation == gen + 1
    runner.run_all()  # a detection started before the choice answered the old question: discarded
    u = s.on_frame(0, frame(scenes["two"], 0.3), now=0.3)
    assert not u.adopted and u.result.status == "found" and which(u.result.mask, scenes["two"][2]) == 0
    assert "user chose the left one" in u.result.reason
    assert u.rewritten == "bring the red-highlighted cup to the tray"  # the planner plans the rewritten task
    u = s.on_frame(0, frame(scenes["two"], 0.5), now=0.5)
    assert u.status is not None and u.status.values.get("confirmed", "").startswith("user chose")


@pytest.mark.parametrize("case", ["stale", "unasked", "bad_index"])
def test_scheduler_refuses_a_stale_or_unfit_choice_with_the_reason_in_the_status(memory, scenes, case):
    s, runner = scheduler(memory)
    if case == "unasked":
        u = s.select("left", now=0.2)
        assert "no question pending" in u.status.reason
        return
    gen = ask(s, runner, scenes["two"])
    if case == "stale":
        u = s.select("left", generation=gen - 1 if gen > 1 else gen + 5, now=0.2)
        needle = "stale"
    else:
        u = s.select("index", 9, generation=gen, now=0.2)
        needle = "candidate #9 does not exist"
    assert u.status.status == "ambiguous" and u.status.reason.startswith("selection rejected") and needle in u.status.reason
    assert u.status.values["selection"].startswith("rejected") and s.generation == gen
    assert s.on_frame(0, frame(scenes["two"], 0.3), now=0.3).result.status == "ambiguous"  # nothing changed


# ---------------------------------------------------------------------------------------- online confirmation
def test_online_confirmation_adds_the_chosen_view_the_picked_view_and_a_negative(tmp_path, scenes):
    mem = enrolled(tmp_path / "memory")
    s, runner = scheduler(mem, online=True, redetect_every=2)
    gen = ask(s, runner, scenes["two"])
    assert s.select("left", generation=gen, now=0.2).status.status == "found"
    runner.run_all()
    assert any("added a confirmed view to 'my_mug' (user chose the left one" in m for m in s.memory_changes), s.memory_changes
    stored = PersonalObjectMemory(mem.root).get("my_mug")
    assert len(stored.crops) == 5 and stored.online_views == 1 and stored.rule is not None
    # the memory is reloaded on the next frame; later detections keep the chosen instance (found, sure views)
    for k in range(4):
        s.on_frame(0, frame(scenes["two_later"], 0.4 + 0.1 * k), now=0.4 + 0.1 * k)
        runner.run_all()
    u = s.on_frame(0, frame(scenes["two_later"], 0.8), now=0.8)
    assert u.result.status == "found" and which(u.result.mask, scenes["two"][2]) == 0
    # a pick the planner reports done: the last sure view is added
    s.on_subtask("pick", "active", 3, 0, "cup")
    s.on_subtask("pick", "active", 3, 0, "cup")  # (republished)
    s.on_subtask("place", "active", 3, 1, "cup")
    s.on_subtask("place", "active", 3, 1, "cup")  # (republished: counted once)
    runner.run_all()
    assert sum("successful pick of the cup" in m for m in s.memory_changes) == 1, s.memory_changes
    assert PersonalObjectMemory(mem.root).get("my_mug").online_views == 2
    # "not that one" at the instance grounding found: its view becomes a negative
    point = s._last_view[2]
    assert point is not None and abs(point[1] - TWO[0].y) < 0.03
    s.set_exclusions([Exclusion(tuple(point), 0.05, "base")])
    runner.run_all()
    assert any("added a negative to 'my_mug' (user: not that one)" in m for m in s.memory_changes), s.memory_changes
    stored = PersonalObjectMemory(mem.root).get("my_mug")
    # the view the pick had confirmed is this very instance: withdrawn, replaced by the negative
    assert stored.online_negatives == 1 and stored.online_views == 1 and len(stored.crops) == 5


def test_online_confirmation_is_off_by_default(tmp_path, scenes):
    mem = enrolled(tmp_path / "memory")
    s, runner = scheduler(mem)
    gen = ask(s, runner, scenes["two"])
    s.select("left", generation=gen, now=0.2)
    s.on_subtask("pick", "active", 1, 0, "cup")
    s.on_subtask("place", "active", 1, 1, "cup")
    runner.run_all()
    assert not s.memory_changes and PersonalObjectMemory(mem.root).get("my_mug").online_views == 0


def test_a_choice_typed_on_the_instruction_topic_keeps_the_task(memory, scenes):
    s, runner = scheduler(memory)
    gen = ask(s, runner, scenes["two"])
    s.set_instruction("the left one", now=0.2)  # grounding listens to task/instruction too
    assert s.instruction == TASK and s.generation == gen and s.target_names == ["my_mug"]
    assert s.select("left", generation=gen, now=0.3).status.status == "found"
