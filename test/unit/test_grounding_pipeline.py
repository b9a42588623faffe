"""GroundingPipeline end to end on synthetic RGB-D scenes (offline backends): found, tracked,
not found, ambiguous, several objects, no reference, bad input."""

import numpy as np
import pytest
from grounding_synthetic import Cylinder, default_intrinsics, dots, look_at, render, stripes

from vla_stack.core.grounding.embedders import AppearanceEmbedder, crop_object
from vla_stack.core.grounding.imageops import InvalidImage, mask_iou
from vla_stack.core.grounding.matching import MatchConfig, calibrate_threshold, cosine_matrix, ensemble_scores
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.core.grounding.pipeline import (
    GroundingConfig,
    GroundingFrame,
    GroundingPipeline,
    select_generic,
)
from vla_stack.core.grounding.proposals import DepthClusterDetector

BASE, ACCENT = (226, 214, 196), (176, 70, 46)
MINE = dots(BASE, ACCENT)
LOOKALIKES = [stripes(BASE, ACCENT, n=4), stripes(BASE, ACCENT, n=6, vertical=True)]
INTR = default_intrinsics()


def camera(shift=0.0):
    return look_at([1.15, shift, 0.65], [0.45, shift, 0.02])


def refs_of(texture, n=4):
    views, masks = [], []
    intr = default_intrinsics(160, 160, 40.0)
    for i in range(n):
        az = 2 * np.pi * i / n + 0.3
        pos = [0.3 * np.cos(az), 0.3 * np.sin(az), 0.17]
        rgb, _, lab = render([Cylinder(0, 0, texture=texture)], look_at(pos, [0, 0, 0.045]), intr,
                             table_color=(120, 120, 125), table_center=(0, 0), table_half=(2, 2), seed=i)
        views.append(rgb)
        masks.append(lab == 2)
    return views, masks


def scene(cylinders, shift=0.0, light=1.0, seed=0):
    rgb, depth, labels = render(cylinders, camera(shift), INTR, light=light, seed=seed)
    return GroundingFrame(rgb, depth, INTR, camera(shift), stamp=float(seed)), labels


@pytest.fixture(scope="module")
def memory(tmp_path_factory):
    mem = PersonalObjectMemory(tmp_path_factory.mktemp("personal_objects"))
    emb = AppearanceEmbedder()
    views, masks = refs_of(MINE)
    mem.enroll("my_mug", views, "cup", emb, masks=masks, aliases=["the dotty one"])
    pv, pm = refs_of(stripes((60, 120, 200), (240, 240, 240), n=2), n=2)
    mem.enroll("my_plate", pv, "plate", emb, masks=pm)
    return mem


@pytest.fixture(scope="module")
def threshold(memory):
    """Accept threshold calibrated on a separate synthetic calibration scene (other layout and light)."""
    emb = AppearanceEmbedder()
    refs = memory.reference_embeddings("my_mug", emb)
    pos, neg = [], []
    for k, (x, y) in enumerate([(0.55, 0.05), (0.42, -0.12)]):
        cyls = [Cylinder(x, y, texture=MINE, yaw=1.0 + k)] + [
            Cylinder(0.40 + 0.1 * j, 0.18 - 0.36 * j, texture=t, yaw=0.5 * j) for j, t in enumerate(LOOKALIKES)
        ]
        frame, labels = scene(cyls, light=0.9 + 0.1 * k, seed=50 + k)
        props = DepthClusterDetector().detect(frame.rgb, frame.depth, INTR, ["cup"]).proposals
        s = ensemble_scores(cosine_matrix(emb.embed_crops([crop_object(frame.rgb, p.mask) for p in props]), refs), 2)
        for p, score in zip(props, s, strict=True):
            (pos if mask_iou(p.mask, labels == 2) > 0.5 else neg).append(score)
    assert len(pos) == 2 and len(neg) == 4
    return calibrate_threshold(pos, neg, 0.0)


def make_pipeline(memory, threshold, **kw):
    cfg = GroundingConfig(matching=MatchConfig(accept_threshold=threshold, ambiguity_margin=kw.pop("margin", 0.005)), **kw)
    return GroundingPipeline(cfg, memory)


