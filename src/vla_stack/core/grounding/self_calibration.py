"""Per-object self-calibration at enrolment: each personal object's own acceptance rule.

One global threshold holds only on the kind of object it was tuned on: the absolute score scale
moves with the object (issue 13). At enrolment the object itself says what "mine" and "not
mine" score, in the embedder's own score scale:

- positives: every reference view held out in turn (leave-one-out: scored against the other
  references) and augmented: brightness, white balance, blur, scale (down-sampled and back),
  crop / viewpoint (a side cut off), partial occlusion. They stand in for the object seen by the
  robot's camera under other light, distance and viewpoint.
- negatives: a bank of look-alikes generated from the object's own views, which are *not* it:
  hue-rotated (+60, +120, +180 degrees), colour-shifted (channels swapped), mirrored and rotated
  180 degrees; the other enrolled objects; and the user's "these are not mine" photos.
  A generated variant that is pixel-for-pixel the object itself (a mirrored plain mug, a
  hue-rotated grey one) is no look-alike and is dropped.

From the scores `derive_rule` picks the object's `ObjectRule` (see `matching.ObjectRule`):

- floor: `calibrate_threshold(positives, negatives, max_false_accept)` (above all but
  `max_false_accept` of the negatives, halfway into the gap to the positives above them), but
  never below the 5 % quantile of the positives (a look-alike unlike every generated variant
  must still score like the object itself). Augmentations the embedder moves more than
  halfway from the held-out views towards the look-alikes (it cannot tell them from a
  look-alike: e.g. white balance for a descriptor without colour constancy) are left out of
  that quantile and reported: they would be "not found", never a reason to accept look-alikes;
- confident threshold (a lone candidate, nothing to compare it with): the floor or the 20 %
  quantile of the positives, whichever is higher;
- margin over the runner-up: on every synthetic frame "the object beside a look-alike"
  (positive x negative pairs), the largest margin (0.005..0.05) whose ambiguous rate stays at
  or below `max_ambiguous`, at least `min_margin`.

The expected rates it reports are measured on the same synthetic frames, so they are what the
enrolment views support, not a promise on unseen look-alikes; a look-alike family the bank
does not cover (another print altogether) is caught, if at all, by the margin over the
runner-up in the scene. What it does not cover (yet): a category prior (negatives from generic
objects of the category), learned augmentations of viewpoint beyond crops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.grounding.embedders import Embedder, ObjectCrop
from vla_stack.core.grounding.matching import ObjectRule, calibrate_threshold, cosine_matrix, ensemble_scores

log = logging.getLogger(__name__)

MIN_DISTINCT_LEVELS = 3.0
"""A generated variant whose object pixels differ from the view by less than this mean absolute
grey level (0..255) is the object itself, not a look-alike."""


@dataclass
class CalibrationReport:
    """What `derive_rule` found, besides the rule.

    Args:
        rule: the derived ObjectRule.
        positive_scores: (N,) scores of the held-out and augmented views.
        negative_scores: name -> scores of each negative source ("mirrored", "hue+120", an
            object name, "not-mine #0").
        identical: other enrolled objects that score like the object's own views (name, median
            score): the stack cannot tell them apart (they are left out of the negatives).
        seconds: time the derivation took, s (embedding included).
    """

    rule: ObjectRule
    positive_scores: np.ndarray
    negative_scores: dict[str, np.ndarray] = field(default_factory=dict)
    identical: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0


# ---- image variants -----------------------------------------------------------------------------
def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _gain(crop: ObjectCrop, gains: Sequence[float]) -> ObjectCrop:
    out = np.clip(crop.rgb.astype(np.float32) * np.asarray(gains, np.float32), 0, 255).astype(np.uint8)
    return ObjectCrop(out, crop.mask.copy())


def _blur(crop: ObjectCrop) -> ObjectCrop:
    import cv2

    sigma = max(1.0, 0.02 * max(crop.rgb.shape[:2]))
    return ObjectCrop(cv2.GaussianBlur(crop.rgb, (0, 0), sigma), crop.mask.copy())


def _rescale(crop: ObjectCrop, factor: float = 0.4) -> ObjectCrop:
    """Seen from farther away: down-sampled by `factor` and back (lost detail), same size."""
    import cv2

    h, w = crop.rgb.shape[:2]
    small = cv2.resize(crop.rgb, (max(4, int(w * factor)), max(4, int(h * factor))), interpolation=cv2.INTER_AREA)
    return ObjectCrop(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), crop.mask.copy())


def _cut(crop: ObjectCrop, side: str, fraction: float = 0.2) -> ObjectCrop:
    """A side of the object cut off (another framing / viewpoint); the original when too little is left."""
    h, w = crop.rgb.shape[:2]
    k = int(round((w if side in ("left", "right") else h) * fraction))
    sl = {"left": np.s_[:, k:], "right": np.s_[:, : w - k], "top": np.s_[k:, :], "bottom": np.s_[: h - k, :]}[side]
    rgb, mask = crop.rgb[sl], crop.mask[sl]
    if mask.sum() < 0.5 * crop.mask.sum() or min(mask.shape) < 8:
        return crop
    return ObjectCrop(np.ascontiguousarray(rgb), mask.copy())


def _occlude(crop: ObjectCrop, fraction: float = 0.25) -> ObjectCrop:
    """A grey block over `fraction` of the object's width (a gripper finger, another object in front)."""
    rgb = crop.rgb.copy()
    cols = np.nonzero(crop.mask.any(axis=0))[0]
    if cols.size == 0:
        return crop
    x1 = int(cols[-1]) + 1
    x0 = max(int(cols[0]), x1 - max(1, int(round(fraction * (cols[-1] + 1 - cols[0])))))
    rgb[:, x0:x1] = 128
    return ObjectCrop(rgb, crop.mask.copy())


