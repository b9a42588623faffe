"""Instance matching: found / not found / ambiguous, ensemble votes, calibration (core/grounding/matching.py)."""

import numpy as np
import pytest

from vla_stack.core.grounding.matching import (
    MatchConfig,
    calibrate_decision,
    calibrate_threshold,
    cosine_matrix,
    decide,
    distance_ratio,
    ensemble_scores,
    match,
)


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def around(direction, n, spread, rng):
    """n unit vectors near `direction` (noise `spread` per component)."""
    d = unit(direction)
    return np.stack([unit(d + spread * rng.normal(size=d.shape)) for _ in range(n)])


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_found_picks_the_instance_near_the_references(rng):
    dim = 32
    mine, other1, other2 = (unit(rng.normal(size=dim)) for _ in range(3))
    refs = around(mine, 5, 0.03, rng)
    props = np.stack([other1, around(mine, 1, 0.03, rng)[0], other2])
    res = match(props, refs, MatchConfig(accept_threshold=0.8))
    assert res.status == "found"
    assert res.index == 1
    assert res.votes[1] == 5 and res.votes.sum() == 5
    assert res.scores[1] > 0.9 > max(res.scores[0], res.scores[2])
    assert res.similarity.shape == (3, 5)


def test_not_found_when_nothing_reaches_the_threshold(rng):
    dim = 32
    refs = around(rng.normal(size=dim), 5, 0.1, rng)
    props = np.stack([unit(rng.normal(size=dim)) for _ in range(4)])
    res = match(props, refs, MatchConfig(accept_threshold=0.8))
    assert res.status == "not_found"
    assert res.votes.sum() == 0
    assert "threshold" in res.reason
    assert res.index is not None  # the best candidate is still reported (with its score)


def test_ambiguous_when_two_candidates_match_almost_equally(rng):
    dim = 32
    mine = unit(rng.normal(size=dim))
    refs = around(mine, 6, 0.05, rng)
    twin_a, twin_b = around(mine, 2, 0.05, rng)
    props = np.stack([twin_a, unit(rng.normal(size=dim)), twin_b])
    cfg = MatchConfig(accept_threshold=0.8, ambiguity_margin=0.05)
    res = match(props, refs, cfg)
    assert res.status == "ambiguous"
    assert {res.index, res.runner_up} == {0, 2}
    assert abs(res.scores[0] - res.scores[2]) < 0.05
    assert "almost equally" in res.reason or "disagree" in res.reason


def test_clear_margin_is_not_ambiguous(rng):
    dim = 32
    mine = unit(rng.normal(size=dim))
    refs = around(mine, 5, 0.02, rng)
    props = np.stack([around(mine, 1, 0.02, rng)[0], around(mine, 1, 0.6, rng)[0]])
    res = match(props, refs, MatchConfig(accept_threshold=0.5, ambiguity_margin=0.02))
    assert res.scores[0] - res.scores[1] > 0.02
    assert res.status == "found" and res.index == 0


def test_no_candidates_and_exclusion(rng):
    refs = around(rng.normal(size=8), 3, 0.1, rng)
    res = match(np.zeros((0, 8)), refs)
    assert res.status == "no_candidates" and res.index is None
    props = np.stack([refs[0], refs[1]])
    res = match(props, refs, MatchConfig(accept_threshold=0.5, ambiguity_margin=0.0), excluded=[0])
    assert res.index == 1 and res.votes[0] == 0 and res.scores[0] == -np.inf


def test_matching_rejects_bad_shapes():
    with pytest.raises(ValueError):
        match(np.ones((2, 4)), np.zeros((0, 4)))
    with pytest.raises(ValueError):
        cosine_matrix(np.ones((2, 4)), np.ones((2, 5)))


def test_nan_embeddings_do_not_match():
    refs = np.eye(4)[:2]
    props = np.array([[np.nan] * 4, [1.0, 0, 0, 0]])
    res = match(props, refs, MatchConfig(accept_threshold=0.6, top_k=1))
    assert res.index == 1 and res.scores[0] == -1.0


