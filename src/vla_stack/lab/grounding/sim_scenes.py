"""Simulated scenes and reference photos for grounding experiments, and `vla-stack enroll --from-sim`.

Enrolling a user's object from photos is runtime (`vla_stack.core.grounding.cli`); enrolling
the simulated scene's own mug from studio renders of it is the lab's: the demo, the grounding
evaluation and the metric training all start from these renders.

- `sim_reference_views(robot, mug)`: reference renders of one mug with exact masks.
- `scene_config(seed, args)` / `jitter_lighting(robot, seed)`: the evaluation's seeded scene,
  camera and lighting jitter (shared by `eval-grounding` and `train-grounding-metric`).
- `add_sim_enroll_arguments(parser)` / `enroll_from_sim_main(args)`: the `--from-sim` flags of
  `vla-stack enroll` and the command behind them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_REFERENCE_ELEVATIONS_DEG = (30.0, 50.0, 20.0, 60.0, 45.0)
"""Camera elevations of the simulated reference photos, deg above the table: like photos a
person takes of a cup standing on a table (mostly from above, one low side view)."""


def sim_reference_views(
    robot: Any, mug: str, n: int = 5, size: int = 224, elevations_deg: Any = DEFAULT_REFERENCE_ELEVATIONS_DEG
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`n` reference renders of `mug` alone (studio backdrop) and their exact object masks.

    Uses `SimRobot.render_reference_views_with_masks` (masks from a segmentation render of the
    same views, so no segmentation guesswork is involved).
    """
    if mug not in robot.mug_names():
        raise KeyError(f"unknown mug '{mug}' (mugs: {list(robot.mug_names())})")
    return robot.render_reference_views_with_masks(mug, n, size, elevations_deg=elevations_deg)


def sim_env() -> None:
    """Select MuJoCo's headless EGL renderer unless the caller chose one (before creating a renderer)."""
    os.environ.setdefault("MUJOCO_GL", "egl")


def scene_config(seed: int, args: argparse.Namespace) -> Any:
    """The grounding evaluation's scene `seed`: 2-4 mugs (`args.min_mugs`..`args.max_mugs`), camera jitter ±4 cm / ±3 cm look-at."""
    from vla_stack.core.sim.config import SceneConfig

    rng = np.random.default_rng([seed, 7])
    n = int(rng.integers(args.min_mugs, args.max_mugs + 1))
    base = SceneConfig()
    pos = np.asarray(base.camera_position) + rng.uniform(-0.04, 0.04, 3)
    look = np.asarray(base.camera_look_at) + rng.uniform(-0.03, 0.03, 3)
    return SceneConfig(seed=seed, num_mugs=n, camera_position=tuple(pos), camera_look_at=tuple(look),
                       texture_dir=str(args.objects) if args.objects else "")


def jitter_lighting(robot: Any, seed: int) -> float:
    """Scale the scene's lights by a seeded factor (0.7..1.25); returns the factor."""
    rng = np.random.default_rng([seed, 11])
    gain = float(rng.uniform(0.7, 1.25))
    m = robot.model
    m.light_diffuse[:] = np.clip(m.light_diffuse * gain, 0, 1)
    m.vis.headlight.diffuse[:] = np.clip(np.asarray(m.vis.headlight.diffuse) * gain, 0, 1)
    m.vis.headlight.ambient[:] = np.clip(np.asarray(m.vis.headlight.ambient) * gain, 0, 1)
    return gain


# ---- vla-stack enroll --from-sim ----------------------------------------------------------------
def add_sim_enroll_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator flags of `vla-stack enroll` (after `core.grounding.cli.add_enroll_arguments`)."""
    parser.add_argument("--from-sim", type=int, default=None, metavar="SEED",
                        help="render the reference views of the simulated scene SEED's own mug instead of reading IMAGES")
    parser.add_argument("--sim-mugs", type=int, default=3, choices=[2, 3, 4], help="mugs in the simulated scene (default: 3)")
    parser.add_argument("--views", type=int, default=5, help="reference views to render with --from-sim (default: 5)")
    parser.add_argument("--size", type=int, default=224, help="size of the rendered reference views, px (default: 224)")
    parser.add_argument("--objects", type=Path, default=None, help="with --from-sim: directory of mug textures for the scene")


def enroll_from_sim_main(args: argparse.Namespace) -> int:
    """`vla-stack enroll NAME --from-sim SEED`: render scene SEED's own mug and enrol it. Exit codes as `enroll_main`."""
    from vla_stack.core.grounding.cli import EnrolmentReferences, enroll_main

    if args.images:
        print("vla-stack enroll: give either IMAGES or --from-sim, not both", file=sys.stderr)
        return 2
    sim_env()
    from vla_stack.core.sim.config import SceneConfig
    from vla_stack.core.sim.robot import SimRobot

    try:
        t0 = time.perf_counter()
        robot = SimRobot(SceneConfig(seed=args.from_sim, num_mugs=args.sim_mugs,
                                     texture_dir=str(args.objects) if args.objects else ""))
        views, masks = sim_reference_views(robot, robot.mine, args.views, args.size)
        render_s = time.perf_counter() - t0
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"vla-stack enroll: {exc}", file=sys.stderr)
        return 2
    source = f"sim:seed={args.from_sim}:mug={robot.mine}"
    return enroll_main(args, EnrolmentReferences(list(views), list(masks), source, render_s))
