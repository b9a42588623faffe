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
from dataclasses import asdict
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


def eval_main(args: argparse.Namespace) -> int:
    """`vla-stack eval-grounding`: see the module doc. Exit 0 when it ran (targets are reported, not enforced)."""
    sim_env()
    from vla_stack.core.grounding.imageops import mask_iou
    from vla_stack.core.grounding.matching import MatchConfig, calibrate_decision, decide
    from vla_stack.core.grounding.memory import PersonalObjectMemory
    from vla_stack.core.grounding.pipeline import (
        GroundingConfig,
        GroundingFrame,
        GroundingPipeline,
        select_generic,
    )
    from vla_stack.core.sim.robot import SimRobot

    if args.min_mugs > args.max_mugs:
        print("vla-stack eval-grounding: --min-mugs must not exceed --max-mugs", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print("vla-stack eval-grounding: --seeds must be >= 1", file=sys.stderr)
        return 2
    test_seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    calib_seeds = list(range(args.calibrate))
    if set(calib_seeds) & set(test_seeds):
        print("vla-stack eval-grounding: calibration and test seeds overlap; raise --first-seed", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="vla_grounding_eval_"))
    match_cfg = MatchConfig()
    enrol_times: list[float] = []
    enrol_auto_times: list[float] = []

    def build(seed: int) -> tuple[Any, GroundingPipeline, float]:
        cfg = scene_config(seed, args)
        robot = SimRobot(cfg)
        gain = jitter_lighting(robot, seed)
        memory = PersonalObjectMemory(workdir / f"seed_{seed}")
        pipe = GroundingPipeline(GroundingConfig(detector=args.detector, embedder=args.embedder, matching=match_cfg), memory)
        views, masks = sim_reference_views(robot, robot.mine, args.views, elevations_deg=args.ref_elevations)
        t0 = time.perf_counter()
        memory.enroll("my_mug", views, "cup", pipe.embedder, masks=masks, source=f"sim:seed={seed}")
        enrol_times.append(time.perf_counter() - t0)
        if len(enrol_auto_times) < 10:  # enrolment with automatic reference segmentation, for comparison
            t0 = time.perf_counter()
            memory.enroll("my_mug_auto", views, "cup", pipe.embedder, source="auto-seg")
            enrol_auto_times.append(time.perf_counter() - t0)
        pipe.set_targets(["my_mug"])
        return robot, pipe, gain

    def frame_of(robot: Any) -> GroundingFrame:
        rgb, depth = robot.render()
        return GroundingFrame(rgb, depth, robot.intrinsics(), robot.camera_pose())

    # -- calibration -----------------------------------------------------------------------------
    calibration: dict[str, Any] = {"seeds": [calib_seeds[0], calib_seeds[-1]] if calib_seeds else [], "threshold": None}
    if args.threshold is not None:
        match_cfg = MatchConfig(**{**asdict(match_cfg), "accept_threshold": float(args.threshold), "confident_threshold": None})
        calibration["threshold"] = float(args.threshold)
        calibration["source"] = "--threshold"
    elif calib_seeds:
        # Whole-scene calibration of the decision rule. Candidate scores do not depend on which
        # other mugs are in view, so every subset of a scene's look-alikes is a frame the rule
        # must handle: with the mug (positives) and without it (negatives: what the eval's
        # mug-absent frames are).
        import itertools

        positives: list[tuple[list[float], int]] = []
        negatives: list[list[float]] = []
        for seed in calib_seeds:
            robot, pipe, _ = build(seed)
            frame = frame_of(robot)
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
        rule = calibrate_decision(positives, negatives, args.max_false_accept)
        match_cfg = MatchConfig(**{**asdict(match_cfg), "accept_threshold": rule["accept_threshold"],
                                   "confident_threshold": rule["confident_threshold"],
                                   "max_distance_ratio": rule["max_distance_ratio"]})
        calibration.update(threshold=rule["accept_threshold"], source="calibrated", rule=rule,
                           positives=len(positives), negatives=len(negatives), max_false_accept=args.max_false_accept)
        print(f"calibrated on {len(calib_seeds)} scenes ({len(positives)} frames with the mug, {len(negatives)} without): "
              f"floor {rule['accept_threshold']:.4f}, confident {rule['confident_threshold']:.4f}, distance ratio "
              f"{rule['max_distance_ratio']:.2f} (calibration: {rule['correct_rate']:.1%} correct, "
              f"{rule['false_accept_rate']:.1%} false accepts)")
    else:
        calibration.update(threshold=match_cfg.accept_threshold, source="default")

    # -- test scenes -----------------------------------------------------------------------------
    rows: list[dict[str, Any]] = []
    det_lat: list[float] = []
    track_lat: list[float] = []
    track_frame_lat: list[float] = []
    redetections = 0
    track_ious: list[float] = []
    chance: list[float] = []
    t_start = time.perf_counter()
    for seed in test_seeds:
        robot, pipe, gain = build(seed)
        n_mugs = len(robot.mug_names())
        chance.append(1.0 / n_mugs)
        frame = frame_of(robot)
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
        frame_absent = frame_of(robot)
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
        rows.append(row)
        robot.close()
        if not args.quiet:
            print(f"seed {seed}: {n_mugs} mugs, mine {row['status']} iou {iou:.2f} (baseline {base_iou:.2f}); "
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
        "enrolment_s": {"five_views_with_masks": _stats(enrol_times), "five_views_auto_segmentation": _stats(enrol_auto_times)},
    }
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
    result = {
        "benchmark": "grounding",
        "backend": {"detector": args.detector, "embedder": args.embedder, "segmenter": "depth_refine", "tracker": "optical_flow"},
        "scenes": {"test_seeds": [test_seeds[0], test_seeds[-1]], "count": present, "mugs": [args.min_mugs, args.max_mugs],
                   "image": "640x480", "objects": str(args.objects) if args.objects else "procedural",
                   "absent_protocol": "same scene with the enrolled mug moved out of view; look-alikes stay"},
        "calibration": calibration,
        "matching": asdict(match_cfg),
        "summary": summary,
        "targets_met": targets,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "wall_time_s": time.perf_counter() - t_start,
        "scenes_detail": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    b = summary["baseline"]
    lat = summary["latency_s"]
    print(f"\n{present} scenes ({args.min_mugs}-{args.max_mugs} mugs), floor {match_cfg.accept_threshold:.4f}, confident "
          f"{match_cfg.confident_threshold:.4f}, distance ratio {match_cfg.max_distance_ratio:.2f} ({calibration.get('source')})")
    print(f"  correct instance  {summary['correct_instance_rate']:.1%}   (baseline {b['correct_instance_rate']:.1%}, chance {b['chance_rate']:.1%})")
    print(f"  mean IoU          {summary['mean_iou']:.3f}   (baseline {b['mean_iou']:.3f})")
    print(f"  false highlight   {summary['false_highlight_rate']:.1%}   (baseline {b['false_highlight_rate']:.1%})")
    print(f"  found / ambiguous / not found: {summary['found_rate']:.1%} / {summary['ambiguous_rate']:.1%} / {summary['not_found_rate']:.1%}")
    print(f"  my mug ranked first among the candidates: {summary['ranking_accuracy']:.1%} (threshold-free)")
    pts = [c for c in curve if c["false_highlight_rate"] <= 0.05]
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
    verdicts = ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in targets.items())
    print(f"  targets: {verdicts}")
    print(f"wrote {out}")
    return 0
