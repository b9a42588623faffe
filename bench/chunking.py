#!/usr/bin/env python3
"""Chunk scheduling strategies under injected inference delay: simulated pick-and-place.

For every strategy (rtc, sync, naive_async, temporal_ensemble) and every injected inference
delay (0, 2, 4, 8 control steps of 50 ms), runs the built-in expert closed loop on the same
seeded scenes (`vla_stack.lab.policy.evaluation.run_episode`: MuJoCo Panda, 3 look-alike mugs,
ground-truth grasp/place targets standing in for grounding, no planner) and reports:

- success rate (mug upright in the tray, released, gripper clear);
- task time of the successful episodes (s, time until success);
- smoothness of the executed arm targets: median peak jerk (rad/s³) and the velocity jump at
  chunk boundaries (rad/s², mean / max) next to the same measure at non-boundary steps.

The delay is injected in lockstep (a chunk requested at step k is delivered at step k + d),
so results do not depend on this machine's speed. Scenes use seeds --seed-base .. + --scenes,
disjoint from the training demonstrations' seeds (0 .. ~1200).

    python bench/chunking.py                          # 50 scenes x 4 strategies x 4 delays
    python bench/chunking.py --scenes 10 --workers 2  # quicker look
    python bench/chunking.py --strategies rtc naive_async --delays 0 8

Writes bench/results/chunking.json (summary per strategy and delay, every episode). Targets
(issue 5): rtc succeeds on >= 90 % of 50 scenes at delay 0 and >= 85 % at delay 8, with smoother
boundaries than naive_async and faster completion than sync.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
RESULTS = Path(__file__).resolve().parent / "results"
_POLICY = None


def _init(checkpoint: str) -> None:
    global _POLICY
    from vla_stack.core.policy.backends.builtin import BuiltinExpertConfig, BuiltinExpertPolicy

    _POLICY = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=checkpoint))


def _run(job: tuple[str, int, int, float]) -> dict:
    from vla_stack.lab.policy.evaluation import run_episode

    strategy, delay, seed, max_time = job
    t0 = time.perf_counter()
    res = run_episode(_POLICY, seed, strategy, delay, max_time=max_time).to_dict()
    res["wall_s"] = round(time.perf_counter() - t0, 2)
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--scenes", type=int, default=50, help="seeded scenes per strategy and delay (default: 50)")
    parser.add_argument("--seed-base", type=int, default=10000, help="seed of the first scene (default: 10000)")
    parser.add_argument("--strategies", nargs="+", default=["rtc", "sync", "naive_async", "temporal_ensemble"])
    parser.add_argument("--delays", nargs="+", type=int, default=[0, 2, 4, 8], help="injected delays, control steps")
    parser.add_argument("--max-time", type=float, default=40.0, help="episode time limit, s (default: 40)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default: 2)")
    parser.add_argument("--out", type=Path, default=RESULTS / "chunking.json")
    args = parser.parse_args()

    from _parallel import run_jobs

    from vla_stack.lab.policy.evaluation import EpisodeMetrics, summarize

    jobs = [(s, d, args.seed_base + i, args.max_time) for s in args.strategies for d in args.delays for i in range(args.scenes)]
    t0 = time.time()
    results: list[dict] = run_jobs(_run, jobs, _init, (args.checkpoint,), args.workers)
    fields = set(EpisodeMetrics.__dataclass_fields__)
    summary: dict[str, dict[str, dict]] = {}
    for s in args.strategies:
        summary[s] = {}
        for d in args.delays:
            eps = [EpisodeMetrics(**{k: v for k, v in r.items() if k in fields}) for r in results
                   if r["strategy"] == s and r["delay"] == d]
            summary[s][str(d)] = summarize(eps)

    print(f"\n{len(jobs)} episodes in {time.time() - t0:.0f} s ({args.scenes} scenes per cell, 50 ms control step)")
    print(f"{'strategy':<18} {'delay':>5} {'success':>8} {'time s':>7} {'peak jerk':>10} {'bnd jump':>9} "
          f"{'bnd max':>8} {'interior':>9} {'holds':>6}")
    for s in args.strategies:
        for d in args.delays:
            m = summary[s][str(d)]
            t = f"{m['task_time_mean_s']:.2f}" if m.get("task_time_mean_s") is not None else "-"
            print(f"{s:<18} {d:>5} {m['success_rate']:>8.0%} {t:>7} {m['peak_jerk_median']:>10.0f} "
                  f"{m['boundary_jump_mean']:>9.2f} {m['boundary_jump_max']:>8.1f} {m['interior_jump_mean']:>9.2f} "
                  f"{m['hold_steps_mean']:>6.1f}")
    print("(time: mean task time of successful episodes; peak jerk: median over episodes of max |Δ³a|/dt³, rad/s³;\n"
          " bnd jump: mean |Δ²a|/dt² at chunk switches, rad/s²; interior: the same elsewhere; holds: steps without a command)")

    checks = {}
    if "rtc" in summary:
        rtc = summary["rtc"]
        if "0" in rtc:
            checks["rtc_success_delay0_ge_90"] = rtc["0"]["success_rate"] >= 0.9
        if "8" in rtc:
            checks["rtc_success_delay8_ge_85"] = rtc["8"]["success_rate"] >= 0.85
        if "naive_async" in summary:
            checks["rtc_smoother_boundaries_than_naive"] = all(
                rtc[k]["boundary_jump_mean"] < summary["naive_async"][k]["boundary_jump_mean"] for k in rtc)
        if "sync" in summary:  # with delay 0 sync never pauses: compared where there is a delay
            checks["rtc_faster_than_sync"] = all(
                (rtc[k]["task_time_mean_s"] or 1e9) < (summary["sync"][k]["task_time_mean_s"] or 1e9) for k in rtc if k != "0")
    print("targets: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in checks.items()))
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "command": " ".join(sys.argv),
        "checkpoint": args.checkpoint or "shipped",
        "scenes": args.scenes, "seed_base": args.seed_base, "control_period_s": 0.05, "max_time_s": args.max_time,
        "summary": summary, "targets": checks, "episodes": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
