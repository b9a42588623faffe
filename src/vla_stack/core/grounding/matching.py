"""Instance matching: which proposal (if any) is the enrolled personal object.

For P proposal embeddings and R reference embeddings (unit vectors) the similarity matrix is
S = cosine(P x R). Following the VAP recipe, the references form an ensemble:

- every reference votes for the proposal most similar to it, if that similarity reaches the
  accept threshold (a reference that sees nothing like itself abstains);
- each proposal's score is the mean of its `top_k` highest similarities to the references
  (robust to a few references seen from an unhelpful side);
- the winner is the proposal with the most votes (ties: higher score). It must reach the floor
  `accept_threshold` and hold at least `min_vote_fraction` of the votes cast, and then it is
  accepted when either
    * its score reaches `confident_threshold` (absolute evidence; the only way when it is the
      only candidate in view), or
    * it clearly beats the best other candidate: the ratio of cosine distances
      (1 - winner) / (1 - runner-up) is at most `max_distance_ratio` (Lowe's ratio test:
      the look-alikes in the same frame, under the same light and viewpoint, are the
      reference for what "not mine" scores);
- when the runner-up also reaches the threshold and trails the winner by less than
  `ambiguity_margin` in score, the result is "ambiguous" and both are reported: the caller must
  not highlight a coin toss.

Decision modes (`MatchConfig.decision`):

- "global" (default, today's rule): the thresholds above, the same for every object.
- "per_object": each enrolled object carries its own `ObjectRule`, derived at enrolment from
  its own views and generated look-alikes (`vla_stack.core.grounding.self_calibration`). The
  best candidate is accepted only when it reaches the object's floor, beats the runner-up by
  the object's calibrated margin, and (alone in view, with no runner-up to compare against)
  reaches the object's confident threshold. Two candidates closer than the margin, or a best
  candidate that does not stand out, give "ambiguous" with every candidate's score: the
  caller asks which one instead of highlighting a look-alike.

`calibrate_threshold` picks a single accept threshold from scores of known matches and known
non-matches; `calibrate_decision` picks (accept_threshold, confident_threshold,
max_distance_ratio) together from whole scenes (candidate score lists with and without the
object), for a target false-accept rate (e.g. scenes rendered by seed with look-alikes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

MatchStatus = Literal["found", "not_found", "ambiguous", "no_candidates"]
DecisionMode = Literal["global", "per_object"]
DECISION_MODES = ("global", "per_object")

RULE_VERSION = 1
"""Version of the per-object rule derivation (`self_calibration.derive_rule`); a stored rule of
another version is stale and is re-derived."""


@dataclass(frozen=True)
class ObjectRule:
    """One enrolled object's own acceptance rule (decision mode "per_object").

    Scores are ensemble scores (cosine similarity, mean of the top-k reference similarities) of
    the embedder `embedder_version` with `top_k`; a rule of another embedder, top-k or
    derivation version is stale (see `is_current`).

    Args:
        accept_threshold: floor: a candidate below it is not the object.
        confident_threshold: a lone candidate (no other candidate in view) must reach it, >= floor.
        margin: the best candidate must beat the runner-up by at least this score, else ambiguous.
        embedder_version: `Embedder.version` the scores were computed with.
        top_k: ensemble top-k the scores were computed with.
        rule_version: `RULE_VERSION` of the derivation.
        true_accept_rate: expected fraction of frames with the object (and a look-alike beside
            it) in which it is accepted, on the enrolment's held-out and augmented views (0..1).
        false_accept_rate: expected fraction of frames without the object (look-alikes only) in
            which something is accepted, on the enrolment's negative bank (0..1).
        ambiguous_rate: expected fraction of frames with the object answered "ambiguous" (0..1).
        positives: number of positive scores it was derived from.
        negatives: number of negative scores (generated variants, other objects, user negatives).
        hardest_negative: name of the negative that scored highest ("mirrored", "hue+120", an
            object name, "not-mine #0"...) and its score.
        warnings: what the user should know (hard to tell apart, no look-alikes...).
        objects: names of the other enrolled objects it was derived against (a rule derived
            before another object of its category was enrolled or removed is out of date).
    """

    accept_threshold: float
    confident_threshold: float
    margin: float
    embedder_version: str
    top_k: int
    rule_version: int = RULE_VERSION
    true_accept_rate: float = float("nan")
    false_accept_rate: float = float("nan")
    ambiguous_rate: float = float("nan")
    positives: int = 0
    negatives: int = 0
    hardest_negative: tuple[str, float] = ("", float("nan"))
    warnings: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("accept_threshold", "confident_threshold"):
            v = getattr(self, name)
            if not (np.isfinite(v) and -1.0 <= v <= 1.0 + 1e-9):
                raise ValueError(f"{name} must be a cosine similarity in -1..1, got {v}")
        if self.confident_threshold < self.accept_threshold:
            raise ValueError(f"confident_threshold {self.confident_threshold} < accept_threshold {self.accept_threshold}")
        if not (np.isfinite(self.margin) and 0.0 <= self.margin < 1.0):
            raise ValueError(f"margin must be in 0..1, got {self.margin}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")

    def is_current(self, embedder_version: str, top_k: int) -> bool:
        """True when the rule was derived for this embedder version, top-k and derivation version."""
        return self.embedder_version == embedder_version and self.top_k == top_k and self.rule_version == RULE_VERSION

    def to_dict(self) -> dict:
        """JSON-ready dict (see `from_dict`)."""
        d = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}
        hn = self.hardest_negative[1]
        d["hardest_negative"] = [self.hardest_negative[0], hn if np.isfinite(hn) else None]
        d["warnings"] = list(self.warnings)
        d["objects"] = list(self.objects)
        return d  # strict JSON: unknown rates (NaN) are null

    @classmethod
    def from_dict(cls, data: dict) -> ObjectRule:
        """Inverse of `to_dict`; ValueError (with the reason) on a malformed dict."""
        def rate(key: str) -> float:
            v = data.get(key)
            return float("nan") if v is None else float(v)

        try:
            hn = data.get("hardest_negative") or ("", float("nan"))
            return cls(
                float(data["accept_threshold"]), float(data["confident_threshold"]), float(data["margin"]),
                str(data["embedder_version"]), int(data["top_k"]), int(data.get("rule_version", 0)),
                rate("true_accept_rate"), rate("false_accept_rate"), rate("ambiguous_rate"),
                int(data.get("positives", 0)), int(data.get("negatives", 0)),
                (str(hn[0]), float(hn[1]) if hn[1] is not None else float("nan")),
                tuple(str(w) for w in data.get("warnings", ())),
                tuple(str(o) for o in data.get("objects", ())),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"malformed per-object decision rule: {exc}") from exc


@dataclass
class MatchConfig:
    """Parameters of instance matching.

    The defaults fit the `appearance` embedder with its shipped learned metric (appearance-v4):
    calibrated on simulated look-alike mug scenes with lighting and camera jitter (`vla-stack
    eval-grounding --calibrate 300 --max-false-accept 0.005`: seeds 0-299, at most 0.5 % false
    accepts on frames without the mug; on the held-out test seeds 1000-1099: 96 % correct
    instance, 1 % false highlights). They favour "not found" over highlighting a look-alike.
    Other embedders (dinov2, `projection: none`) and real cameras need their own values: see
    `calibrate_decision` / `calibrate_threshold`.
    Setting only `accept_threshold` (confident_threshold None) gives the plain absolute rule.
    """

    accept_threshold: float = field(
        default=0.9372,
        metadata={"help": "Floor: lowest ensemble score (cosine similarity) that can be accepted as the personal "
                  "object at all; embedder-specific, recalibrate (vla-stack eval-grounding --calibrate)"},
    )
    confident_threshold: float | None = field(
        default=0.9525,
        metadata={"help": "Score accepted on its own, whatever the other candidates score (the only way to accept "
                  "a lone candidate); None = accept_threshold (absolute rule only); never below accept_threshold"},
    )
    max_distance_ratio: float = field(
        default=0.6,
        metadata={"help": "Ratio test: a winner between accept_threshold and confident_threshold is accepted when "
                  "(1 - winner score) / (1 - best other score) <= this (0..1; 0 = off)"},
    )
    ambiguity_margin: float = field(
        default=0.005, metadata={"help": "Runner-up within this score of the winner (both accepted) = ambiguous"}
    )
    top_k: int = field(default=2, metadata={"help": "A proposal's score is the mean of its top-k reference similarities"})
    min_vote_fraction: float = field(
        default=0.34, metadata={"help": "The winner must hold at least this fraction of the references' votes"}
    )
    decision: str = field(
        default="global",
        metadata={"help": "Decision rule: 'global' = the thresholds above for every object (today's rule); "
                  "'per_object' = each object's own rule derived at enrolment (floor, confident threshold, margin "
                  "over the runner-up; otherwise 'ambiguous' with the candidates' scores)"},
    )

    def __post_init__(self) -> None:
        if self.decision not in DECISION_MODES:
            raise ValueError(f"decision must be one of {DECISION_MODES}, got {self.decision!r}")
        if not -1.0 <= self.accept_threshold <= 1.0:
            raise ValueError(f"accept_threshold must be a cosine similarity in -1..1, got {self.accept_threshold}")
        if self.confident_threshold is None:
            self.confident_threshold = self.accept_threshold
        if not -1.0 <= self.confident_threshold <= 1.0:
            raise ValueError(f"confident_threshold must be a cosine similarity in -1..1, got {self.confident_threshold}")
        self.confident_threshold = max(float(self.confident_threshold), float(self.accept_threshold))
        if not 0.0 <= self.max_distance_ratio <= 1.0:
            raise ValueError(f"max_distance_ratio must be in 0..1, got {self.max_distance_ratio}")
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
    rule: ObjectRule | None = None,
) -> MatchResult:
    """Pick the proposal that is the personal object (see the module doc).

    Args:
        proposal_embeddings: (P, D).
        reference_embeddings: (R, D), R >= 1.
        config: MatchConfig.
        excluded: proposal indices already taken by another personal object of the same
            instruction (they get score -inf and no votes).
        rule: the object's own rule, used when `config.decision` is "per_object" (without one
            the global rule decides, and the reason says so).

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
    if cfg.decision == "per_object" and rule is not None:
        return _match_per_object(sim, masked, scores, rule, cfg)
    fallback = " (no per-object rule: global rule)" if cfg.decision == "per_object" else ""
    result = _match_global(sim, masked, scores, cfg)
    return _with_reason(result, result.reason + fallback) if fallback else result


