"""`vla-stack eval-grounding`: personal-object grounding measured on simulated look-alike scenes.

Renders simulated scenes by seed (2-4 look-alike mugs, random placement, lighting and camera
jitter: `sim_scenes.scene_config`), enrols each scene's own mug from its reference renders, and
measures, next to a generic baseline (best category proposal, no personal memory):
correct-instance rate (IoU >= 0.5 with the ground-truth mask of the enrolled mug), mean IoU,
false-highlight rate on the same scenes with the enrolled mug removed (`SimRobot.remove_object`;
look-alikes stay), per-frame latency of detection and of tracking, enrolment time. Writes JSON
(default bench/results/grounding.json). Calibration seeds (`--calibrate N`: seeds 0..N-1, for the
decision rule: floor, confident threshold, distance ratio; see `matching.calibrate_decision`)
and test seeds never overlap.

Texture families (`--family NAME`, repeatable, or `all`; `core/sim/mug_families.py`): one run per
family on the same test seeds (same layouts, the family's textures), each reported as above, then
a per-family table (correct instance, false highlight, wrong highlight, not found, ambiguous, my
mug ranked first) and the worst family (default results bench/results/grounding_families.json).
With `--calibrate N` the decision rule for family F is calibrated on N scenes of every family in
`--calibrate-families` except F (leave-one-family-out: calibration never sees the family under
test). Without `--calibrate`, every family is measured with the shipped rule.

`vla_stack.cli` wires it in: `add_eval_arguments(parser)` / `eval_main(args)` (returns an exit code).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_stack.lab.grounding.sim_scenes import (
    DEFAULT_REFERENCE_ELEVATIONS_DEG,
    jitter_lighting,
    scene_config,
    sim_env,
    sim_reference_views,
)

DEFAULT_RESULTS = Path("bench/results/grounding.json")
DEFAULT_FAMILY_RESULTS = Path("bench/results/grounding_families.json")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vla-stack eval-grounding`."""
    parser.add_argument("--seeds", type=int, default=100, help="test scenes (default: 100)")
    parser.add_argument("--first-seed", type=int, default=1000, help="first test seed (default: 1000)")
    parser.add_argument("--calibrate", type=int, default=0, metavar="N",
                        help="calibrate the decision rule (floor, confident threshold, distance ratio) on N scenes first "
                             "(seeds 0..N-1, never test seeds; default: 0 = use the configured MatchConfig)")
    parser.add_argument("--max-false-accept", type=float, default=0.02,
                        help="false-accept rate the calibration aims for (default: 0.02)")
    parser.add_argument("--threshold", type=float, default=None, help="plain absolute rule: accept a candidate scoring at least this (overrides the defaults and --calibrate)")
    parser.add_argument("--min-mugs", type=int, default=2, choices=[2, 3, 4], help="fewest mugs per scene (default: 2)")
    parser.add_argument("--max-mugs", type=int, default=4, choices=[2, 3, 4], help="most mugs per scene (default: 4)")
    parser.add_argument("--objects", type=Path, default=None, help="directory of mug texture images instead of generated ones")
    parser.add_argument("--family", action="append", default=None, metavar="NAME",
                        help="texture family of the test scenes (repeatable or comma-separated; 'all' = every family: "
                             "procedural, photo, hue, mirror, text, plain): one run per family on the same seeds, "
                             "per-family figures and the worst family (default results: "
                             f"{DEFAULT_FAMILY_RESULTS})")
    parser.add_argument("--calibrate-families", default="all", metavar="LIST",
                        help="with --family and --calibrate N: families the decision rule is calibrated on (comma-separated "
                             "or 'all', N scenes each); the family under test is always left out (default: all)")
    parser.add_argument("--decision", choices=("global", "per_object"), default="global",
                        help="decision rule: 'global' (one calibrated rule for every object, the shipped default) or "
                             "'per_object' (each enrolled object's own self-calibrated rule + runner-up margin; "
                             "'ambiguous' when two candidates are close); default: global")
    parser.add_argument("--track-frames", type=int, default=10, help="tracking steps per scene (camera-shake warps; default: 10)")
    parser.add_argument("--views", type=int, default=5, help="reference views enrolled per scene (default: 5)")
    parser.add_argument("--ref-elevations", type=_elevations, default=DEFAULT_REFERENCE_ELEVATIONS_DEG,
                        help="camera elevations of the reference renders, deg, comma-separated "
                             f"(default: {','.join(f'{e:g}' for e in DEFAULT_REFERENCE_ELEVATIONS_DEG)})")
    parser.add_argument("--detector", default="depth_clusters", help="detector backend (default: depth_clusters)")
    parser.add_argument("--embedder", default="appearance", help="embedder backend (default: appearance)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help=f"results JSON (default: {DEFAULT_RESULTS})")
    parser.add_argument("--quiet", action="store_true", help="no per-scene lines")


def _elevations(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"elevations must be comma-separated degrees, got {text!r}") from exc
    if not values or any(not 0.0 <= v <= 89.0 for v in values):
        raise argparse.ArgumentTypeError(f"elevations must be 0..89 deg, got {text!r}")
    return values


def _warp(img: np.ndarray, M: np.ndarray, nearest: bool = False) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    flag = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(img, M, (w, h), flags=flag, borderMode=cv2.BORDER_REPLICATE)


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _stats(values: list[float]) -> dict[str, float | None]:
    return {"mean": float(np.mean(values)) if values else None, "p50": _pct(values, 50), "p95": _pct(values, 95),
            "max": float(np.max(values)) if values else None, "n": len(values)}


def _match_scores(pipe: Any, name: str, frame: Any) -> tuple[list[float], list[np.ndarray]]:
    """Ensemble scores and masks of every proposal in `frame` for object `name` (calibration)."""
    from vla_stack.core.grounding.embedders import crop_object
    from vla_stack.core.grounding.matching import cosine_matrix, ensemble_scores

    det = pipe.detector.detect(frame.rgb, frame.depth, frame.intrinsics, ["cup"])
    props = [p for p in det.proposals if p.mask is not None]
    if not props:
        return [], []
    emb = pipe.embedder.embed_crops([crop_object(frame.rgb, p.mask) for p in props])
    refs = pipe._references[name]
    s = ensemble_scores(cosine_matrix(emb, refs), pipe.config.matching.top_k)
    return [float(v) for v in s], [p.mask for p in props]


@dataclass
class _Run:
    """What the scenes of one evaluation run share: the arguments, the texture family (None: `--objects`
    or procedural, as before families existed), the decision rule, a scratch directory and the enrolment timings."""

    args: argparse.Namespace
    family: str | None
    workdir: Path
    match_cfg: Any
    enrol_times: list[float] = field(default_factory=list)
    enrol_auto_times: list[float] = field(default_factory=list)

    def build(self, seed: int) -> tuple[Any, Any, float]:
        """Scene `seed` (lighting jittered), its own mug enrolled as "my_mug": (robot, pipeline, light gain)."""
        from vla_stack.core.grounding.memory import PersonalObjectMemory
        from vla_stack.core.grounding.pipeline import GroundingConfig, GroundingPipeline
        from vla_stack.core.sim.robot import SimRobot

        args = self.args
        cfg = scene_config(seed, args, self.family)
        robot = SimRobot(cfg)
        gain = jitter_lighting(robot, seed)
        memory = PersonalObjectMemory(self.workdir / f"{self.family or 'scenes'}_seed_{seed}")
        pipe = GroundingPipeline(GroundingConfig(detector=args.detector, embedder=args.embedder, matching=self.match_cfg),
                                 memory)
        views, masks = sim_reference_views(robot, robot.mine, args.views, elevations_deg=args.ref_elevations)
        t0 = time.perf_counter()
        memory.enroll("my_mug", views, "cup", pipe.embedder, masks=masks, source=f"sim:seed={seed}")
        self.enrol_times.append(time.perf_counter() - t0)
        if len(self.enrol_auto_times) < 10:  # enrolment with automatic reference segmentation, for comparison
            t0 = time.perf_counter()
            memory.enroll("my_mug_auto", views, "cup", pipe.embedder, source="auto-seg")
            self.enrol_auto_times.append(time.perf_counter() - t0)
        pipe.set_targets(["my_mug"])
        return robot, pipe, gain


def _frame_of(robot: Any) -> Any:
    from vla_stack.core.grounding.pipeline import GroundingFrame

    rgb, depth = robot.render()
    return GroundingFrame(rgb, depth, robot.intrinsics(), robot.camera_pose())


def _calibration_frames(run: _Run, seeds: list[int]) -> tuple[list[tuple[list[float], int]], list[list[float]]]:
    """Whole-scene calibration frames of `seeds`: (positives: scores with the mug and its index, negatives: scores without).

    Candidate scores do not depend on which other mugs are in view, so every subset of a scene's
    look-alikes is a frame the rule must handle: with the mug (positives) and without it
    (negatives: what the eval's mug-absent frames are).
    """
    import itertools

    from vla_stack.core.grounding.imageops import mask_iou

    positives: list[tuple[list[float], int]] = []
    negatives: list[list[float]] = []
    for seed in seeds:
        robot, pipe, _ = run.build(seed)
        frame = _frame_of(robot)
        seg = robot.render_segmentation()
        truth = seg == robot.segmentation_labels()[robot.mine]
        scores, masks = _match_scores(pipe, "my_mug", frame)
        ious = [mask_iou(m, truth) for m in masks]
        mine = int(np.argmax(ious)) if ious and max(ious) >= 0.5 else None
        others = [s for k, s in enumerate(scores) if k != mine and ious[k] < 0.5]
        for k in range(len(others) + 1):
            for subset in itertools.combinations(others, k):
                if mine is not None:
                    positives.append(([scores[mine], *subset], 0))
                if subset:
                    negatives.append(list(subset))
        robot.close()
    return positives, negatives


def _calibrated(match_cfg: Any, positives: list, negatives: list, max_false_accept: float) -> tuple[Any, dict[str, Any]]:
    """`match_cfg` with the decision rule calibrated on the frames; and the calibration record."""
    from vla_stack.core.grounding.matching import MatchConfig, calibrate_decision

    rule = calibrate_decision(positives, negatives, max_false_accept)
    cfg = MatchConfig(**{**asdict(match_cfg), "accept_threshold": rule["accept_threshold"],
                         "confident_threshold": rule["confident_threshold"],
                         "max_distance_ratio": rule["max_distance_ratio"]})
    record = {"threshold": rule["accept_threshold"], "source": "calibrated", "rule": rule, "positives": len(positives),
              "negatives": len(negatives), "max_false_accept": max_false_accept}
    return cfg, record


def _print_calibration(record: dict[str, Any], what: str) -> None:
    rule = record["rule"]
    print(f"calibrated on {what} ({record['positives']} frames with the mug, {record['negatives']} without): "
          f"floor {rule['accept_threshold']:.4f}, confident {rule['confident_threshold']:.4f}, distance ratio "
          f"{rule['max_distance_ratio']:.2f} (calibration: {rule['correct_rate']:.1%} correct, "
          f"{rule['false_accept_rate']:.1%} false accepts)")


def _evaluate(run: _Run, test_seeds: list[int], calibration: dict[str, Any]) -> dict[str, Any]:
    """Every test scene of `run`: the results record (what `eval-grounding` writes for one run)."""
    from vla_stack.core.grounding.imageops import mask_iou
    from vla_stack.core.grounding.matching import decide
    from vla_stack.core.grounding.pipeline import GroundingFrame, select_generic

    args, match_cfg = run.args, run.match_cfg
    rows: list[dict[str, Any]] = []
    det_lat: list[float] = []
    track_lat: list[float] = []
    track_frame_lat: list[float] = []
    redetections = 0
    track_ious: list[float] = []
    chance: list[float] = []
    t_start = time.perf_counter()
    for seed in test_seeds:
        robot, pipe, gain = run.build(seed)
        n_mugs = len(robot.mug_names())
        chance.append(1.0 / n_mugs)
        frame = _frame_of(robot)
        seg = robot.render_segmentation()
        truth = seg == robot.segmentation_labels()[robot.mine]
        pipe.reset()
        res = pipe.process(frame, force_detection=True)
        det_lat.append(res.timings.get("detection_s", float("nan")))
        og = res.objects[0]
        iou = mask_iou(og.mask, truth) if og.status == "found" else 0.0
        outcome_det = pipe.detect(frame)  # same frame, same (seeded) proposals: baseline + operating curve
        props = outcome_det.detections.proposals
        gi = select_generic(outcome_det.detections)
        base_iou = mask_iou(props[gi].mask, truth) if gi is not None else 0.0
        cand_scores = [c.score for c in outcome_det.objects[0].candidates]
        truth_ious = [mask_iou(p.mask, truth) if p.mask is not None else 0.0 for p in props]
        j = int(np.argmax(truth_ious)) if truth_ious else -1
        mine_score = cand_scores[j] if j >= 0 and truth_ious[j] >= 0.5 and len(cand_scores) == len(props) else None
        mine_is_top = mine_score is not None and mine_score >= max(cand_scores)
        scores = sorted((c.score for c in og.candidates), reverse=True)
        # tracking: camera-shake warps of the same frame, ground truth warped alike
        if og.status == "found" and args.track_frames > 0:
            rng = np.random.default_rng([seed, 3])
            import cv2

            angle, tx, ty = 0.0, 0.0, 0.0
            for _ in range(args.track_frames):
                angle += rng.normal(0, 0.3)
                tx += rng.normal(0, 2.0)
                ty += rng.normal(0, 2.0)
                M = cv2.getRotationMatrix2D((320, 240), angle, 1.0)
                M[:, 2] += (tx, ty)
                warped = GroundingFrame(_warp(frame.rgb, M), _warp(frame.depth, M, nearest=True), frame.intrinsics)
                w_truth = _warp(truth.astype(np.uint8), M, nearest=True).astype(bool)
                step = pipe.process(warped)  # tracks unless the tracker asks for a re-detection
                if step.mode == "track":
                    track_lat.append(step.timings["tracking_s"])
                    track_frame_lat.append(step.timings["total_s"])
                else:
                    redetections += 1
                track_ious.append(mask_iou(step.mask, w_truth) if step.status == "found" else 0.0)
        # mug absent: same scene, the enrolled mug moved out of view; look-alikes stay
        robot.remove_object(robot.mine)
        frame_absent = _frame_of(robot)
        pipe.reset()
        res_absent = pipe.process(frame_absent, force_detection=True)
        det_lat.append(res_absent.timings.get("detection_s", float("nan")))
        absent_det = pipe.detect(frame_absent)
        row = {
            "seed": seed, "mugs": n_mugs, "light_gain": round(gain, 3),
            "status": og.status, "iou": round(iou, 4), "correct": bool(og.status == "found" and iou >= 0.5),
            "score": None if not np.isfinite(og.score) else round(float(og.score), 4),
            "scores": [round(float(s), 4) for s in scores],
            "mine_score": None if mine_score is None else round(float(mine_score), 4),
            "mine_is_top": bool(mine_is_top),
            "mine_index": j if mine_score is not None else None,
            "candidate_scores": [round(float(v), 4) for v in cand_scores],
            "absent_scores": [round(float(c.score), 4) for c in res_absent.objects[0].candidates],
            "baseline_iou": round(base_iou, 4), "baseline_correct": bool(base_iou >= 0.5),
            "absent_status": res_absent.status,
            "absent_highlight": bool(res_absent.mask.any()),
            "absent_best_score": round(max((c.score for c in res_absent.objects[0].candidates), default=float("nan")), 4),
            "baseline_absent_highlight": bool(absent_det.detections.proposals),
        }
        if run.family is not None:
            row["texture_ids"] = [m["texture_id"] for m in robot.ground_truth()["mugs"]]
        rows.append(row)
        robot.close()
        if not args.quiet:
            where = f"{run.family} " if run.family else ""
            print(f"{where}seed {seed}: {n_mugs} mugs, mine {row['status']} iou {iou:.2f} (baseline {base_iou:.2f}); "
                  f"absent -> {row['absent_status']} (best {row['absent_best_score']})")

    present = len(rows)
    summary = {
        "correct_instance_rate": float(np.mean([r["correct"] for r in rows])),
        "mean_iou": float(np.mean([r["iou"] for r in rows])),
        "found_rate": float(np.mean([r["status"] == "found" for r in rows])),
        "ambiguous_rate": float(np.mean([r["status"] == "ambiguous" for r in rows])),
        "not_found_rate": float(np.mean([r["status"] == "not_found" for r in rows])),
        "false_highlight_rate": float(np.mean([r["absent_highlight"] for r in rows])),
        "baseline": {
            "correct_instance_rate": float(np.mean([r["baseline_correct"] for r in rows])),
            "mean_iou": float(np.mean([r["baseline_iou"] for r in rows])),
            "false_highlight_rate": float(np.mean([r["baseline_absent_highlight"] for r in rows])),
            "chance_rate": float(np.mean(chance)),
        },
        "latency_s": {
            "detection": _stats([v for v in det_lat if np.isfinite(v)]),
            "tracking_step": _stats(track_lat),
            "tracking_frame_total": _stats(track_frame_lat),
        },
        "tracking_redetections": redetections,
        "tracking_mean_iou": float(np.mean(track_ious)) if track_ious else None,
        "enrolment_s": {"five_views_with_masks": _stats(run.enrol_times),
                        "five_views_auto_segmentation": _stats(run.enrol_auto_times)},
    }
    if run.family is not None:  # mine present, but a look-alike highlighted (the worst outcome)
        summary["wrong_highlight_rate"] = float(np.mean([r["status"] == "found" and not r["correct"] for r in rows]))
    # Operating curve: what other confident thresholds would give on the same scenes, with the
    # floor and the distance ratio as configured (trades found rate against false highlights).
    curve = []
    for thr in np.round(np.arange(0.95, 0.996, 0.0025), 4):
        t1 = min(match_cfg.accept_threshold, float(thr))
        correct = [r["mine_index"] is not None
                   and decide(r["candidate_scores"], t1, float(thr), match_cfg.max_distance_ratio) == r["mine_index"]
                   for r in rows]
        fh = [decide(r["absent_scores"], t1, float(thr), match_cfg.max_distance_ratio) is not None for r in rows]
        curve.append({"confident_threshold": float(thr), "correct_instance_rate": float(np.mean(correct)),
                      "false_highlight_rate": float(np.mean(fh))})
    summary["ranking_accuracy"] = float(np.mean([r["mine_is_top"] for r in rows]))
    summary["operating_curve"] = curve
    targets = {
        "correct_instance_rate>=0.95": summary["correct_instance_rate"] >= 0.95,
        "false_highlight_rate<=0.02": summary["false_highlight_rate"] <= 0.02,
        "tracking_step_p95<=0.020s": (summary["latency_s"]["tracking_step"]["p95"] or 1e9) <= 0.020,
        "enrolment_5_images<=1s": (summary["enrolment_s"]["five_views_with_masks"]["max"] or 1e9) <= 1.0,
    }
    objects = str(args.objects) if args.objects else "procedural"
    return {
        "benchmark": "grounding",
        "backend": {"detector": args.detector, "embedder": args.embedder, "segmenter": "depth_refine", "tracker": "optical_flow"},
        "scenes": {"test_seeds": [test_seeds[0], test_seeds[-1]], "count": present, "mugs": [args.min_mugs, args.max_mugs],
                   "image": "640x480", "objects": run.family if run.family is not None else objects,
                   "absent_protocol": "same scene with the enrolled mug moved out of view; look-alikes stay"},
        "calibration": calibration,
        "matching": asdict(match_cfg),
        "summary": summary,
        "targets_met": targets,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "wall_time_s": time.perf_counter() - t_start,
        "scenes_detail": rows,
    }


def _print_result(result: dict[str, Any], args: argparse.Namespace) -> None:
    """The figures of one run, as `eval-grounding` has always printed them."""
    summary, calibration = result["summary"], result["calibration"]
    m = result["matching"]
    b = summary["baseline"]
    lat = summary["latency_s"]
    print(f"\n{result['scenes']['count']} scenes ({args.min_mugs}-{args.max_mugs} mugs), floor {m['accept_threshold']:.4f}, "
          f"confident {m['confident_threshold']:.4f}, distance ratio {m['max_distance_ratio']:.2f} ({calibration.get('source')})")
    print(f"  correct instance  {summary['correct_instance_rate']:.1%}   (baseline {b['correct_instance_rate']:.1%}, chance {b['chance_rate']:.1%})")
    print(f"  mean IoU          {summary['mean_iou']:.3f}   (baseline {b['mean_iou']:.3f})")
    print(f"  false highlight   {summary['false_highlight_rate']:.1%}   (baseline {b['false_highlight_rate']:.1%})")
    print(f"  found / ambiguous / not found: {summary['found_rate']:.1%} / {summary['ambiguous_rate']:.1%} / {summary['not_found_rate']:.1%}")
    print(f"  my mug ranked first among the candidates: {summary['ranking_accuracy']:.1%} (threshold-free)")
    pts = [c for c in summary["operating_curve"] if c["false_highlight_rate"] <= 0.05]
    if pts:
        best = max(pts, key=lambda c: c["correct_instance_rate"])
        print(f"  operating point at <= 5 % false highlights: confident threshold {best['confident_threshold']:.4f} -> "
              f"{best['correct_instance_rate']:.1%} correct, {best['false_highlight_rate']:.1%} false highlights")
    d, t = lat["detection"], lat["tracking_step"]
    if d["n"]:
        print(f"  detection latency  mean {d['mean'] * 1e3:.0f} ms, p95 {d['p95'] * 1e3:.0f} ms")
    if t["n"]:
        tf = lat["tracking_frame_total"]
        print(f"  tracking step      mean {t['mean'] * 1e3:.1f} ms, p95 {t['p95'] * 1e3:.1f} ms (mean IoU {summary['tracking_mean_iou']:.2f}); "
              f"whole tracked frame incl. 3D target + highlight: p95 {tf['p95'] * 1e3:.1f} ms")
    e = summary["enrolment_s"]["five_views_with_masks"]
    print(f"  enrolment of {args.views} views: mean {e['mean']:.3f} s, max {e['max']:.3f} s")
    verdicts = ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in result["targets_met"].items())
    print(f"  targets: {verdicts}")