TEST_LAYOUT = [
    Cylinder(0.50, 0.02, texture=MINE, yaw=2.5),
    Cylinder(0.40, -0.17, texture=LOOKALIKES[0], yaw=0.2),
    Cylinder(0.42, 0.17, texture=LOOKALIKES[1], yaw=1.1),
]


def test_finds_highlights_rewrites_and_locates_my_cup(memory, threshold):
    pipe = make_pipeline(memory, threshold)
    parsed = pipe.set_instruction("bring my cup to the tray")
    assert parsed.object_names == ["my_mug"]
    frame, labels = scene(TEST_LAYOUT, seed=1)
    res = pipe.process(frame)
    assert res.status == "found", res.reason
    assert res.mode == "detect"
    truth = labels == 2
    assert mask_iou(res.mask, truth) > 0.8
    assert res.rewritten_instruction == "bring the red-highlighted cup to the tray"
    changed = np.any(res.highlighted != frame.rgb, axis=2)
    assert changed[truth].mean() > 0.9 and changed[labels == 3].sum() == 0
    assert len(res.scores) == 3
    best = max(res.scores, key=lambda c: c.score)
    assert best.score == res.objects[0].score
    g = res.target.grasp_base
    np.testing.assert_allclose(g.position[:2], [0.50, 0.02], atol=0.01)
    assert res.target.grasp_camera.frame_id == INTR.frame_id
    assert {"detection_s", "proposal_s", "embedding_s", "target_s", "prompting_s", "total_s"} <= set(res.timings)


def test_tracks_between_detections_and_redetects_periodically(memory, threshold):
    pipe = make_pipeline(memory, threshold, redetect_every=3)
    pipe.set_instruction("bring my cup to the tray")
    modes = []
    for k in range(5):
        frame, labels = scene(TEST_LAYOUT, shift=0.004 * k, seed=10 + k)
        res = pipe.process(frame)
        modes.append(res.mode)
        assert res.status == "found", (k, res.reason)
        assert mask_iou(res.mask, labels == 2) > 0.7, k
        if res.mode == "track":
            assert "tracking_s" in res.timings and res.objects[0].source == "tracking"
    assert modes == ["detect", "track", "track", "detect", "track"]


def test_not_found_when_my_cup_is_absent_and_nothing_is_highlighted(memory, threshold):
    pipe = make_pipeline(memory, threshold)
    pipe.set_instruction("bring my cup to the tray")
    frame, _ = scene(TEST_LAYOUT[1:], seed=2)
    res = pipe.process(frame)
    assert res.status == "not_found", res.reason
    assert not res.mask.any() and res.target is None
    assert np.array_equal(res.highlighted, frame.rgb)
    assert res.rewritten_instruction == "bring my cup to the tray"  # never points at a highlight that is not there
    assert len(res.scores) == 2 and all(c.score < threshold for c in res.scores)


def test_ambiguous_when_two_equal_candidates(memory, threshold):
    pipe = make_pipeline(memory, threshold, margin=0.05)
    pipe.set_instruction("bring my cup")
    twins = [Cylinder(0.48, -0.08, texture=MINE, yaw=0.4), Cylinder(0.48, 0.10, texture=MINE, yaw=0.4)]
    frame, _ = scene(twins, seed=3)
    res = pipe.process(frame)
    assert res.status == "ambiguous", res.reason
    og = res.objects[0]
    assert og.runner_up is not None and og.bbox is not None
    assert abs(og.score - og.runner_up.score) < 0.05
    assert not res.mask.any() and np.array_equal(res.highlighted, frame.rgb)


def test_two_personal_objects_in_one_instruction(memory, threshold):
    pipe = make_pipeline(memory, threshold)
    pipe.config.matching  # noqa: B018 - same thresholds for both objects
    plate = Cylinder(0.70, 0.16, radius=0.08, height=0.02, texture=stripes((60, 120, 200), (240, 240, 240), n=2))
    frame, labels = scene([*TEST_LAYOUT[:2], plate], seed=4)
    pipe.set_instruction("put my cup on my plate")
    res = pipe.process(frame)
    names = [o.name for o in res.objects]
    assert names == ["my_mug", "my_plate"]
    cup, plate_g = res.objects
    assert cup.status == "found" and cup.color == "red"
    assert mask_iou(cup.mask, labels == 2) > 0.8
    assert plate_g.color == "green"
    if plate_g.status == "found":  # a flat plate is a thin cluster; when found, it must be the plate
        assert mask_iou(plate_g.mask, labels == 4) > 0.5
        assert res.rewritten_instruction == "put the red-highlighted cup on the green-highlighted plate"
    else:
        assert res.rewritten_instruction == "put the red-highlighted cup on my plate"