def _with_reason(result: MatchResult, reason: str) -> MatchResult:
    return MatchResult(result.status, result.index, result.runner_up, result.scores, result.votes, result.similarity,
                       reason)


def candidate_list(scores: np.ndarray) -> str:
    """Every finite candidate score, best first ("#2 0.951, #0 0.948, ..."; # = proposal index)."""
    order = [int(i) for i in np.argsort(-scores) if np.isfinite(scores[int(i)])]
    return ", ".join(f"#{i} {scores[i]:.3f}" for i in order)


def _match_per_object(sim: np.ndarray, masked: np.ndarray, scores: np.ndarray, rule: ObjectRule,
                      cfg: MatchConfig) -> MatchResult:
    """Decision mode "per_object" (see the module doc): the object's floor, margin over the
    runner-up and (alone in view) confident threshold; otherwise ambiguous or not found."""
    n = scores.shape[0]
    votes = np.zeros(n, dtype=int)
    for r in range(sim.shape[1]):
        col = masked[:, r]
        b = int(np.argmax(col))
        if col[b] >= rule.accept_threshold:
            votes[b] += 1
    by_score = [int(i) for i in np.argsort(-scores) if np.isfinite(scores[int(i)])]
    if not by_score:
        return MatchResult("not_found", None, None, scores, votes, sim, "every candidate is taken by another object")
    best = by_score[0]
    runner = by_score[1] if len(by_score) > 1 else None
    s1 = float(scores[best])
    listed = candidate_list(scores)
    if s1 < rule.accept_threshold:
        return MatchResult("not_found", best, runner, scores, votes, sim,
                           f"best candidate scores {s1:.3f} < this object's floor {rule.accept_threshold:.3f} "
                           f"(candidates: {listed})")
    if runner is None:
        if s1 >= rule.confident_threshold:
            return MatchResult("found", best, None, scores, votes, sim,
                               f"the only candidate scores {s1:.3f} >= this object's confident threshold "
                               f"{rule.confident_threshold:.3f}")
        return MatchResult("not_found", best, None, scores, votes, sim,
                           f"the only candidate scores {s1:.3f}, above the floor {rule.accept_threshold:.3f} but below "
                           f"this object's confident threshold {rule.confident_threshold:.3f} (nothing to compare it with)")
    s2 = float(scores[runner])
    if s1 - s2 < rule.margin:
        return MatchResult("ambiguous", best, runner, scores, votes, sim,
                           f"cannot tell which one is mine: best {s1:.3f} beats the next {s2:.3f} by {s1 - s2:.3f} < "
                           f"this object's margin {rule.margin:.3f} (candidates: {listed})")
    return MatchResult("found", best, runner, scores, votes, sim,
                       f"score {s1:.3f} >= this object's floor {rule.accept_threshold:.3f} and beats the next "
                       f"{s2:.3f} by {s1 - s2:.3f} >= margin {rule.margin:.3f}")


