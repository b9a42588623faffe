"""Learned metric of the appearance descriptor (core/grounding/metric.py) and its use by the embedder."""

import numpy as np
import pytest

from vla_stack.core.grounding.embedders import AppearanceEmbedder
from vla_stack.core.grounding.matching import cosine_matrix
from vla_stack.core.grounding.metric import DEFAULT_PROJECTION, MetricProjection, fit_lda


def nuisance_data(n_inst=60, per=6, d=20, seed=0):
    """Instances differ in a weak 4-d subspace; a strong view nuisance lives in the other directions."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_inst, d))
    centres[:, :4] = rng.normal(0, 1.0, (n_inst, 4))
    x, y = [], []
    for i in range(n_inst):
        noise = rng.normal(0, 0.05, (per, d))
        noise[:, 4:] += rng.normal(0, 3.0, (per, d - 4))  # view/lighting nuisance, larger than identity
        x.append(centres[i] + noise)
        y += [i] * per
    return np.concatenate(x), np.array(y)


def rank1(emb, labels):
    """Share of samples whose nearest other sample (cosine) is the same instance."""
    s = cosine_matrix(emb, emb)
    np.fill_diagonal(s, -np.inf)
    return float(np.mean(labels[np.argmax(s, axis=1)] == labels))


def test_lda_shrinks_the_within_instance_nuisance():
    x, y = nuisance_data()
    xt, yt = nuisance_data(seed=1)  # the same kind of data, other instances: generalisation, not memory
    proj = fit_lda(x, y, dim=4, shrinkage=0.05)
    assert rank1(xt, yt) < 0.5  # raw cosine: the nuisance dominates
    assert rank1(proj.apply(xt), yt) > 0.9
    out = proj.apply(xt)
    assert out.shape == (len(xt), 4) and np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_fit_lda_rejects_unusable_input():
    x, y = nuisance_data(n_inst=3)
    with pytest.raises(ValueError, match="two instances"):
        fit_lda(x, np.r_[np.zeros(len(x) - 1, int), 1], dim=2)
    with pytest.raises(ValueError, match="dim"):
        fit_lda(x, y, dim=0)
    with pytest.raises(ValueError, match="shrinkage"):
        fit_lda(x, y, dim=2, shrinkage=1.5)
    with pytest.raises(ValueError, match="labels"):
        fit_lda(x, y[:-1], dim=2)


def test_projection_file_round_trip_and_errors(tmp_path):
    x, y = nuisance_data()
    proj = fit_lda(x, y, dim=3, layout="L", info="test")
    path = proj.save(tmp_path / "p.npz")
    back = MetricProjection.load(path)
    assert back.layout == "L" and back.info == "test" and back.digest == proj.digest
    np.testing.assert_allclose(back.apply(x[:5]), proj.apply(x[:5]), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 20\)"):
        proj.apply(np.zeros((2, 7)))
    with pytest.raises(FileNotFoundError, match="train-grounding-metric"):
        MetricProjection.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a metric projection"):
        MetricProjection.load(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="NaN"):
        MetricProjection(np.zeros(2), np.full((2, 1), np.nan), "L")


def test_embedder_uses_the_shipped_projection_and_refuses_a_foreign_one(tmp_path):
    assert DEFAULT_PROJECTION.is_file(), "the shipped projection is missing (vla-stack train-grounding-metric)"
    projected, raw = AppearanceEmbedder(), AppearanceEmbedder(projection="none")
    assert projected.projection is not None and raw.projection is None
    assert projected.version != raw.version and projected.dim == projected.projection.output_dim
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (60, 40, 3), dtype=np.uint8)
    e = projected.embed(img, bbox=(0, 0, 40, 60))
    assert e.shape == (projected.dim,) and np.isfinite(e).all() and abs(np.linalg.norm(e) - 1) < 1e-5
    np.testing.assert_allclose(projected.projection.apply(raw.features([raw_crop(img)]))[0], e, atol=1e-5)
    x, y = nuisance_data(d=raw.feature_dim, n_inst=10)
    fit_lda(x, y, dim=2, layout="another-layout").save(tmp_path / "foreign.npz")
    with pytest.raises(ValueError, match="retrain"):
        AppearanceEmbedder(projection=str(tmp_path / "foreign.npz"))
    hand_tuned = AppearanceEmbedder(lbp_margin=3.0)  # other descriptor parameters: the shipped metric cannot apply
    assert hand_tuned.projection is None and hand_tuned.version.startswith("appearance-v3")
    # a projection fitted on this layout, from a path: used, and its own version
    fit_lda(x, y, dim=2, layout=raw.layout).save(tmp_path / "mine.npz")
    own = AppearanceEmbedder(projection=str(tmp_path / "mine.npz"))
    assert own.dim == 2 and own.version not in (projected.version, raw.version)


def raw_crop(img):
    from vla_stack.core.grounding.embedders import crop_object

    return crop_object(img, bbox=(0, 0, img.shape[1], img.shape[0]))
