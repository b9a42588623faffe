#!/usr/bin/env python3
"""Closed-loop pick-and-place with the targets grounding publishes, in process (no ROS, no planner).

For every seeded scene, runs the built-in expert (rtc chunking, injected inference delay) on
"bring my cup to the tray" three ways, on the same scene:

- gt:       ground-truth grasp/place targets (a perfect grounding node; what bench/chunking.py uses);
- personal: targets from `GroundingPipeline` (config/grounding_node.yaml, the personal mug enrolled
            from 5 rendered reference views) on the 640x480 scene camera rendered at 15 Hz sim time;
- generic:  the same pipeline with `personal: false` (best cup proposal, no memory);
- planner:  personal, plus the planner core (`TaskPlanner`, offline backend, config/planner_node.yaml)
            in the loop: its subtask and latent condition the expert, and its status holds it, as
            in the stack (optional: `--modes gt personal generic planner`).

and reports success (my mug upright in the tray, released), correct mug (the first mug the gripper
held is mine), the grounded grasp point's error against ground truth while the mug is on the table,
how often permanence memory was used, and the failure reasons. Detection runs synchronously, so
this is grounding *quality* in the loop, not the ROS stack's timing (`vla-stack demo` measures that).

    python bench/grounded_loop.py                     # seeds 0-19 (the demo's), 3 modes
    python bench/grounded_loop.py --seeds 5 --modes personal --workers 1

Writes bench/results/grounded_loop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
_POLICY = None


def grounding_config(path: Path, personal: bool):
    """GroundingConfig from the grounding node's YAML (flat and dotted `target.`/`matching.` keys)."""
    from vla_stack.bringup import node_parameters
    from vla_stack.core.grounding.pipeline import GroundingConfig

    params = node_parameters(path, "grounding_node")
    fields = GroundingConfig.__dataclass_fields__
    kwargs: dict = {}
    nested: dict[str, dict] = {}
    for key, value in params.items():
        head, _, rest = key.partition(".")
        if rest and head in ("target", "matching", "highlight"):
            nested.setdefault(head, {})[rest] = value
        elif key in fields and key not in ("memory_root", "base_frame"):
            kwargs[key] = json.loads(value) if key.endswith("_args") else value
    kwargs.update(nested)
    kwargs["personal"] = personal
    return GroundingConfig(**kwargs)


def planner_for(task, path: Path):
    """TaskPlanner + offline backend configured from the planner node's YAML, on the task's sim clock."""
    from vla_stack.bringup import node_parameters
    from vla_stack.core.planning.backends.offline import OfflinePlanner, OfflinePlannerConfig
    from vla_stack.core.planning.monitor import MonitorConfig
    from vla_stack.core.planning.task_planner import TaskPlanner, TaskPlannerConfig

    params = node_parameters(path, "planner_node")

    def section(cls, prefix: str = ""):
        fields = cls.__dataclass_fields__
        return cls(**{k[len(prefix):]: v for k, v in params.items()
                      if k.startswith(prefix) and k[len(prefix):] in fields})

    return TaskPlanner(OfflinePlanner(section(OfflinePlannerConfig, "offline.")), section(TaskPlannerConfig),
                       section(MonitorConfig, "monitor."), clock=lambda: task.sim.time)


def _init(checkpoint: str) -> None:
    global _POLICY
    from vla_stack.core.policy.backends.builtin import BuiltinExpertConfig, BuiltinExpertPolicy

    _POLICY = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=checkpoint))


def _run(job: tuple) -> dict:
    mode, seed, num_mugs, delay, max_time, views = job
    with tempfile.TemporaryDirectory(prefix="vla_grounded_loop_") as tmp:
        return _episode(mode, seed, num_mugs, delay, max_time, views, Path(tmp))