def _match_global(sim: np.ndarray, masked: np.ndarray, scores: np.ndarray, cfg: MatchConfig) -> MatchResult:
    """Decision mode "global": today's rule (see the module doc)."""
    n = scores.shape[0]
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
    conf = float(cfg.confident_threshold if cfg.confident_threshold is not None else cfg.accept_threshold)
    if scores[best] >= conf:
        return MatchResult("found", best, runner, scores, votes, sim,
                           f"score {scores[best]:.3f} >= {conf:.3f}, {votes[best]}/{cast} votes")
    if runner is not None and np.isfinite(scores[runner]) and cfg.max_distance_ratio > 0.0:
        ratio = distance_ratio(float(scores[best]), float(scores[runner]))
        if ratio <= cfg.max_distance_ratio:
            return MatchResult("found", best, runner, scores, votes, sim,
                               f"score {scores[best]:.3f} clearly beats the next candidate {scores[runner]:.3f} "
                               f"(distance ratio {ratio:.2f} <= {cfg.max_distance_ratio:.2f}), {votes[best]}/{cast} votes")
        why = (f"best candidate scores {scores[best]:.3f} (< {conf:.3f}) and does not stand out from the next "
               f"{scores[runner]:.3f} (distance ratio {ratio:.2f} > {cfg.max_distance_ratio:.2f})")
    else:
        why = f"the only candidate scores {scores[best]:.3f} < confident threshold {conf:.3f}"
    return MatchResult("not_found", best, runner, scores, votes, sim, why)


