"""Instance matching: found / not found / ambiguous, ensemble votes, calibration (core/grounding/matching.py)."""

import numpy as np
import pytest

from vla_stack.core.grounding.matching import (
    MatchConfig,
    calibrate_threshold,
    cosine_matrix,
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
