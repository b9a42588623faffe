"""Instance matching: which proposal (if any) is the enrolled personal object.

For P proposal embeddings and R reference embeddings (unit vectors) the similarity matrix is
S = cosine(P x R). Following the VAP recipe, the references form an ensemble:

- every reference votes for the proposal most similar to it, if that similarity reaches the
  accept threshold (a reference that sees nothing like itself abstains);
- each proposal's score is the mean of its `top_k` highest similarities to the references
  (robust to a few references seen from an unhelpful side);
- the winner is the proposal with the most votes (ties: higher score). It is accepted when its
  score reaches `accept_threshold` and it holds at least `min_vote_fraction` of the votes cast;
- when the runner-up also reaches the threshold and trails the winner by less than
  `ambiguity_margin` in score, the result is "ambiguous" and both are reported: the caller must
  not highlight a coin toss.

`calibrate_threshold` picks the accept threshold from scores of known matches and known
non-matches (e.g. scenes rendered by seed with look-alikes), for a target false-accept rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

MatchStatus = Literal["found", "not_found", "ambiguous", "no_candidates"]


@dataclass
class MatchConfig:
    """Parameters of instance matching.

    The defaults fit the `appearance` embedder: calibrated on simulated look-alike mug scenes
    with lighting and camera jitter (`vla-stack eval-grounding --calibrate 40`: seeds 0-39,
    2 % false accepts on scenes without the mug). It favours "not found" over highlighting a
    look-alike. Other embedders (dinov2) and real cameras need their own threshold: see
    `calibrate_threshold`.
    """

    accept_threshold: float = field(
        default=0.98,
        metadata={"help": "Lowest ensemble score (cosine similarity) accepted as the personal object; "
                  "embedder-specific, recalibrate with calibrate_threshold (vla-stack eval-grounding --calibrate)"},
    )
    ambiguity_margin: float = field(
        default=0.005, metadata={"help": "Runner-up within this score of the winner (both accepted) = ambiguous"}
    )
    top_k: int = field(default=2, metadata={"help": "A proposal's score is the mean of its top-k reference similarities"})
    min_vote_fraction: float = field(
        default=0.34, metadata={"help": "The winner must hold at least this fraction of the references' votes"}
    )

    def __post_init__(self) -> None:
        if not -1.0 <= self.accept_threshold <= 1.0:
            raise ValueError(f"accept_threshold must be a cosine similarity in -1..1, got {self.accept_threshold}")
        if not 0.0 <= self.ambiguity_margin < 1.0:
            raise ValueError(f"ambiguity_margin must be in 0..1, got {self.ambiguity_margin}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 <= self.min_vote_fraction <= 1.0:
            raise ValueError(f"min_vote_fraction must be in 0..1, got {self.min_vote_fraction}")


@dataclass(frozen=True)
class MatchResult:
    """Outcome of matching one personal object against the proposals of a frame.

    Args:
        status: "found", "not_found", "ambiguous" or "no_candidates".
        index: winning proposal (found), best proposal (ambiguous / not_found with candidates), or None.
        runner_up: second proposal when ambiguous (else the second-best, or None).
        scores: (P,) ensemble score of every proposal.
        votes: (P,) references that voted for each proposal.
        similarity: (P, R) cosine similarities.
        reason: human-readable explanation for the status.
    """

    status: MatchStatus
    index: int | None
    runner_up: int | None
    scores: np.ndarray
    votes: np.ndarray
    similarity: np.ndarray
    reason: str = ""

    @property
    def best_score(self) -> float:
        """Score of `index` (NaN when there is none)."""
        return float(self.scores[self.index]) if self.index is not None else float("nan")


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) cosine similarities of two sets of vectors (normalised here, NaN-safe)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding shapes do not match: {a.shape} vs {b.shape}")
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.nan_to_num(an @ bn.T, nan=-1.0)


def ensemble_scores(similarity: np.ndarray, top_k: int) -> np.ndarray:
    """(P,) mean of each row's `top_k` largest similarities (all of them when R < top_k)."""
    if similarity.size == 0:
        return np.zeros(similarity.shape[0])
    k = min(top_k, similarity.shape[1])
    return np.sort(similarity, axis=1)[:, -k:].mean(axis=1)


