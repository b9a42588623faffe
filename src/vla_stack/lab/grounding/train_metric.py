"""`vla-stack train-grounding-metric`: fit the appearance descriptor's metric (see `metric`) on simulated scenes.

For each scene seed (default 2000-2799: disjoint from the grounding evaluation's test seeds 1000+,
its calibration seeds 0-299 and the demo's 0-19) and *every* mug in it: the appearance features of
its studio reference renders (as `vla-stack enroll --from-sim` takes them) and of the depth
detector's proposal that covers it in the scene camera (IoU >= 0.5 with the mug's segmentation),
under the evaluation's camera and lighting jitter. The instance id is the label; LDA (shrunk
within-instance scatter) learns the directions that separate instances rather than views.

Features are cached (`--cache`, one .npz) so refits with other `--dim` / `--shrinkage` take seconds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

DEFAULT_SEEDS = (2000, 2800)


def scene_features(seed: int, min_mugs: int = 2, max_mugs: int = 4, views: int = 5) -> dict[str, np.ndarray]:
    """Features of every mug's references and scene proposal in scene `seed` (see the module doc).

    Returns arrays: features (N, D), instance (N,) = seed * 16 + mug index, is_reference (N,) bool,
    is_mine (N,) bool.
    """
    from vla_stack.core.grounding.embedders import AppearanceEmbedder, crop_object
    from vla_stack.core.grounding.imageops import mask_iou
    from vla_stack.core.grounding.proposals import DETECTORS
    from vla_stack.core.sim.robot import SimRobot
    from vla_stack.lab.grounding.sim_scenes import jitter_lighting, scene_config, sim_reference_views

    embedder = AppearanceEmbedder(projection="none")
    detector = DETECTORS.create("depth_clusters")
    ns = argparse.Namespace(min_mugs=min_mugs, max_mugs=max_mugs, objects=None)
    robot = SimRobot(scene_config(seed, ns))
    try:
        jitter_lighting(robot, seed)
        rgb, depth = robot.render()
        seg = robot.render_segmentation()
        labels = robot.segmentation_labels()
        det = detector.detect(rgb, depth, robot.intrinsics(), ["cup"])
        props = [p for p in det.proposals if p.mask is not None]
        feats: list[np.ndarray] = []
        inst: list[int] = []
        is_ref: list[bool] = []
        mine: list[bool] = []
        for k, name in enumerate(robot.mug_names()):
            ident = seed * 16 + k
            refs, masks = sim_reference_views(robot, name, views)
            f = embedder.features([crop_object(v, m) for v, m in zip(refs, masks, strict=True)])
            feats.extend(f)
            inst.extend([ident] * len(f))
            is_ref.extend([True] * len(f))
            mine.extend([name == robot.mine] * len(f))
            truth = seg == labels[name]
            ious = [mask_iou(p.mask, truth) for p in props]
            if ious and max(ious) >= 0.5:
                p = props[int(np.argmax(ious))]
                feats.append(embedder.features([crop_object(rgb, p.mask)])[0])
                inst.append(ident)
                is_ref.append(False)
                mine.append(name == robot.mine)
    finally:
        robot.close()
    return {"features": np.asarray(feats, np.float32).reshape(-1, embedder.feature_dim),
            "instance": np.asarray(inst, np.int64), "is_reference": np.asarray(is_ref, bool), "is_mine": np.asarray(mine, bool)}


def _worker(seed: int) -> dict[str, np.ndarray]:
    os.environ.setdefault("MUJOCO_GL", "egl")
    return scene_features(seed)


def collect(seeds: Sequence[int], workers: int = 2, progress: bool = True) -> dict[str, np.ndarray]:
    """`scene_features` of every seed, concatenated (parallel processes, a progress bar)."""
    from tqdm import tqdm

    parts: list[dict[str, np.ndarray]] = []
    if workers <= 1:
        for seed in tqdm(seeds, desc="scenes", disable=not progress):
            parts.append(_worker(seed))
    else:
        # spawn, not fork: a forked child of a process holding an EGL context / BLAS threads can hang
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for part in tqdm(pool.map(_worker, seeds, chunksize=4), total=len(seeds), desc="scenes", disable=not progress):
                parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _load_cache(path: Path, layout: str) -> dict[str, np.ndarray] | None:
    """Cached features (with `seed_list`, the scenes they cover) when the file exists and has `layout`."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["layout"]) != layout:
                print(f"{path}: features of another descriptor layout, ignored")
                return None
            out = {k: z[k] for k in ("features", "instance", "is_reference", "is_mine")}
            if "seed_list" in z:
                out["seed_list"] = z["seed_list"]
            else:  # first format: the seed range as "A:B"
                a, b = (int(v) for v in str(z["seeds"]).split(":"))
                out["seed_list"] = np.arange(a, b)
            return out
    except (OSError, KeyError, ValueError) as exc:
        print(f"{path}: unreadable feature cache ({exc}), ignored")
        return None


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from vla_stack.core.grounding.metric import DEFAULT_PROJECTION

    parser.add_argument("--seeds", default=f"{DEFAULT_SEEDS[0]}:{DEFAULT_SEEDS[1]}", metavar="A:B",
                        help="scene seeds A..B-1 to learn from (default %(default)s; keep them apart from the evaluation's)")
    parser.add_argument("--dim", type=int, default=128, help="output dimensions (default %(default)s)")
    parser.add_argument("--shrinkage", type=float, default=0.7, help="within-instance scatter shrinkage 0..1 (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="parallel scene renderers (default %(default)s)")
    parser.add_argument("--cache", type=Path, default=Path("bench/results/grounding_metric_features.npz"),
                        help="feature cache: scenes already in it are not rendered again (default %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_PROJECTION, help="projection file to write (default: the shipped one)")


def train_main(args: argparse.Namespace) -> int:
    """Collect (or reuse cached) features, fit the projection, write it; exit 0 on success."""
    from vla_stack.core.grounding.embedders import AppearanceEmbedder
    from vla_stack.core.grounding.metric import fit_lda

    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        a, b = (int(v) for v in str(args.seeds).split(":"))
        if not 0 <= a < b:
            raise ValueError
    except ValueError:
        print(f"vla-stack train-grounding-metric: --seeds must be A:B with 0 <= A < B, got {args.seeds!r}", file=sys.stderr)
        return 2
    seeds = range(a, b)
    if set(seeds) & (set(range(0, 300)) | set(range(1000, 1100))):
        print("vla-stack train-grounding-metric: warning: these seeds overlap the grounding evaluation's "
              "calibration (0-299) or test (1000-1099) seeds; its figures would then be optimistic", file=sys.stderr)
    layout = AppearanceEmbedder(projection="none").layout
    whole = _load_cache(args.cache, layout) if args.cache else None  # read once; rewritten below with new scenes
    keys = ("features", "instance", "is_reference", "is_mine")
    have: set[int] = set()
    cached = None
    if whole is not None:
        have = {int(s) for s in whole["seed_list"] if s in seeds}
        keep = np.isin(whole["instance"] // 16, list(have))
        cached = {k: whole[k][keep] for k in keys}
        print(f"features of {len(have)} scene(s) from {args.cache}")
    missing = [s for s in seeds if s not in have]
    parts = [cached] if cached is not None and have else []
    if missing:
        t0 = time.perf_counter()
        fresh = collect(missing, args.workers)
        print(f"collected {len(fresh['features'])} samples of {len(np.unique(fresh['instance']))} mugs "
              f"from {len(missing)} scenes in {time.perf_counter() - t0:.0f} s")
        parts.append(fresh)
    data = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    if missing and args.cache:
        data_all, all_seeds = data, sorted(have | set(missing))
        if whole is not None:  # keep the other scenes already in the cache
            other = ~np.isin(whole["instance"] // 16, list(seeds))
            data_all = {k: np.concatenate([whole[k][other], data[k]]) for k in keys}
            all_seeds = sorted(set(all_seeds) | {int(s) for s in whole["seed_list"]})
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.cache, layout=np.array(layout), seed_list=np.asarray(all_seeds, np.int64), **data_all)
    n_inst = len(np.unique(data["instance"]))
    scene = int(np.count_nonzero(~data["is_reference"]))
    info = (f"LDA dim {args.dim} shrinkage {args.shrinkage:g}; seeds {args.seeds}; {n_inst} mugs, "
            f"{len(data['features'])} samples ({scene} scene crops)")
    proj = fit_lda(data["features"], data["instance"], args.dim, args.shrinkage, layout=layout, info=info)
    proj.save(args.out)
    print(f"wrote {args.out} ({info}; digest {proj.digest})")
    return 0
