"""A learned linear metric for the offline `appearance` descriptor (a small shipped file, no weights downloaded).

Cosine similarity of the raw appearance descriptor ranks my mug first among look-alikes in 99 %
of simulated scenes, but its absolute value moves with lighting, viewpoint and the studio-vs-scene
difference between references and candidates, for my mug and the look-alikes alike; a single accept
threshold then either misses my mug or highlights a look-alike when mine is absent. The fix is the
classic one from person re-identification: learn which descriptor directions vary *within* an
instance across views and which vary *between* instances, and compare in a space where the first are
shrunk (Fisher LDA on the descriptor blocks, with shrinkage of the within-instance scatter).

Training data (`vla-stack train-grounding-metric`, about 10 min on 2 cores): simulated scenes on
seeds that neither the grounding evaluation (test 1000+, calibration 0-299) nor the demo (0-19) use;
for *every* mug of a scene, its studio reference renders (as enrolment takes them) and its crop as
the depth detector proposes it in the scene camera, labelled by IoU with the mug's segmentation.

`MetricProjection` is the fitted map: x -> l2((x - mean) @ matrix). Its file (`.npz`) also stores
the appearance-descriptor layout it was fitted on, so it is never applied to another one.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_PROJECTION = Path(__file__).with_name("data") / "appearance_metric.npz"
"""The projection this project trains and ships (reproduce: `vla-stack train-grounding-metric`)."""


@dataclass(frozen=True)
class MetricProjection:
    """x (D,) -> l2((x - mean) @ matrix) (K,).

    Args:
        mean: (D,) centre of the training descriptors.
        matrix: (D, K) projection.
        layout: descriptor layout it was fitted on (an `AppearanceEmbedder.layout` string).
        info: free text: how it was fitted (seeds, samples, dimensions).
    """

    mean: np.ndarray
    matrix: np.ndarray
    layout: str
    info: str = ""

    def __post_init__(self) -> None:
        if self.mean.ndim != 1 or self.matrix.ndim != 2 or self.matrix.shape[0] != self.mean.shape[0]:
            raise ValueError(f"projection shapes do not fit: mean {self.mean.shape}, matrix {self.matrix.shape}")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.matrix).all()):
            raise ValueError("projection contains NaN/inf")

    @property
    def input_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def output_dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def digest(self) -> str:
        """Short content hash (part of the embedder's version: other projections, other embeddings)."""
        h = hashlib.sha1()
        h.update(np.ascontiguousarray(self.mean, np.float32).tobytes())
        h.update(np.ascontiguousarray(self.matrix, np.float32).tobytes())
        return h.hexdigest()[:10]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, K) unit rows."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"expected (N, {self.input_dim}) descriptors, got {x.shape}")
        y = (x - self.mean) @ self.matrix
        n = np.linalg.norm(y, axis=1, keepdims=True)
        return y / np.maximum(n, 1e-12)

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()  # written in one go: a reader never sees half a file
        np.savez_compressed(buf, mean=self.mean.astype(np.float32), matrix=self.matrix.astype(np.float32),
                            layout=np.array(self.layout), info=np.array(self.info))
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> MetricProjection:
        """Raises FileNotFoundError (with the path) or ValueError (not a projection file)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"metric projection file not found: {path} (train one with `vla-stack train-grounding-metric`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(np.asarray(z["mean"], np.float64), np.asarray(z["matrix"], np.float64),
                           str(z["layout"]), str(z["info"]) if "info" in z else "")
        except (KeyError, OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a metric projection file: {exc}") from exc


def fit_lda(features: np.ndarray, labels: Sequence[int], dim: int, shrinkage: float = 0.1, layout: str = "",
            info: str = "") -> MetricProjection:
    """Fisher LDA with a shrunk within-class scatter.

    Args:
        features: (N, D) descriptors.
        labels: (N,) instance ids (>= 0; at least two samples of at least two instances).
        dim: output dimensions (<= D, <= number of instances - 1 is where LDA carries information).
        shrinkage: Sw <- (1 - s) Sw + s * mean(diag(Sw)) * I, 0..1 (a few hundred instances do not pin down
            every direction of a ~400-dimensional scatter).

    The columns are scaled so the within-class spread is unit in every kept direction (the
    generalized eigenvectors' normalisation); cosine similarity is then taken in that space.
    """
    x = np.asarray(features, np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or len(y) != len(x):
        raise ValueError(f"features (N, D) and N labels expected, got {x.shape} and {len(y)}")
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be 0..1, got {shrinkage}")
    classes, counts = np.unique(y[y >= 0], return_counts=True)
    classes = classes[counts >= 2]
    if len(classes) < 2:
        raise ValueError("LDA needs at least two instances with two or more samples each")
    keep = np.isin(y, classes)
    x, y = x[keep], y[keep]
    d = x.shape[1]
    if not 1 <= dim <= d:
        raise ValueError(f"dim must be 1..{d}, got {dim}")
    mean = x.mean(axis=0)
    sw = np.zeros((d, d))
    sb = np.zeros((d, d))
    for c in classes:
        xc = x[y == c]
        mc = xc.mean(axis=0)
        dc = xc - mc
        sw += dc.T @ dc
        dm = (mc - mean)[:, None]
        sb += len(xc) * (dm @ dm.T)
    sw /= len(x)
    sb /= len(x)
    sw = (1.0 - shrinkage) * sw + shrinkage * float(np.mean(np.diag(sw))) * np.eye(d)
    # generalized symmetric eigenproblem Sb v = l Sw v via Sw^-1/2
    evals, evecs = np.linalg.eigh(sw)
    evals = np.maximum(evals, 1e-12 * max(float(evals.max()), 1e-30))
    w_inv_sqrt = evecs @ np.diag(evals ** -0.5) @ evecs.T
    m = w_inv_sqrt @ sb @ w_inv_sqrt
    lvals, lvecs = np.linalg.eigh((m + m.T) / 2.0)
    order = np.argsort(lvals)[::-1][:dim]
    matrix = w_inv_sqrt @ lvecs[:, order]
    return MetricProjection(mean, matrix, layout, info)
