"""Per-object self-calibration at enrolment and the "per_object" decision (issue 13):
core/grounding/self_calibration.py, matching.ObjectRule / match(decision="per_object"), the
enrolment checks and atomic writes of memory.py, and the pipeline wiring. Synthetic data only."""

import json
import logging

import cv2
import numpy as np
import pytest
from grounding_synthetic import Cylinder, default_intrinsics, dots, look_at, plain, render

from vla_stack.core.grounding.embedders import AppearanceEmbedder, crop_object
from vla_stack.core.grounding.matching import MatchConfig, ObjectRule, match
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.core.grounding.pipeline import GroundingConfig, GroundingFrame, GroundingPipeline
from vla_stack.core.grounding.self_calibration import derive_rule, lookalike_variants

BASE = (226, 214, 196)
MINE = dots(BASE, (176, 70, 46))  # red dots
BLUE_TWIN = dots(BASE, (46, 70, 176))  # the same print in blue: a colour-only look-alike
GREEN_TWIN = dots(BASE, (60, 160, 60))
INTR = default_intrinsics()


def refs_of(texture, n=5, offset=0.3, seed=0):
    """Close-up renders of one cylinder from n azimuths on a grey backdrop (+ exact masks)."""
    views, masks = [], []
    intr = default_intrinsics(160, 160, 40.0)
    for i in range(n):
        az = 2 * np.pi * i / n + offset
        pos = [0.3 * np.cos(az), 0.3 * np.sin(az), 0.17]
        rgb, _, lab = render([Cylinder(0, 0, texture=texture)], look_at(pos, [0, 0, 0.045]), intr,
                             table_color=(120, 120, 125), table_center=(0, 0), table_half=(2, 2), seed=seed + i)
        views.append(rgb)
        masks.append(lab == 2)
    return views, masks


def camera():
    return look_at([1.15, 0.0, 0.65], [0.45, 0.0, 0.02])


def scene(cylinders, seed=0):
    rgb, depth, labels = render(cylinders, camera(), INTR, seed=seed)
    return GroundingFrame(rgb, depth, INTR, camera(), stamp=float(seed)), labels


@pytest.fixture(scope="module")
def embedder():
    return AppearanceEmbedder()


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, embedder):
    """A memory with my red-dotted mug enrolled with self-calibration."""
    mem = PersonalObjectMemory(tmp_path_factory.mktemp("calibrated"))
    views, masks = refs_of(MINE)
    mem.enroll("my_mug", views, "cup", embedder, masks=masks, self_calibrate=True)
    return mem


def rule(floor=0.90, confident=0.95, margin=0.02, version="test", top_k=2):
    return ObjectRule(floor, confident, margin, version, top_k)


def unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def candidates_scoring(scores, refs):
    """Unit embeddings whose cosine with every reference in `refs` (identical rows) is `scores`."""
    r = refs[0]
    ortho = unit(np.eye(len(r))[1] - r * r[1])
    return np.stack([s * r + np.sqrt(max(0.0, 1 - s * s)) * ortho for s in scores])


# ---- the rule is derived, stored, reloaded; stale rules ----------------------------------------
def test_rule_is_derived_at_enrolment_stored_and_reloaded(calibrated, embedder):
    obj = calibrated.get("my_mug")
    r = obj.rule
    assert r is not None and r.is_current(embedder.version, 2)
    assert -1.0 <= r.accept_threshold <= r.confident_threshold <= 1.0 and 0.0 < r.margin < 0.1
    assert r.positives == 5 * 10  # 5 held-out views, 9 augmentations each
    assert r.negatives > 0 and r.hardest_negative[0]
    assert 0.0 <= r.true_accept_rate <= 1.0 and 0.0 <= r.false_accept_rate <= 1.0
    meta = json.loads((obj.directory / "object.json").read_text())
    assert meta["decision_rule"]["embedder_version"] == embedder.version
    fresh = PersonalObjectMemory(calibrated.root).get("my_mug")
    assert fresh.rule == r
    assert PersonalObjectMemory(calibrated.root).decision_rule("my_mug", embedder) == r  # current: used as stored