def distance_ratio(winner: float, runner_up: float) -> float:
    """Lowe's ratio on cosine distances: (1 - winner) / (1 - runner_up) (small = clear winner)."""
    return float((1.0 - winner) / max(1.0 - runner_up, 1e-9))


def decide(scores: Sequence[float], accept_threshold: float, confident_threshold: float,
           max_distance_ratio: float) -> int | None:
    """The decision rule of `match` on ensemble scores alone (no votes, no ambiguity): index of
    the accepted candidate or None. Used by `calibrate_decision`."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return None
    order = np.argsort(-s)
    s1 = float(s[order[0]])
    if s1 < accept_threshold:
        return None
    if s1 >= confident_threshold:
        return int(order[0])
    if s.size > 1 and max_distance_ratio > 0.0 and distance_ratio(s1, float(s[order[1]])) <= max_distance_ratio:
        return int(order[0])
    return None


def calibrate_decision(
    positives: Sequence[tuple[Sequence[float], int]],
    negatives: Sequence[Sequence[float]],
    max_false_accept: float = 0.02,
    floors: Sequence[float] | None = None,
    confident: Sequence[float] | None = None,
    ratios: Sequence[float] | None = None,
) -> dict[str, float]:
    """Pick (accept_threshold, confident_threshold, max_distance_ratio) on whole scenes.

    Grid search: among the settings whose false-accept rate on `negatives` is at most
    `max_false_accept`, the one that accepts the true object in the most `positives`; ties go
    to the most conservative setting (highest confident threshold, then floor, then lowest ratio).

    Args:
        positives: (scores of every candidate in a frame with the object, index of the object).
        negatives: scores of every candidate in a frame without the object (may be empty lists).
        max_false_accept: allowed fraction of negatives in which anything is accepted (0..1).
        floors, confident, ratios: grids to search (defaults: floors and confident thresholds at
            quantiles of the frames' best scores, so any embedder's score scale is covered; ratios 0..0.9).

    Returns:
        {"accept_threshold", "confident_threshold", "max_distance_ratio", "correct_rate", "false_accept_rate"}.
    """
    if not positives or not negatives:
        raise ValueError("calibration needs scenes with and without the object")
    if not 0.0 <= max_false_accept < 1.0:
        raise ValueError(f"max_false_accept must be in [0, 1), got {max_false_accept}")
    ratios = list(ratios) if ratios is not None else list(np.round(np.arange(0.0, 0.901, 0.05), 3))
    def summarise(frames: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # per frame: best score, distance ratio best / runner-up, index of the best
        top = np.full(len(frames), -np.inf)
        ratio = np.full(len(frames), np.inf)  # no runner-up: the ratio test cannot pass
        arg = np.full(len(frames), -1)
        for k, f in enumerate(frames):
            v = np.asarray(f, dtype=np.float64)
            if v.size == 0:
                continue
            order = np.argsort(-v)
            arg[k], top[k] = int(order[0]), float(v[order[0]])
            if v.size > 1:
                ratio[k] = distance_ratio(top[k], float(v[order[1]]))
        return top, ratio, arg

    p_top, p_ratio, p_arg = summarise([s for s, _ in positives])
    p_right = p_arg == np.asarray([i for _, i in positives])
    n_top, n_ratio, _ = summarise(negatives)
    if floors is None or confident is None:
        tops = np.concatenate([p_top[np.isfinite(p_top)], n_top[np.isfinite(n_top)]])
        grid = sorted({float(v) for v in np.round(np.quantile(tops, np.linspace(0.0, 1.0, 121)), 4)}) if tops.size else [1.0]
        floors = list(floors) if floors is not None else grid
        confident = list(confident) if confident is not None else grid
    best: tuple | None = None
    for t1 in floors:
        for ts in confident:
            if ts < t1:
                continue
            for m in ratios:
                fa = float(np.mean((n_top >= t1) & ((n_top >= ts) | ((m > 0.0) & (n_ratio <= m)))))
                if fa > max_false_accept:
                    continue
                ok = float(np.mean(p_right & (p_top >= t1) & ((p_top >= ts) | ((m > 0.0) & (p_ratio <= m)))))
                key = (round(ok, 6), ts, t1, -m)
                if best is None or key > best[0]:
                    best = (key, t1, ts, m, ok, fa)
    if best is None:  # nothing meets the target: accept nothing below the highest negative
        top = max((max(s) for s in negatives if len(s)), default=1.0)
        t = float(min(1.0, np.nextafter(top, np.inf)))
        return {"accept_threshold": t, "confident_threshold": t, "max_distance_ratio": 0.0,
                "correct_rate": float(np.mean([decide(s, t, t, 0.0) == i for s, i in positives])),
                "false_accept_rate": 0.0}
    _, t1, ts, m, ok, fa = best
    return {"accept_threshold": float(t1), "confident_threshold": float(ts), "max_distance_ratio": float(m),
            "correct_rate": ok, "false_accept_rate": fa}


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