def test_no_reference_cases_pass_through(memory, threshold):
    pipe = make_pipeline(memory, threshold)
    frame, _ = scene(TEST_LAYOUT, seed=5)
    res = pipe.process(frame)
    assert res.status == "no_reference" and "no instruction" in res.reason
    pipe.set_instruction("bring the cup to the tray")
    res = pipe.process(frame)
    assert res.status == "no_reference" and res.rewritten_instruction == "bring the cup to the tray"
    assert np.array_equal(res.highlighted, frame.rgb)
    pipe.set_instruction("\x00\x01")
    res = pipe.process(frame)
    assert res.status == "no_reference" and "rejected" in res.reason and res.rewritten_instruction == ""
    pipe.set_instruction("bring my phone")
    res = pipe.process(frame)
    assert res.status == "no_reference" and "phone" in res.reason


def test_bad_frames_are_survived(memory, threshold):
    pipe = make_pipeline(memory, threshold)
    pipe.set_instruction("bring my cup")
    frame, _ = scene(TEST_LAYOUT, seed=6)
    no_depth = pipe.process(GroundingFrame(frame.rgb, None, INTR))
    assert no_depth.status == "not_found" and "depth" in no_depth.reason
    bad_depth = pipe.process(GroundingFrame(frame.rgb, frame.depth[:10], INTR))
    assert bad_depth.status == "not_found"
    with pytest.raises(InvalidImage):
        pipe.process(GroundingFrame(np.zeros((0, 0, 3), np.uint8)))
    with pytest.raises(InvalidImage):
        pipe.process(GroundingFrame(np.zeros((480, 640), np.float32)))
    ok = pipe.process(frame)  # and it still works afterwards
    assert ok.status == "found"


def test_detect_and_track_split_for_a_threaded_node(memory, threshold):
    pipe = make_pipeline(memory, threshold)
    pipe.set_instruction("bring the dotty one to the tray")  # alias
    assert pipe.target_names == ["my_mug"]
    f0, labels = scene(TEST_LAYOUT, seed=7)
    assert pipe.needs_detection()
    outcome = pipe.detect(f0)  # may run in a worker thread
    pipe.accept_detection(outcome)
    assert not pipe.needs_detection()
    f1, labels1 = scene(TEST_LAYOUT, shift=0.003, seed=8)
    objs = pipe.track(f1)
    res = pipe.result_from_tracking(f1, objs, 0.001)
    assert res.status == "found" and res.mode == "track"
    assert mask_iou(res.mask, labels1 == 2) > 0.7
    assert res.rewritten_instruction == "bring the red-highlighted cup to the tray"


def test_generic_baseline_picks_a_cup_without_memory(memory, threshold):
    frame, labels = scene(TEST_LAYOUT, seed=9)
    det = DepthClusterDetector().detect(frame.rgb, frame.depth, INTR, ["cup"])
    i = select_generic(det)
    assert i is not None and 0 <= i < 3
    assert max(mask_iou(det.proposals[i].mask, labels == k) for k in (2, 3, 4)) > 0.8


def test_config_rejects_unknown_backends():
    with pytest.raises(KeyError, match="did you mean"):
        GroundingConfig(detector="depth_cluster")
    with pytest.raises(ValueError):
        GroundingConfig(redetect_every=-1)


def test_exclusion_not_that_one_moves_the_highlight_and_clearing_restores_it(memory, threshold):
    from vla_stack.core.grounding.pipeline import Exclusion

    pipe = make_pipeline(memory, threshold)
    pipe.set_instruction("bring my cup to the tray")
    frame, labels = scene(TEST_LAYOUT, seed=11)
    res = pipe.process(frame)
    assert res.status == "found"
    mine = res.target.grasp_base.position
    # the user says "not that one" about my cup: it must not be highlighted again
    pipe.set_exclusions([Exclusion(tuple(mine), 0.05, pipe.config.base_frame)])
    res2 = pipe.process(frame)
    assert res2.mode == "detect"
    assert not (res2.status == "found" and mask_iou(res2.mask, labels == 2) > 0.5), res2.reason
    assert len(res2.scores) == 2  # the excluded instance is no candidate any more
    pipe.set_exclusions([])
    res3 = pipe.process(frame, force_detection=True)
    assert res3.status == "found" and mask_iou(res3.mask, labels == 2) > 0.8
    with pytest.raises(ValueError):
        pipe.set_exclusions([Exclusion((float("nan"), 0.0, 0.0), 0.05, "base")])