def test_a_stale_rule_is_rederived_for_the_new_embedder_with_a_warning(tmp_path, embedder, caplog):
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(MINE, n=3)
    old = mem.enroll("mine", views, "cup", embedder, masks=masks, self_calibrate=True).rule
    other = AppearanceEmbedder(lbp_margin=3.0)
    assert other.version != embedder.version
    with caplog.at_level(logging.WARNING):
        new = PersonalObjectMemory(tmp_path).decision_rule("mine", other)
    assert "derived for embedder" in caplog.text and "re-deriving" in caplog.text
    assert new.embedder_version == other.version and new != old
    stored = json.loads((tmp_path / "mine" / "object.json").read_text())["decision_rule"]
    assert stored["embedder_version"] == other.version  # stored for next time
    # another top-k is stale too
    assert PersonalObjectMemory(tmp_path).decision_rule("mine", other, top_k=1).top_k == 1


def test_a_rule_is_rederived_when_another_object_of_its_category_is_enrolled(tmp_path, embedder, caplog):
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(MINE, n=3)
    first = mem.enroll("mine", views, "cup", embedder, masks=masks, self_calibrate=True).rule
    assert first.objects == ()
    blue, blue_masks = refs_of(BLUE_TWIN, n=3)
    assert mem.enroll("blue_mug", blue, "cup", embedder, masks=blue_masks, self_calibrate=True).rule.objects == ("mine",)
    plate, plate_masks = refs_of(GREEN_TWIN, n=3)
    mem.enroll("plate", plate, "plate", embedder, masks=plate_masks)  # another category: not a negative of a cup
    with caplog.at_level(logging.INFO):
        again = PersonalObjectMemory(tmp_path).decision_rule("mine", embedder)
    assert "enrolled objects changed" in caplog.text
    assert again.objects == ("blue_mug",) and again.negatives > first.negatives
    assert PersonalObjectMemory(tmp_path).get("mine").rule == again  # stored


def test_a_malformed_stored_rule_is_ignored_and_rederived(tmp_path, embedder, caplog):
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(MINE, n=3)
    mem.enroll("mine", views, "cup", embedder, masks=masks, self_calibrate=True)
    path = tmp_path / "mine" / "object.json"
    meta = json.loads(path.read_text())
    meta["decision_rule"]["accept_threshold"] = "high"
    path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        fresh = PersonalObjectMemory(tmp_path)
        assert fresh.get("mine").rule is None
    assert "ignoring the decision rule" in caplog.text
    assert fresh.decision_rule("mine", embedder).is_current(embedder.version, 2)


def test_rule_dict_round_trip_and_validation():
    r = ObjectRule(0.9, 0.95, 0.02, "appearance-v4:x", 2, true_accept_rate=0.9, false_accept_rate=0.01,
                   ambiguous_rate=0.03, hardest_negative=("mirrored", 0.93), warnings=("hard to tell apart",))
    text = json.dumps(r.to_dict(), allow_nan=False)
    assert ObjectRule.from_dict(json.loads(text)) == r
    unknown = ObjectRule(0.9, 0.95, 0.02, "x", 2)  # rates not known (NaN) are stored as null: strict JSON
    back = ObjectRule.from_dict(json.loads(json.dumps(unknown.to_dict(), allow_nan=False)))
    assert np.isnan(back.false_accept_rate) and back.accept_threshold == 0.9
    with pytest.raises(ValueError, match="confident_threshold"):
        ObjectRule(0.9, 0.8, 0.02, "x", 2)
    with pytest.raises(ValueError, match="margin"):
        ObjectRule(0.9, 0.95, -0.1, "x", 2)
    with pytest.raises(ValueError, match="malformed"):
        ObjectRule.from_dict({"accept_threshold": 0.9})


# ---- the per_object decision --------------------------------------------------------------------
def test_global_stays_the_default_and_ignores_a_rule():
    assert MatchConfig().decision == "global"
    with pytest.raises(ValueError, match="decision"):
        MatchConfig(decision="local")
    refs = np.eye(4)[:1]
    props = candidates_scoring([0.99, 0.5], refs)
    strict = rule(floor=0.999, confident=0.999)  # would reject everything
    a = match(props, refs, MatchConfig())
    b = match(props, refs, MatchConfig(), rule=strict)
    assert a.status == b.status == "found" and a.reason == b.reason