def _episode(mode: str, seed: int, num_mugs: int, delay: int, max_time: float, views: int, tmp: Path) -> dict:
    from vla_stack.core.grounding.memory import PersonalObjectMemory
    from vla_stack.core.grounding.pipeline import GroundingPipeline
    from vla_stack.lab.grounding.sim_scenes import sim_reference_views
    from vla_stack.lab.policy.evaluation import run_episode
    from vla_stack.lab.policy.grounded_targets import GroundedTargets, GroundTruthTargets
    from vla_stack.lab.policy.simulation import SimPickPlace

    t0 = time.perf_counter()
    task = SimPickPlace(seed, num_mugs=num_mugs, camera_size=(640, 480))
    if mode == "gt":
        targets = GroundTruthTargets()
    else:
        memory = PersonalObjectMemory(tmp)
        pipe = GroundingPipeline(grounding_config(ROOT / "config" / "grounding_node.yaml", mode != "generic"), memory)
        refs, masks = sim_reference_views(task.sim, task.sim.mine, views)
        memory.enroll("my_mug", refs, "cup", pipe.embedder, masks=masks, source=f"sim:seed={seed}")
        planner = planner_for(task, ROOT / "config" / "planner_node.yaml") if mode == "planner" else None
        targets = GroundedTargets(pipe, planner=planner)
    res = run_episode(_POLICY, seed, "rtc", delay, max_time=max_time, targets=targets, task=task).to_dict()
    log = targets.log
    res.update(mode=mode, first_held=log.first_held, correct=log.first_held == task.mug, frames=log.frames,
               found=log.found, memory=log.memory, not_found=log.not_found, ambiguous=log.ambiguous,
               rejected=log.rejected, target_error=log.error_stats(), wall_s=round(time.perf_counter() - t0, 1))
    task.sim.close()
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--seeds", type=int, default=20, help="scenes (default: 20)")
    parser.add_argument("--first-seed", type=int, default=0, help="first scene seed (default: 0, as vla-stack demo)")
    parser.add_argument("--modes", nargs="+", default=["gt", "personal", "generic"], choices=["gt", "personal", "generic", "planner"])
    parser.add_argument("--mugs", type=int, default=3, help="mugs per scene (default: 3, as vla-stack demo)")
    parser.add_argument("--delay", type=int, default=2, help="injected inference delay, 50 ms control steps (default: 2)")
    parser.add_argument("--views", type=int, default=5, help="reference views enrolled (default: 5)")
    parser.add_argument("--max-time", type=float, default=40.0, help="episode time limit, s (default: 40)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default: 2)")
    parser.add_argument("--out", type=Path, default=RESULTS / "grounded_loop.json")
    args = parser.parse_args()

    from _parallel import run_jobs

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    jobs = [(m, s, args.mugs, args.delay, args.max_time, args.views) for m in args.modes for s in seeds]
    t0 = time.time()
    results: list[dict] = run_jobs(_run, jobs, _init, (args.checkpoint,), args.workers)
    results.sort(key=lambda r: (args.modes.index(r["mode"]), r["seed"]))
    print(f"\n{len(jobs)} episodes in {time.time() - t0:.0f} s (seeds {seeds[0]}-{seeds[-1]}, {args.mugs} mugs, "
          f"rtc, delay {args.delay} steps)")
    print(f"{'mode':<9} {'seed':>4} {'ok':>3} {'mine':>4} {'time s':>6} {'xy err mm':>9} {'max':>5} {'z err':>5} "
          f"{'mem':>4} {'nf':>3}  reason")
    summary: dict[str, dict] = {}
    for m in args.modes:
        eps = [r for r in results if r["mode"] == m]
        for r in eps:
            e = r["target_error"]
            xy = f"{1000 * e['xy_median_m']:.0f}" if e else "-"
            mx = f"{1000 * e['xy_max_m']:.0f}" if e else "-"
            z = f"{1000 * e['z_median_m']:.0f}" if e else "-"
            t = f"{r['task_time']:.1f}" if r["task_time"] else "-"
            print(f"{m:<9} {r['seed']:>4} {'yes' if r['success'] else 'no':>3} {'yes' if r['correct'] else 'no':>4} "
                  f"{t:>6} {xy:>9} {mx:>5} {z:>5} {r['memory']:>4} {r['not_found']:>3}  {r['reason'][:70]}")
        n = len(eps)
        summary[m] = {"episodes": n, "success_rate": sum(r["success"] for r in eps) / n,
                      "correct_rate": sum(bool(r["correct"]) for r in eps) / n,
                      "no_grasp": sum(r["first_held"] is None for r in eps)}
    for m, s in summary.items():
        print(f"{m:<9} success {s['success_rate']:.0%}  correct mug {s['correct_rate']:.0%}  "
              f"never held a mug {s['no_grasp']}/{s['episodes']}")
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "command": " ".join(sys.argv), "checkpoint": args.checkpoint or "shipped", "seeds": seeds,
        "mugs": args.mugs, "delay_steps": args.delay, "summary": summary, "episodes": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