def match(
    proposal_embeddings: np.ndarray,
    reference_embeddings: np.ndarray,
    config: MatchConfig | None = None,
    excluded: Sequence[int] = (),
) -> MatchResult:
    """Pick the proposal that is the personal object (see the module doc).

    Args:
        proposal_embeddings: (P, D).
        reference_embeddings: (R, D), R >= 1.
        config: MatchConfig.
        excluded: proposal indices already taken by another personal object of the same
            instruction (they get score -inf and no votes).

    Returns:
        MatchResult.
    """
    cfg = config or MatchConfig()
    refs = np.asarray(reference_embeddings)
    if refs.ndim != 2 or refs.shape[0] == 0:
        raise ValueError("matching needs at least one reference embedding")
    props = np.asarray(proposal_embeddings)
    n = 0 if props.size == 0 else props.shape[0]
    if n == 0:
        empty = np.zeros(0)
        return MatchResult("no_candidates", None, None, empty, empty.astype(int), np.zeros((0, refs.shape[0])),
                           "no candidate objects of the category in view")
    sim = cosine_matrix(props, refs)
    scores = ensemble_scores(sim, cfg.top_k)
    masked = sim.copy()
    for i in excluded:
        if 0 <= i < n:
            masked[i] = -np.inf
            scores[i] = -np.inf
    votes = np.zeros(n, dtype=int)
    for r in range(sim.shape[1]):
        col = masked[:, r]
        best = int(np.argmax(col))
        if col[best] >= cfg.accept_threshold:
            votes[best] += 1
    order = sorted(range(n), key=lambda i: (votes[i], scores[i]), reverse=True)
    best = order[0]
    by_score = np.argsort(-scores)
    runner = next((int(i) for i in by_score if int(i) != best), None)
    cast = int(votes.sum())
    if not np.isfinite(scores[best]):
        return MatchResult("not_found", None, None, scores, votes, sim, "every candidate is taken by another object")
    if scores[best] < cfg.accept_threshold or cast == 0:
        return MatchResult(
            "not_found", best, runner, scores, votes, sim,
            f"best candidate scores {scores[best]:.3f} < accept threshold {cfg.accept_threshold:.3f}",
        )
    if votes[best] < cfg.min_vote_fraction * cast:
        return MatchResult(
            "ambiguous", best, runner, scores, votes, sim,
            f"references disagree: best candidate holds {votes[best]}/{cast} votes",
        )
    if (
        runner is not None
        and np.isfinite(scores[runner])
        and scores[runner] >= cfg.accept_threshold
        and scores[best] - scores[runner] < cfg.ambiguity_margin
    ):
        return MatchResult(
            "ambiguous", best, runner, scores, votes, sim,
            f"two candidates match almost equally: {scores[best]:.3f} vs {scores[runner]:.3f} "
            f"(margin {cfg.ambiguity_margin:.3f})",
        )
    return MatchResult("found", best, runner, scores, votes, sim, f"score {scores[best]:.3f}, {votes[best]}/{cast} votes")


def calibrate_threshold(
    positive_scores: Sequence[float], negative_scores: Sequence[float], max_false_accept: float = 0.01
) -> float:
    """Accept threshold that keeps the false-accept rate on `negative_scores` at or below
    `max_false_accept`, placed halfway into the gap to the positives where there is one.

    Args:
        positive_scores: ensemble scores of true matches.
        negative_scores: best ensemble scores of scenes / candidates that are not the object.
        max_false_accept: allowed fraction of negatives at or above the threshold (0..1).

    Returns:
        The threshold (a cosine similarity).
    """
    neg = np.sort(np.asarray(negative_scores, dtype=np.float64))
    pos = np.asarray(positive_scores, dtype=np.float64)
    if neg.size == 0 or pos.size == 0:
        raise ValueError("calibration needs positive and negative scores")
    if not 0.0 <= max_false_accept < 1.0:
        raise ValueError(f"max_false_accept must be in [0, 1), got {max_false_accept}")
    allowed = int(np.floor(max_false_accept * neg.size))
    bar = float(neg[neg.size - 1 - allowed]) if allowed < neg.size else float(neg[0])
    above = pos[pos > bar]
    if above.size == 0:
        return float(np.nextafter(bar, np.inf))
    # halfway between the allowed-negative bar and the next positive above it (keeps a margin both ways)
    return float(0.5 * (bar + float(np.min(above))))