def test_per_object_accepts_a_clear_winner():
    refs = np.eye(4)[:1]
    res = match(candidates_scoring([0.60, 0.93, 0.85], refs), refs, MatchConfig(decision="per_object"), rule=rule())
    assert res.status == "found" and res.index == 1, res.reason
    assert "margin" in res.reason


def test_per_object_is_ambiguous_on_two_close_candidates_and_lists_them():
    refs = np.eye(4)[:1]
    res = match(candidates_scoring([0.931, 0.60, 0.925], refs), refs, MatchConfig(decision="per_object"), rule=rule())
    assert res.status == "ambiguous", res.reason
    assert {res.index, res.runner_up} == {0, 2}
    assert "#0 0.931" in res.reason and "#2 0.925" in res.reason and "#1 0.600" in res.reason


def test_per_object_floor_and_lone_candidate():
    refs = np.eye(4)[:1]
    cfg = MatchConfig(decision="per_object")
    below = match(candidates_scoring([0.89, 0.5], refs), refs, cfg, rule=rule())
    assert below.status == "not_found" and "floor" in below.reason
    lone = match(candidates_scoring([0.93], refs), refs, cfg, rule=rule())  # above the floor, below confident
    assert lone.status == "not_found" and "confident" in lone.reason
    assert match(candidates_scoring([0.96], refs), refs, cfg, rule=rule()).status == "found"
    # no rule: the global rule decides, and says so
    assert "no per-object rule" in match(candidates_scoring([0.96], refs), refs, cfg).reason


def test_per_object_never_picks_a_look_alike_of_my_enrolled_mug(calibrated, embedder):
    """New views (other azimuths, other noise) of my mug and of colour-only look-alikes, scored
    as proposals: my mug beside look-alikes is found; look-alikes alone are never accepted."""
    refs = calibrated.reference_embeddings("my_mug", embedder)
    r = calibrated.get("my_mug").rule
    cfg = MatchConfig(decision="per_object")

    def crops(texture, k):
        v, m = refs_of(texture, n=3, offset=1.1 + 0.4 * k, seed=40 + 10 * k)
        return embedder.embed_crops([crop_object(a, b) for a, b in zip(v, m, strict=True)])

    mine, blue, green = crops(MINE, 0), crops(BLUE_TWIN, 1), crops(GREEN_TWIN, 2)
    for k in range(3):
        res = match(np.stack([blue[k], mine[k], green[k]]), refs, cfg, rule=r)
        assert res.status == "found" and res.index == 1, res.reason
        for alone in ([blue[k]], [green[k]], [blue[k], green[k]]):
            res = match(np.stack(alone), refs, cfg, rule=r)
            assert res.status != "found", res.reason
        # my mug twice (an identical twin in view): ambiguous, never a coin toss
        twin = match(np.stack([mine[k], mine[(k + 1) % 3], blue[k]]), refs, cfg, rule=r)
        assert twin.status == "ambiguous", twin.reason


def test_derive_rule_sees_colour_variants_as_negatives_and_warns_when_variants_look_alike(embedder):
    views, masks = refs_of(MINE, n=4)
    crops = [crop_object(v, m) for v, m in zip(views, masks, strict=True)]
    rep = derive_rule(crops, embedder)
    assert {"hue+60", "hue+120", "hue+180", "colour-shifted"} <= set(rep.negative_scores)
    for name in ("hue+60", "hue+120", "hue+180"):
        assert np.max(rep.negative_scores[name]) < rep.rule.accept_threshold, name  # rejected by its own rule
    # the dots print is symmetric: rotated/mirrored views score like the mug itself -> a warning, not a floor of 1
    assert any("hard to tell apart" in w for w in rep.rule.warnings)
    assert rep.rule.accept_threshold < np.median(rep.positive_scores)
    assert rep.seconds > 0


def test_a_colourless_plain_object_has_no_generated_look_alikes():
    grey = plain((150, 150, 150))
    views, masks = refs_of(grey, n=1)
    crop = crop_object(views[0], masks[0])
    names = [n for n, _ in lookalike_variants(crop)]
    assert not {"hue+60", "hue+120", "hue+180", "colour-shifted"} & set(names)