def parse_families(values: list[str] | None) -> list[str] | None:
    """`--family` values (repeatable, comma-separated, `all`) -> family names in order, no duplicates; None if not given.

    Raises:
        ValueError: an unknown family (with the known names and a "did you mean").
    """
    from vla_stack.core.sim.mug_families import check_family, family_names

    if not values:
        return None
    names: list[str] = []
    for value in values:
        for name in (v.strip() for v in value.split(",")):
            if not name:
                continue
            for n in family_names() if name == "all" else [check_family(name)]:
                if n not in names:
                    names.append(n)
    if not names:
        raise ValueError("--family needs at least one family name (or 'all')")
    return names


FAMILY_FIGURES = ("correct_instance_rate", "false_highlight_rate", "wrong_highlight_rate", "not_found_rate",
                  "ambiguous_rate", "ranking_accuracy")
"""Per-family figures `eval-grounding --family` reports (rates over the family's test scenes)."""

_HIGHER_IS_BETTER = {"correct_instance_rate": True, "ranking_accuracy": True}


def family_report(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-family table, the worst family per figure and overall, and the issue's targets on the worst family.

    Args:
        results: family -> the record `_evaluate` returned for it.

    The worst family overall is the one with the lowest correct-instance rate (ties: the higher
    false-highlight rate). Targets are checked on the worst value of each figure across families.
    """
    table = {}
    for fam, res in results.items():
        s = res["summary"]
        table[fam] = {"scenes": res["scenes"]["count"], **{k: s[k] for k in FAMILY_FIGURES},
                      "baseline_correct_instance_rate": s["baseline"]["correct_instance_rate"],
                      "chance_rate": s["baseline"]["chance_rate"]}
    worst = {}
    for key in FAMILY_FIGURES:
        pick = min if _HIGHER_IS_BETTER.get(key, False) else max
        fam = pick(table, key=lambda f: table[f][key])  # noqa: B023 (used at once)
        worst[key] = {"family": fam, "value": table[fam][key]}
    worst_family = min(table, key=lambda f: (table[f]["correct_instance_rate"], -table[f]["false_highlight_rate"]))
    targets = {
        "worst correct_instance_rate>=0.95": worst["correct_instance_rate"]["value"] >= 0.95,
        "worst false_highlight_rate<=0.02": worst["false_highlight_rate"]["value"] <= 0.02,
        "worst ambiguous_rate<=0.05": worst["ambiguous_rate"]["value"] <= 0.05,
    }
    return {"per_family": table, "worst": worst, "worst_family": worst_family, "targets_met": targets}


def _print_family_table(report: dict[str, Any]) -> None:
    print("\nper texture family (rates over each family's test scenes):")
    print(f"  {'family':<11} {'scenes':>6} {'correct':>8} {'false hl':>9} {'wrong hl':>9} {'not found':>10} "
          f"{'ambiguous':>10} {'ranked 1st':>11} {'baseline':>9}")
    for fam, row in report["per_family"].items():
        print(f"  {fam:<11} {row['scenes']:>6} {row['correct_instance_rate']:>8.1%} {row['false_highlight_rate']:>9.1%} "
              f"{row['wrong_highlight_rate']:>9.1%} {row['not_found_rate']:>10.1%} {row['ambiguous_rate']:>10.1%} "
              f"{row['ranking_accuracy']:>11.1%} {row['baseline_correct_instance_rate']:>9.1%}")
    w = report["worst"]
    print(f"  worst family: {report['worst_family']} (correct instance {w['correct_instance_rate']['value']:.1%} on "
          f"{w['correct_instance_rate']['family']}, false highlight {w['false_highlight_rate']['value']:.1%} on "
          f"{w['false_highlight_rate']['family']}, ranked first {w['ranking_accuracy']['value']:.1%} on "
          f"{w['ranking_accuracy']['family']})")
    verdicts = ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in report["targets_met"].items())
    print(f"  targets: {verdicts}")


def eval_main(args: argparse.Namespace) -> int:
    """`vla-stack eval-grounding`: see the module doc. Exit 0 when it ran (targets are reported, not enforced)."""
    sim_env()
    from vla_stack.core.grounding.matching import MatchConfig

    if args.min_mugs > args.max_mugs:
        print("vla-stack eval-grounding: --min-mugs must not exceed --max-mugs", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print("vla-stack eval-grounding: --seeds must be >= 1", file=sys.stderr)
        return 2
    try:
        families = parse_families(getattr(args, "family", None))
    except ValueError as exc:
        print(f"vla-stack eval-grounding: --family: {exc}", file=sys.stderr)
        return 2
    test_seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    calib_seeds = list(range(args.calibrate))
    if set(calib_seeds) & set(test_seeds):
        print("vla-stack eval-grounding: calibration and test seeds overlap; raise --first-seed", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="vla_grounding_eval_"))
    if families is not None:
        return _eval_families(args, families, test_seeds, calib_seeds, workdir)

    # -- one run: procedural textures or --objects DIR (as before texture families existed) --------
    run = _Run(args, None, workdir, MatchConfig(decision=getattr(args, "decision", "global")))
    calibration: dict[str, Any] = {"seeds": [calib_seeds[0], calib_seeds[-1]] if calib_seeds else [], "threshold": None}
    if args.threshold is not None:
        run.match_cfg = MatchConfig(**{**asdict(run.match_cfg), "accept_threshold": float(args.threshold),
                                       "confident_threshold": None})
        calibration["threshold"] = float(args.threshold)
        calibration["source"] = "--threshold"
    elif calib_seeds:
        positives, negatives = _calibration_frames(run, calib_seeds)
        run.match_cfg, record = _calibrated(run.match_cfg, positives, negatives, args.max_false_accept)
        calibration.update(record)
        _print_calibration(record, f"{len(calib_seeds)} scenes")
    else:
        calibration.update(threshold=run.match_cfg.accept_threshold, source="default")
    result = _evaluate(run, test_seeds, calibration)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    _print_result(result, args)
    print(f"wrote {out}")
    return 0


def _eval_families(args: argparse.Namespace, families: list[str], test_seeds: list[int], calib_seeds: list[int],
                   workdir: Path) -> int:
    """`eval-grounding --family ...`: one run per family, leave-one-family-out calibration, per-family report."""
    from vla_stack.core.grounding.matching import MatchConfig
    from vla_stack.core.sim.mug_families import family_description

    if args.objects:
        print("vla-stack eval-grounding: give either --objects DIR or --family NAME, not both", file=sys.stderr)
        return 2
    calibrate_on: dict[str, list[str]] = {}
    if calib_seeds and args.threshold is None:
        try:
            pool = parse_families([args.calibrate_families]) or []
        except ValueError as exc:
            print(f"vla-stack eval-grounding: --calibrate-families: {exc}", file=sys.stderr)
            return 2
        for fam in families:
            calibrate_on[fam] = [f for f in pool if f != fam]  # never the family under test
            if not calibrate_on[fam]:
                print(f"vla-stack eval-grounding: no calibration family left for test family '{fam}' once it is left out "
                      f"(--calibrate-families {args.calibrate_families}); add another family", file=sys.stderr)
                return 2
    out = Path(args.out) if Path(args.out) != DEFAULT_RESULTS else DEFAULT_FAMILY_RESULTS
    t_start = time.perf_counter()
    frames: dict[str, tuple[list, list]] = {}  # calibration frames per family, computed once
    results: dict[str, dict[str, Any]] = {}
    for fam in families:
        run = _Run(args, fam, workdir, MatchConfig(decision=getattr(args, "decision", "global")))
        calibration: dict[str, Any] = {"seeds": [calib_seeds[0], calib_seeds[-1]] if calib_seeds else [], "threshold": None}
        if args.threshold is not None:
            run.match_cfg = MatchConfig(**{**asdict(run.match_cfg), "accept_threshold": float(args.threshold),
                                           "confident_threshold": None})
            calibration.update(threshold=float(args.threshold), source="--threshold")
        elif calib_seeds:
            for cal in calibrate_on[fam]:
                if cal not in frames:
                    frames[cal] = _calibration_frames(_Run(args, cal, workdir, MatchConfig(decision=getattr(args, "decision", "global"))), calib_seeds)
            positives = [p for cal in calibrate_on[fam] for p in frames[cal][0]]
            negatives = [n for cal in calibrate_on[fam] for n in frames[cal][1]]
            run.match_cfg, record = _calibrated(run.match_cfg, positives, negatives, args.max_false_accept)
            calibration.update(record, families=calibrate_on[fam], left_out=fam, scenes_per_family=len(calib_seeds))
            _print_calibration(record, f"{len(calib_seeds)} scenes each of {', '.join(calibrate_on[fam])} "
                                       f"(left out: {fam})")
        else:
            calibration.update(threshold=run.match_cfg.accept_threshold, source="default")
        print(f"\n== family {fam}: {family_description(fam)}")
        results[fam] = _evaluate(run, test_seeds, calibration)
        _print_result(results[fam], args)
    report = family_report(results)
    protocol = ("decision rule calibrated leave-one-family-out: each family is tested with a rule calibrated on "
                f"--calibrate-families {args.calibrate_families} minus itself ({len(calib_seeds)} scenes each, seeds "
                f"0..{len(calib_seeds) - 1})" if calibrate_on else
                "fixed decision rule (--threshold)" if args.threshold is not None else
                "the shipped decision rule (MatchConfig defaults), no calibration")
    combined = {
        "benchmark": "grounding_families",
        "families": {fam: family_description(fam) for fam in families},
        "protocol": {"calibration": protocol, "test_seeds": [test_seeds[0], test_seeds[-1]],
                     "same_seeds_every_family": True, "mugs": [args.min_mugs, args.max_mugs],
                     "mine": "chosen by the scene seed, as in every evaluation and the demo"},
        **report,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "wall_time_s": time.perf_counter() - t_start,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(combined, indent=2) + "\n")
    _print_family_table(report)
    print(f"wrote {out}")
    return 0