def augmented_views(crop: ObjectCrop) -> list[tuple[str, ObjectCrop]]:
    """Photometric and geometric variants of a view that are still the object (positives)."""
    return [
        ("darker", _gain(crop, (0.6, 0.6, 0.6))),
        ("brighter", _gain(crop, (1.35, 1.35, 1.35))),
        ("warm white balance", _gain(crop, (1.06, 1.0, 0.94))),
        ("cool white balance", _gain(crop, (0.94, 1.0, 1.06))),
        ("blur", _blur(crop)),
        ("farther", _rescale(crop)),
        ("cut left", _cut(crop, "left")),
        ("cut top", _cut(crop, "top")),
        ("occluded", _occlude(crop)),
    ]


def _hue_rotate(crop: ObjectCrop, degrees: float) -> ObjectCrop:
    import cv2

    hsv = cv2.cvtColor(crop.rgb, cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + int(round(degrees / 2.0))) % 180).astype(np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out = crop.rgb.copy()
    out[crop.mask] = rgb[crop.mask]  # only the object changes colour; the background stays
    return ObjectCrop(out, crop.mask.copy())


def _channel_shift(crop: ObjectCrop) -> ObjectCrop:
    out = crop.rgb.copy()
    out[crop.mask] = crop.rgb[crop.mask][:, [2, 0, 1]]
    return ObjectCrop(out, crop.mask.copy())


def lookalike_variants(crop: ObjectCrop) -> list[tuple[str, ObjectCrop]]:
    """Look-alikes made from a view of the object, which are *not* it (negatives):
    hue-rotated, colour-shifted, mirrored and rotated prints. Variants indistinguishable from
    the view itself (pixel difference below `MIN_DISTINCT_LEVELS`) are left out."""
    variants = [
        ("hue+60", _hue_rotate(crop, 60.0)),
        ("hue+120", _hue_rotate(crop, 120.0)),
        ("hue+180", _hue_rotate(crop, 180.0)),
        ("colour-shifted", _channel_shift(crop)),
        ("mirrored", ObjectCrop(np.ascontiguousarray(crop.rgb[:, ::-1]), crop.mask[:, ::-1].copy())),
        ("rotated 180", ObjectCrop(np.ascontiguousarray(crop.rgb[::-1, ::-1]), crop.mask[::-1, ::-1].copy())),
    ]
    import cv2

    smooth = cv2.GaussianBlur(crop.rgb, (0, 0), 1.0).astype(np.float32)  # sensor noise is no difference
    out = []
    for name, v in variants:
        if v.rgb.shape != crop.rgb.shape:
            out.append((name, v))
            continue
        both = crop.mask | v.mask
        if not both.any():
            continue
        diff = float(np.abs(cv2.GaussianBlur(v.rgb, (0, 0), 1.0).astype(np.float32) - smooth)[both].mean())
        if diff >= MIN_DISTINCT_LEVELS:
            out.append((name, v))
    return out


# ---- the rule -------------------------------------------------------------------------------------
LONE_QUANTILE = 0.2
"""A lone candidate must score at least this quantile of the object's own views (confident threshold)."""


def _hardest(negatives: dict[str, np.ndarray]) -> tuple[str, float]:
    if not negatives:
        return ("", float("nan"))
    name, s = max(negatives.items(), key=lambda kv: float(np.max(kv[1])))
    return (name, float(np.max(s)))


def _scores(embeddings: np.ndarray, references: np.ndarray, top_k: int) -> np.ndarray:
    if embeddings.size == 0 or references.size == 0:
        return np.zeros(0)
    return ensemble_scores(cosine_matrix(embeddings, references), top_k)


def derive_rule(
    crops: Sequence[ObjectCrop],
    embedder: Embedder,
    top_k: int = 2,
    references: np.ndarray | None = None,
    others: dict[str, np.ndarray] | None = None,
    not_mine: Sequence[ObjectCrop] = (),
    max_false_accept: float = 0.02,
    max_ambiguous: float = 0.05,
    min_margin: float = 0.005,
    own_quantile: float = 0.05,
    clock: Callable[[], float] | None = None,
) -> CalibrationReport:
    """Derive an object's own acceptance rule from its reference crops (see the module doc).

    Args:
        crops: the object's reference crops (>= 1; leave-one-out needs >= 2, with one the
            augmented views are scored against all references, which flatters them: warned).
        embedder: the embedder whose scores the rule is for.
        top_k: the matcher's ensemble top-k (`MatchConfig.top_k`).
        references: (R, D) embeddings of `crops` by `embedder` (computed when None).
        others: other enrolled objects: name -> (R_o, D) reference embeddings by `embedder`.
        not_mine: crops of objects the user says are not this one.
        max_false_accept: allowed fraction of negatives at or above the floor (0..1).
        max_ambiguous: allowed fraction of "object beside a look-alike" frames answered
            ambiguous when picking the margin (0..1).
        min_margin: smallest margin over the runner-up (score).
        own_quantile: the floor is never below this quantile of the object's own (positive)
            scores (0..1): the share of its own augmented views it gives up at most for that.
        clock: time source for `seconds` (default time.perf_counter).

    Returns:
        CalibrationReport (rule, scores, identical objects).
    """
    import time

    now = clock or time.perf_counter
    t0 = now()
    if not crops:
        raise ValueError("self-calibration needs at least one reference view")
    if not (0.0 <= max_false_accept < 1.0 and 0.0 <= max_ambiguous < 1.0 and 0.0 <= own_quantile < 1.0):
        raise ValueError("max_false_accept, max_ambiguous and own_quantile must be in [0, 1)")
    refs = np.asarray(references if references is not None else embedder.embed_crops(crops), np.float64)
    r = refs.shape[0]
    warnings: list[str] = []

    # positives: each view held out (with its augmentations) against the other references
    views: list[ObjectCrop] = []
    owner: list[int] = []
    kinds: list[str] = []
    for i, c in enumerate(crops):
        for kind, v in [("held-out view", c)] + augmented_views(c):
            views.append(v)
            owner.append(i)
            kinds.append(kind)
    # negatives generated from the views
    variants: list[ObjectCrop] = []
    variant_names: list[str] = []
    for c in crops:
        for name, v in lookalike_variants(c):
            variants.append(v)
            variant_names.append(name)
    user = list(not_mine)
    emb = embedder.embed_crops(views + variants + user).astype(np.float64)
    e_views, e_var, e_user = emb[: len(views)], emb[len(views): len(views) + len(variants)], emb[len(views) + len(variants):]
    own = np.asarray(owner)
    pos = np.empty(len(views))
    for i in range(r):
        sel = own == i
        others_refs = np.delete(refs, i, axis=0) if r > 1 else refs
        pos[sel] = _scores(e_views[sel], others_refs, top_k)
    if r == 1:
        warnings.append("only one reference view: its own-view scores are optimistic (enrol 3-5 views from different sides)")

    negatives: dict[str, np.ndarray] = {}
    var_scores = _scores(e_var, refs, top_k)
    for name in dict.fromkeys(variant_names):
        negatives[name] = var_scores[[k for k, n in enumerate(variant_names) if n == name]]
    for k in range(len(user)):
        negatives[f"not-mine #{k}"] = _scores(e_user[k : k + 1], refs, top_k)
    median_pos = float(np.median(pos))
    identical: list[tuple[str, float]] = []
    for name, other in (others or {}).items():
        s = _scores(np.asarray(other, np.float64), refs, top_k)
        if s.size == 0:
            continue
        if float(np.median(s)) >= median_pos:
            identical.append((name, float(np.median(s))))
            warnings.append(f"the enrolled object '{name}' scores like this object's own views (median {np.median(s):.3f} "
                            f">= {median_pos:.3f}): they cannot be told apart; it is not used as a negative")
            continue
        negatives[name] = s
    # a source the embedder scores like the object's own views cannot set the floor (the object
    # would never be found): it is reported, counted in the false-accept rate, and left to the
    # margin over the runner-up when both are in view
    usable = {k: v for k, v in negatives.items() if float(np.median(v)) < median_pos}
    for name, v in negatives.items():
        if name not in usable:
            what = f"its {name} variant" if name in variant_names else f"'{name}'"
            warnings.append(f"hard to tell apart: {what} scores {np.median(v):.3f}, like its own views (median "
                            f"{median_pos:.3f}); beside it the answer is 'ambiguous', alone it may be taken for this object")
    neg_all = np.concatenate(list(negatives.values())) if negatives else np.zeros(0)
    neg = np.concatenate(list(usable.values())) if usable else np.zeros(0)

    if neg.size == 0:
        what = ("every look-alike scores like the object itself" if negatives else
                "the generated variants are the object itself (symmetric or colourless print), no other object is "
                "enrolled and no 'not mine' photo was given")
        warnings.append(f"no usable look-alike: {what}; the floor is set from its own views only and the false-accept "
                        "rate is not known (give --not-mine photos of similar objects)")
        floor = float(np.quantile(pos, own_quantile))
        conf = max(floor, float(np.quantile(pos, LONE_QUANTILE)))
        far = float(np.mean(neg_all >= conf)) if neg_all.size else float("nan")
        rule = ObjectRule(floor, conf, min_margin, embedder.version, top_k, true_accept_rate=float(np.mean(pos >= floor)),
                          false_accept_rate=far, ambiguous_rate=0.0, positives=int(pos.size), negatives=int(neg_all.size),
                          hardest_negative=_hardest(negatives), warnings=tuple(warnings), objects=tuple(sorted(others or {})))
        return CalibrationReport(rule, pos, negatives, identical, now() - t0)

    # The floor is never below the low end of the object's own views: a look-alike unlike every
    # generated variant (another print altogether) must still score like the object to pass.
    # Variations the embedder moves more than halfway from the held-out views towards the
    # look-alikes ("sensitive" kinds, e.g. white balance for a descriptor without colour
    # constancy) cannot be told from a look-alike: they do not pull the floor down (they are
    # reported, and counted in the true-accept rate).
    kind_arr = np.asarray(kinds)
    held_out = float(np.median(pos[kind_arr == "held-out view"]))
    bar = float(np.max(neg))
    midpoint = 0.5 * (held_out + bar)
    sensitive = {k: float(np.median(pos[kind_arr == k])) for k in dict.fromkeys(kinds)
                 if k != "held-out view" and float(np.median(pos[kind_arr == k])) < midpoint}
    core = pos[~np.isin(kind_arr, list(sensitive))]
    floor = float(min(1.0, max(calibrate_threshold(pos, neg, max_false_accept), float(np.quantile(core, own_quantile)))))
    conf = float(min(1.0, max(floor, float(np.quantile(core, LONE_QUANTILE)))))
    # the object beside each look-alike: pairs (positive, negative)
    p_col, n_row = pos[:, None], neg[None, :]
    accepted_alone = p_col >= floor
    margin = min_margin
    for m in np.arange(min_margin, 0.0501, 0.0025):
        amb = float(np.mean(accepted_alone & (np.abs(p_col - n_row) < m)))
        if amb <= max_ambiguous:
            margin = float(m)
    correct = accepted_alone & (p_col - n_row >= margin)
    ambiguous = (np.maximum(p_col, n_row) >= floor) & (np.abs(p_col - n_row) < margin)
    tar = float(np.mean(correct))
    amb_rate = float(np.mean(ambiguous))
    # frames without the object: one look-alike alone, or two side by side (every negative source)
    fa_alone = neg_all >= conf
    a, b = neg_all[:, None], neg_all[None, :]
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    off = ~np.eye(neg_all.size, dtype=bool)
    fa_pairs = ((hi >= floor) & (hi - lo >= margin))[off] if neg_all.size > 1 else np.zeros(0, bool)
    far = float(np.mean(np.concatenate([fa_alone, fa_pairs])))
    hardest = _hardest(negatives)

    for kind in dict.fromkeys(kinds):
        med = float(np.median(pos[kind_arr == kind]))
        if kind in sensitive:
            warnings.append(f"views under {kind} score {med:.3f}, closer to the look-alikes ({bar:.3f}) than to its own "
                            f"views ({held_out:.3f}): such views would be 'not found' (the embedder is sensitive to {kind})")
        elif med < floor:
            warnings.append(f"views under {kind} score {med:.3f}, below its floor {floor:.3f}: such views would be "
                            "'not found'")
    if tar < 0.8:
        warnings.append(f"hard to tell apart: only {tar:.0%} of its own views (held-out and augmented) beside a look-alike would be "
                        "accepted (enrol more, sharper views from different sides)")
    rule = ObjectRule(floor, conf, margin, embedder.version, top_k, true_accept_rate=tar, false_accept_rate=far,
                      ambiguous_rate=amb_rate, positives=int(pos.size), negatives=int(neg_all.size), hardest_negative=hardest,
                      warnings=tuple(warnings), objects=tuple(sorted(others or {})))
    return CalibrationReport(rule, pos, negatives, identical, now() - t0)