# ---- enrolment: bad input, nothing half-written -------------------------------------------------
def leftovers(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_enrolment_refuses_black_blurred_and_duplicate_photos(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(MINE, n=4)
    black = [v.copy() for v in views]
    black[2] = (black[2] * 0.02).astype(np.uint8)
    with pytest.raises(ValueError, match="reference 2 is black"):
        mem.enroll("a", black, "cup", embedder, masks=masks, self_calibrate=True)
    blank = [v.copy() for v in views]
    blank[3][:] = 128
    with pytest.raises(ValueError, match="reference 3 is blank"):
        mem.enroll("a", blank, "cup", embedder, masks=masks, self_calibrate=True)
    blurred = [v.copy() for v in views]
    blurred[1] = cv2.GaussianBlur(blurred[1], (0, 0), 3.0)
    with pytest.raises(ValueError, match="reference 1 is blurred"):
        mem.enroll("a", blurred, "cup", embedder, masks=masks, self_calibrate=True)
    dup = [views[0], views[1], views[0].copy()]
    with pytest.raises(ValueError, match="reference 2 is a duplicate of reference 0"):
        mem.enroll("a", dup, "cup", embedder, masks=[masks[0], masks[1], masks[0]], self_calibrate=True)
    f = tmp_path / "photo.png"
    cv2.imwrite(str(f), views[0][:, :, ::-1])
    with pytest.raises(ValueError, match="given twice"):
        mem.enroll("a", [f, f], "cup", embedder, self_calibrate=True)
    assert mem.names() == [] and leftovers(tmp_path) == []  # nothing half-written
    # without self-calibration (the lab's evaluations) enrolment is as before
    assert mem.enroll("a", blurred, "cup", embedder, masks=masks).rule is None


def test_enrolment_refuses_an_object_identical_to_an_enrolled_one(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(MINE, n=4)
    mem.enroll("mine", views, "cup", embedder, masks=masks, self_calibrate=True)
    again, again_masks = refs_of(MINE, n=4, offset=0.9, seed=20)  # the same mug, photographed again
    with pytest.raises(ValueError, match="looks identical to the enrolled object 'mine'"):
        mem.enroll("mine_again", again, "cup", embedder, masks=again_masks, self_calibrate=True)
    assert PersonalObjectMemory(tmp_path).names() == ["mine"] and leftovers(tmp_path) == []
    # replacing the object itself is allowed (it is not compared with its old self)
    assert mem.enroll("mine", again, "cup", embedder, masks=again_masks, overwrite=True, self_calibrate=True).rule
    # a colour-only look-alike is a different object: enrolled, and each is the other's negative
    blue, blue_masks = refs_of(BLUE_TWIN, n=4)
    other = mem.enroll("blue_mug", blue, "cup", embedder, masks=blue_masks, self_calibrate=True)
    assert other.rule.negatives > 0


def test_an_identical_enrolled_object_is_not_used_as_a_negative_when_rederiving(tmp_path, embedder, caplog):
    """The lab enrols the same mug twice (masks and automatic segmentation): the per_object rule
    must not make either unfindable."""
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(MINE, n=4)
    mem.enroll("my_mug", views, "cup", embedder, masks=masks)
    mem.enroll("my_mug_copy", views, "cup", embedder, masks=masks)
    with caplog.at_level(logging.WARNING):
        r = mem.decision_rule("my_mug", embedder)
    assert "'my_mug_copy' scores like this object's own views" in caplog.text
    assert r.accept_threshold < 1.0 and r.true_accept_rate > 0.5
    rep = derive_rule(mem.get("my_mug").crops, embedder, others={"my_mug_copy": mem.reference_embeddings("my_mug_copy", embedder)})
    assert [n for n, _ in rep.identical] == ["my_mug_copy"] and "my_mug_copy" not in rep.negative_scores


def test_no_look_alikes_available_is_said_plainly(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(plain((150, 150, 150)), n=3)
    obj = mem.enroll("grey_mug", views, "cup", embedder, masks=masks, self_calibrate=True)
    assert any("no usable look-alike" in w for w in obj.rule.warnings), obj.rule.warnings
    assert obj.rule.accept_threshold <= 1.0


def test_not_mine_photos_are_stored_and_used_as_negatives(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(MINE, n=3)
    other, _ = refs_of(BLUE_TWIN, n=1)
    f = tmp_path / "not_mine.png"
    cv2.imwrite(str(f), other[0][:, :, ::-1])
    obj = mem.enroll("mine", views, "cup", embedder, masks=masks, not_mine=[f], self_calibrate=True)
    assert (tmp_path / "mine" / "neg_00.png").is_file() and len(obj.negatives) == 1
    fresh = PersonalObjectMemory(tmp_path).get("mine")
    assert len(fresh.negatives) == 1
    rep = derive_rule(fresh.crops, embedder, not_mine=fresh.negatives)
    assert "not-mine #0" in rep.negative_scores


def test_a_failed_write_leaves_the_old_object_whole_and_no_temporary_files(tmp_path, embedder, monkeypatch):
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(MINE, n=2)
    mem.enroll("mine", views, "cup", embedder, masks=masks)
    calls = {"n": 0}
    real = cv2.imwrite

    def failing(path, img, *a):
        calls["n"] += 1
        return False if calls["n"] == 3 else real(path, img, *a)

    monkeypatch.setattr(cv2, "imwrite", failing)
    with pytest.raises(OSError, match="cannot write"):
        mem.enroll("mine", views, "mug", embedder, masks=masks, overwrite=True)  # the 2nd reference fails
    monkeypatch.setattr(cv2, "imwrite", real)
    fresh = PersonalObjectMemory(tmp_path).get("mine")
    assert fresh.category == "cup" and len(fresh.crops) == 2  # the old object, whole
    assert leftovers(tmp_path) == []


# ---- pipeline ---------------------------------------------------------------------------------------
def test_pipeline_per_object_finds_mine_beside_a_colour_twin_and_highlights_nothing_when_absent(calibrated, embedder):
    pipe = GroundingPipeline(GroundingConfig(matching=MatchConfig(decision="per_object")), calibrated, embedder=embedder)
    pipe.set_instruction("bring my mug")
    layout = [Cylinder(0.50, 0.02, texture=MINE, yaw=2.5), Cylinder(0.42, 0.17, texture=BLUE_TWIN, yaw=1.1)]
    frame, labels = scene(layout, seed=1)
    res = pipe.process(frame)
    assert res.status == "found", res.reason
    assert (res.mask & (labels == 2)).sum() > 0.8 * res.mask.sum()
    pipe.reset()
    frame, _ = scene(layout[1:], seed=2)
    res = pipe.process(frame)
    assert res.status != "found", res.reason
    assert not res.mask.any() and np.array_equal(res.highlighted, frame.rgb)


def test_pipeline_per_object_twins_are_ambiguous_with_the_candidates_in_the_reason(calibrated, embedder):
    pipe = GroundingPipeline(GroundingConfig(matching=MatchConfig(decision="per_object")), calibrated, embedder=embedder)
    pipe.set_instruction("bring my mug")
    frame, _ = scene([Cylinder(0.48, -0.08, texture=MINE, yaw=0.4), Cylinder(0.48, 0.10, texture=MINE, yaw=0.4)], seed=3)
    res = pipe.process(frame)
    assert res.status == "ambiguous", res.reason
    og = res.objects[0]
    assert og.runner_up is not None and len(og.candidates) == 2
    assert "cannot tell which one is mine" in res.reason and "candidates:" in res.reason
    assert not res.mask.any() and np.array_equal(res.highlighted, frame.rgb)


def test_pipeline_per_object_derives_a_missing_rule_once_and_stores_it(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path)
    views, masks = refs_of(MINE, n=3)
    mem.enroll("my_mug", views, "cup", embedder, masks=masks)  # no self-calibration: no rule
    assert mem.get("my_mug").rule is None
    GroundingPipeline(GroundingConfig(matching=MatchConfig(decision="per_object")), mem, embedder=embedder).set_targets(["my_mug"])
    assert PersonalObjectMemory(tmp_path).get("my_mug").rule is not None
    # the global decision never derives one
    mem2 = PersonalObjectMemory(tmp_path / "b")
    mem2.enroll("my_mug", views, "cup", embedder, masks=masks)
    GroundingPipeline(GroundingConfig(), mem2, embedder=embedder).set_targets(["my_mug"])
    assert PersonalObjectMemory(tmp_path / "b").get("my_mug").rule is None