def test_generic_mode_grounds_a_cup_without_matching(memory, threshold):
    pipe = make_pipeline(memory, threshold, personal=False)
    pipe.set_instruction("bring my cup to the tray")
    frame, labels = scene(TEST_LAYOUT, seed=12)
    res = pipe.process(frame)
    assert res.status == "found" and "generic" in res.objects[0].reason
    assert max(mask_iou(res.mask, labels == k) for k in (2, 3, 4)) > 0.8
    assert res.scores == []  # no personal matching happened


def test_object_permanence_holds_the_detected_position_while_covered_then_lets_go(memory, threshold):
    """The arm covering my cup (here: a post in front of it) must not make the target vanish or
    slide onto the occluder: the last detected position is reported for occlusion_hold_s."""
    pipe = make_pipeline(memory, threshold, occlusion_hold_s=5.0)
    pipe.set_instruction("bring my cup to the tray")
    f0, _ = scene(TEST_LAYOUT, seed=1)
    pipe.accept_detection(pipe.detect(f0))
    anchor = pipe.result_from_tracking(f0, pipe.track(f0), 0.0).target.grasp_base.position

    covered, _ = scene([*TEST_LAYOUT, Cylinder(0.60, 0.02, radius=0.035, height=0.16)], seed=3)
    for dt in (0.5, 4.5):
        frame = GroundingFrame(covered.rgb, covered.depth, INTR, covered.camera_pose, stamp=f0.stamp + dt)
        res = pipe.result_from_tracking(frame, pipe.track(frame), 0.0)
        obj = res.objects[0]
        assert res.status == "found" and obj.source == "memory", (dt, res.reason)
        assert "covered" in obj.reason and "last detected position" in obj.reason
        np.testing.assert_allclose(res.target.grasp_base.position, anchor, atol=1e-9)
        assert res.target.grasp_base.stamp == frame.stamp  # restamped: consumers' age checks see a live report

    late = GroundingFrame(covered.rgb, covered.depth, INTR, covered.camera_pose, stamp=f0.stamp + 6.5)
    res = pipe.result_from_tracking(late, pipe.track(late), 0.0)
    assert all(o.source != "memory" for o in res.objects), res.reason  # held no longer than configured


def test_an_object_taken_away_is_not_found_not_remembered(memory, threshold):
    """Its old pixels now show the table behind it (farther, not closer): nothing is covered, so the
    pipeline says what it sees."""
    pipe = make_pipeline(memory, threshold)
    pipe.set_instruction("bring my cup to the tray")
    f0, _ = scene(TEST_LAYOUT, seed=1)
    pipe.accept_detection(pipe.detect(f0))
    gone, _ = scene(TEST_LAYOUT[1:], seed=3)
    frame = GroundingFrame(gone.rgb, gone.depth, INTR, gone.camera_pose, stamp=f0.stamp + 1.0)
    res = pipe.process(frame, force_detection=True)
    assert res.status == "not_found" and res.target is None, res.reason


def test_no_permanence_without_a_camera_pose_or_when_disabled(memory, threshold):
    for kw, posed in (({"occlusion_hold_s": 0.0}, True), ({}, False)):
        pipe = make_pipeline(memory, threshold, **kw)
        pipe.set_instruction("bring my cup to the tray")
        f0, _ = scene(TEST_LAYOUT, seed=1)
        f0 = GroundingFrame(f0.rgb, f0.depth, INTR, f0.camera_pose if posed else None, stamp=0.0)
        pipe.accept_detection(pipe.detect(f0))
        hidden, _ = scene(TEST_LAYOUT[1:], seed=3)
        frame = GroundingFrame(hidden.rgb, hidden.depth, INTR, f0.camera_pose, stamp=1.0)
        res = pipe.result_from_tracking(frame, pipe.track(frame), 0.0)
        assert res.status == "not_found", (kw, posed, res.reason)