def test_ensemble_scores_use_top_k():
    sim = np.array([[0.1, 0.9, 0.8, 0.2], [0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_allclose(ensemble_scores(sim, 2), [0.85, 0.5])
    np.testing.assert_allclose(ensemble_scores(sim, 10), [0.5, 0.5])


def test_calibrate_threshold_bounds_false_accepts():
    rng = np.random.default_rng(0)
    neg = rng.normal(0.7, 0.03, 400)
    pos = rng.normal(0.9, 0.02, 100)
    thr = calibrate_threshold(pos, neg, max_false_accept=0.01)
    assert np.mean(neg >= thr) <= 0.01
    assert np.mean(pos >= thr) > 0.95
    strict = calibrate_threshold(pos, neg, max_false_accept=0.0)
    assert np.all(neg < strict)
    with pytest.raises(ValueError):
        calibrate_threshold([], neg)


def test_match_config_validation():
    with pytest.raises(ValueError):
        MatchConfig(accept_threshold=2.0)
    with pytest.raises(ValueError):
        MatchConfig(top_k=0)


def _props_with_scores(refs, targets, rng):
    """Proposal embeddings whose top-k ensemble scores against `refs` are close to `targets`."""
    mean = unit(refs.mean(axis=0))
    out = []
    for t in targets:
        ortho = unit(rng.normal(size=mean.shape))
        ortho = unit(ortho - (ortho @ mean) * mean)
        out.append(t * mean + np.sqrt(max(0.0, 1 - t * t)) * ortho)
    return np.stack(out)


def test_ratio_test_accepts_a_clear_winner_below_the_confident_threshold(rng):
    dim = 64
    refs = np.tile(unit(rng.normal(size=dim)), (4, 1))
    cfg = MatchConfig(accept_threshold=0.9, confident_threshold=0.99, max_distance_ratio=0.5, ambiguity_margin=0.0)
    # winner 0.97 vs runner-up 0.90: distance ratio 0.03 / 0.10 = 0.3 -> found
    res = match(_props_with_scores(refs, [0.90, 0.97], rng), refs, cfg)
    assert res.status == "found" and res.index == 1 and "distance ratio" in res.reason
    # winner 0.97 vs 0.955: ratio 0.67 > 0.5 -> not found (does not stand out), nothing guessed
    res = match(_props_with_scores(refs, [0.955, 0.97], rng), refs, cfg)
    assert res.status == "not_found" and "does not stand out" in res.reason
    # a lone candidate needs the confident threshold
    res = match(_props_with_scores(refs, [0.97], rng), refs, cfg)
    assert res.status == "not_found" and "only candidate" in res.reason
    res = match(_props_with_scores(refs, [0.995], rng), refs, cfg)
    assert res.status == "found"
    # below the floor nothing is accepted, however clear the margin
    res = match(_props_with_scores(refs, [0.5, 0.89], rng), refs, cfg)
    assert res.status == "not_found"


def test_ambiguous_still_reported_with_the_ratio_rule(rng):
    dim = 64
    refs = np.tile(unit(rng.normal(size=dim)), (4, 1))
    cfg = MatchConfig(accept_threshold=0.9, confident_threshold=0.95, max_distance_ratio=0.5, ambiguity_margin=0.01)
    res = match(_props_with_scores(refs, [0.965, 0.97], rng), refs, cfg)
    assert res.status == "ambiguous" and {res.index, res.runner_up} == {0, 1}


def test_decide_matches_the_rule():
    assert decide([], 0.9, 0.95, 0.5) is None
    assert decide([0.96], 0.9, 0.95, 0.5) == 0
    assert decide([0.93], 0.9, 0.95, 0.5) is None
    assert decide([0.8, 0.93], 0.9, 0.95, 0.5) == 1  # ratio 0.07 / 0.2
    assert decide([0.92, 0.93], 0.9, 0.95, 0.5) is None
    assert decide([0.92, 0.93], 0.9, 0.95, 0.0) is None  # ratio test off
    assert distance_ratio(0.97, 0.9) == pytest.approx(0.3)


def test_calibrate_decision_bounds_false_accepts_and_uses_the_scene():
    rng = np.random.default_rng(1)
    positives, negatives = [], []
    for _ in range(300):
        level = rng.uniform(0.85, 0.95)  # per-scene look-alike level (lighting, colour family)
        others = list(level + rng.normal(0, 0.01, rng.integers(1, 4)))
        mine = min(0.999, level + rng.uniform(0.03, 0.05))
        positives.append(([mine, *others], 0))
        negatives.append(others)
    rule = calibrate_decision(positives, negatives, max_false_accept=0.02)
    t = (rule["accept_threshold"], rule["confident_threshold"], rule["max_distance_ratio"])
    fa = np.mean([decide(s, *t) is not None for s in negatives])
    assert fa <= 0.02 and rule["false_accept_rate"] == pytest.approx(fa)
    ok = np.mean([decide(s, *t) == i for s, i in positives])
    assert ok == pytest.approx(rule["correct_rate"])
    # an absolute threshold alone does worse on the same scenes at the same false-accept bound
    thr = calibrate_threshold([p[0][0] for p in positives], [max(n) for n in negatives], 0.02)
    assert ok > np.mean([s[0] >= thr for s, _ in positives])
    with pytest.raises(ValueError):
        calibrate_decision([], negatives)


def test_calibrate_decision_grid_follows_the_embedders_score_scale():
    """A learned metric scores far below raw cosine (here 0.2..0.6): the default grids come from the
    scores themselves, so the rule still separates (a fixed 0.80..0.995 grid would accept nothing)."""
    rng = np.random.default_rng(2)
    positives, negatives = [], []
    for _ in range(200):
        others = list(rng.uniform(0.1, 0.35, rng.integers(1, 4)))
        positives.append(([rng.uniform(0.45, 0.65), *others], 0))
        negatives.append(others)
    rule = calibrate_decision(positives, negatives, max_false_accept=0.01)
    assert 0.35 <= rule["accept_threshold"] <= 0.45 + 1e-9
    assert rule["correct_rate"] == 1.0 and rule["false_accept_rate"] <= 0.01


def test_confident_threshold_defaults_and_validation():
    cfg = MatchConfig(accept_threshold=0.8, confident_threshold=None)
    assert cfg.confident_threshold == 0.8  # absolute rule only
    assert MatchConfig(accept_threshold=0.9, confident_threshold=0.5).confident_threshold == 0.9  # never below the floor
    with pytest.raises(ValueError):
        MatchConfig(max_distance_ratio=1.5)
    with pytest.raises(ValueError):
        MatchConfig(confident_threshold=3.0)
    d = MatchConfig()
    assert d.accept_threshold <= d.confident_threshold