def test_a_covered_object_keeps_its_detected_position_and_detections_through_the_cover_are_not_trusted(memory, threshold):
    """Something in front of my cup (the arm reaching for it): its pixels get closer to the camera.
    Neither the tracked nor a re-detected mask (both now include the occluder) may move the target."""
    pipe = make_pipeline(memory, threshold)
    pipe.set_instruction("bring my cup to the tray")
    f0, _ = scene(TEST_LAYOUT, seed=1)
    pipe.accept_detection(pipe.detect(f0))
    anchor = pipe.result_from_tracking(f0, pipe.track(f0), 0.0).target.grasp_base.position.copy()
    # a grey post between the camera and my cup, as tall as the camera's line of sight to it
    covered, _ = scene([*TEST_LAYOUT, Cylinder(0.60, 0.02, radius=0.035, height=0.16)], seed=4)
    frame = GroundingFrame(covered.rgb, covered.depth, INTR, covered.camera_pose, stamp=f0.stamp + 1.0)
    tracked = pipe.result_from_tracking(frame, pipe.track(frame), 0.0)
    assert tracked.objects[0].source == "memory" and "covered" in tracked.objects[0].reason, tracked.reason
    np.testing.assert_allclose(tracked.target.grasp_base.position, anchor)
    pipe.accept_detection(pipe.detect(frame))  # a detection through the cover does not re-anchor
    res = pipe.result_from_tracking(frame, pipe.track(frame), 0.0)
    np.testing.assert_allclose(res.target.grasp_base.position, anchor)
    # my cup pushed 6 cm aside, nothing in front: its old pixels got farther, the detection is believed
    moved_layout = [Cylinder(0.50, 0.08, texture=MINE, yaw=2.5), *TEST_LAYOUT[1:]]
    moved, _ = scene(moved_layout, seed=5)
    frame = GroundingFrame(moved.rgb, moved.depth, INTR, moved.camera_pose, stamp=f0.stamp + 2.0)
    res = pipe.process(frame, force_detection=True)
    assert res.status == "found" and res.objects[0].source == "detection", res.reason
    np.testing.assert_allclose(res.target.grasp_base.position[:2], [0.50, 0.08], atol=0.01)


def test_a_tracked_target_sliding_off_a_partly_covered_object_is_not_trusted(memory, threshold):
    """In the demo the grasp point slid 5-10 cm onto the descending gripper before 15 % of the mug was
    covered. With part of it covered, a tracked target that far from the detection is replaced."""
    from dataclasses import replace as dc_replace

    pipe = make_pipeline(memory, threshold)
    pipe.set_instruction("bring my cup to the tray")
    f0, _ = scene(TEST_LAYOUT, seed=1)
    pipe.accept_detection(pipe.detect(f0))
    anchor = pipe.result_from_tracking(f0, pipe.track(f0), 0.0).objects[0]
    sliver, _ = scene([*TEST_LAYOUT, Cylinder(0.60, 0.045, radius=0.008, height=0.16)], seed=3)
    frame = GroundingFrame(sliver.rgb, sliver.depth, INTR, sliver.camera_pose, stamp=f0.stamp + 0.5)
    covered = pipe._occluded(pipe._tracks[0].anchor, frame, frame.depth)
    assert 0.0 < covered < pipe.config.occluded_fraction, covered
    t = anchor.target
    for dz, trusted in ((0.10, False), (0.01, True)):
        moved = dc_replace(t, grasp_base=dc_replace(t.grasp_base, position=t.grasp_base.position + [0.0, 0.0, dz]))
        out = pipe._permanence(dc_replace(anchor, source="tracking", target=moved), frame, frame.depth)
        if trusted:
            assert out.source == "tracking", out.reason
        else:
            assert out.source == "memory" and "slides onto the occluder" in out.reason, out.reason
            np.testing.assert_allclose(out.target.grasp_base.position, t.grasp_base.position)
    # in plain view the same jump stands (an object really pushed by the robot)
    out = pipe._permanence(dc_replace(anchor, source="tracking", target=dc_replace(
        t, grasp_base=dc_replace(t.grasp_base, position=t.grasp_base.position + [0.0, 0.0, 0.10]))),
        GroundingFrame(f0.rgb, f0.depth, INTR, f0.camera_pose, stamp=f0.stamp + 0.5), f0.depth)
    assert out.source == "tracking"
