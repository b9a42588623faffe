#!/usr/bin/env python3
"""Action expert inference speed on this machine: latency p50/p99, achieved chunk rate, memory.

Measures the shipped checkpoint (or --checkpoint) through the `builtin` backend exactly as the
action expert node calls it (`policy.infer(observation[, guidance])`, numpy runtime, one
thread), on observations of simulated scenes:

- plain inference (sync / naive_async / temporal_ensemble requests);
- guided inference (rtc requests: d = 4 frozen steps, s = 8) in the configuration the node runs
  by default (`BuiltinExpertConfig.guidance_vjp_steps` = 0: the guidance correction is applied
  without a backward pass through the network) and, side by side, the paper's full guidance (a backward
  pass in every flow step, `guidance_vjp_steps = -1`), with the cost ratio. The two are timed
  interleaved call by call (and the rate tests in alternating 1 s slices), so a change of load
  on this shared machine hits both alike;
- achieved chunk rate: chunks per second when inference runs back to back for --seconds;
- frozen-prefix error of both guided modes on the same requests (what the guidance is for);
- memory: resident set size of the process before and after loading the expert, checkpoint
  size on disk, parameter count;
- for reference, the same network run through torch (--torch), which is why inference runs in
  numpy.

    python bench/expert.py                 # 1000 calls each, 10 s rate test each
    python bench/expert.py --calls 3000 --torch

Writes bench/results/expert.json. Target (issue 5): >= 50 Hz, p99 <= 20 ms for the inference
the node runs (guided: `rtc` is the default strategy). The load average is recorded before and
after: on a machine shared with other jobs the figures are pessimistic.
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


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def stats_ms(samples: list[float]) -> dict:
    import numpy as np

    a = np.array(samples) * 1e3
    return {"n": int(a.size), "mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)),
            "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}


def timed(fn, n: int) -> list[float]:
    """Wall time (s) of `fn(i)` for i = 0 .. n - 1."""
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--calls", type=int, default=1000, help="inference calls per mode (default: 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the chunk-rate test (default: 10)")
    parser.add_argument("--torch", action="store_true", help="also time the torch forward (reference)")
    parser.add_argument("--out", type=Path, default=RESULTS / "expert.json")
    args = parser.parse_args()

    import numpy as np

    load_before = [round(v, 2) for v in os.getloadavg()]
    rss0 = rss_mb()
    from vla_stack.core.policy.backends.builtin import BuiltinExpertConfig, BuiltinExpertPolicy
    from vla_stack.core.policy.checkpoint import DEFAULT_CHECKPOINT
    from vla_stack.core.policy.rtc import prefix_weights
    from vla_stack.core.policy.types import Guidance, chunk_to_actions
    from vla_stack.lab.policy.simulation import SimPickPlace

    rss_imports = rss_mb()
    t0 = time.perf_counter()
    policy = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=args.checkpoint))
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mb()
    # the paper's full guidance (a vector-Jacobian product in every flow step), for comparison
    full = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=args.checkpoint, guidance_vjp_steps=-1))
    ckpt_dir = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT
    size_mb = sum(p.stat().st_size for p in ckpt_dir.iterdir()) / 2**20
    params = int(sum(v.size for v in policy.checkpoint.weights.values()))

    # observations of several simulated scenes (the expert's cost does not depend on the scene)
    observations = [SimPickPlace(seed).observe() for seed in range(10)]
    meta = policy.metadata
    h = meta.horizon
    guidance = []
    for obs in observations:
        prefix = chunk_to_actions(policy.infer(obs), meta)
        guidance.append(Guidance(prefix, prefix_weights(4, h - 8, h)))

    # what the guidance is for, same requests for both guided modes: how far the first d = 4
    # actions end from the committed ones (rad, worst arm joint), vs an unguided sample
    def frozen_error(pol, with_guidance: bool) -> float:
        pol.reset()
        errs = []
        for obs, g in zip(observations, guidance, strict=True):
            moved = Guidance(g.prefix + np.r_[np.full(7, 0.05), 0.0], g.weights)  # a committed plan 0.05 rad away
            out = chunk_to_actions(pol.infer(obs, moved if with_guidance else None), meta)
            errs.append(float(np.abs(out[:4, :7] - moved.prefix[:4, :7]).max()))
        return float(np.mean(errs))

    prefix_error = {"unguided": frozen_error(policy, False), "guided_rtc": frozen_error(policy, True),
                    "guided_rtc_full_vjp": frozen_error(full, True)}

    modes = {
        "plain": lambda i: policy.infer(observations[i % 10]),
        "guided_rtc": lambda i: policy.infer(observations[i % 10], guidance[i % 10]),
        "guided_rtc_full_vjp": lambda i: full.infer(observations[i % 10], guidance[i % 10]),
    }
    for i in range(30):  # warm-up
        for fn in modes.values():
            fn(i)
    samples: dict[str, list[float]] = {name: [] for name in modes}
    for i in range(args.calls):  # interleaved: every mode sees the same load
        for name, fn in modes.items():
            t = time.perf_counter()
            fn(i)
            samples[name].append(time.perf_counter() - t)
    counts = dict.fromkeys(modes, 0)
    busy = dict.fromkeys(modes, 0.0)
    slices = max(1, int(round(args.seconds)))
    for _ in range(slices):  # alternating slices of --seconds / slices each
        for name, fn in modes.items():
            t_start = time.perf_counter()
            while time.perf_counter() - t_start < args.seconds / slices:
                fn(counts[name])
                counts[name] += 1
            busy[name] += time.perf_counter() - t_start
    rates = {name: counts[name] / busy[name] for name in modes}

    try:
        from threadpoolctl import threadpool_info

        blas = [f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info()]
    except ImportError:
        blas = [f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"]
    stats = {name: stats_ms(samples[name]) for name in modes}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                    "load_average_1_5_15": load_before,
                    "load_average_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
                    "blas_threads": blas},
        "command": " ".join(sys.argv),
        "checkpoint": str(ckpt_dir), "checkpoint_size_mb": round(size_mb, 3), "parameters": params,
        "horizon": h, "control_period_s": meta.control_period, "flow_steps": policy.flow_steps,
        "runtime": "numpy (vla_stack.core.policy.runtime), 1 thread",
        "guidance": {"frozen_steps_d": 4, "execution_horizon_s": 8,
                     "guided_rtc": f"guidance_vjp_steps = {policy.config.guidance_vjp_steps} (default)",
                     "guided_rtc_full_vjp": "guidance_vjp_steps = -1 (the paper's guidance, the previous default)"},
        **stats,
        "full_vjp_over_default_ratio": {
            "p50": round(stats["guided_rtc_full_vjp"]["p50_ms"] / stats["guided_rtc"]["p50_ms"], 2),
            "p99": round(stats["guided_rtc_full_vjp"]["p99_ms"] / stats["guided_rtc"]["p99_ms"], 2),
        },
        "chunk_rate_hz": {name: round(r, 1) for name, r in rates.items()},
        "frozen_prefix_error_rad": {k: round(v, 4) for k, v in prefix_error.items()},
        "memory_mb": {"rss_start": round(rss0, 1), "rss_after_imports": round(rss_imports, 1),
                      "rss_with_expert": round(rss_loaded, 1), "expert_increment": round(rss_loaded - rss_imports, 1)},
        "load_s": round(load_s, 3),
        "targets": {"rate_hz": 50, "p99_ms": 20},
    }
    if args.torch:
        import torch

        from vla_stack.core.policy.model import ActionExpert

        torch.set_num_threads(1)
        model = ActionExpert(policy.checkpoint.config)
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in policy.checkpoint.weights.items()})
        model.eval()
        feats = [torch.from_numpy(policy.checkpoint.features(policy.encoder.encode(o)))[None] for o in observations]
        gen = torch.Generator().manual_seed(0)
        timed(lambda i: model.sample(feats[i % 10], gen), 10)
        result["torch_plain_reference"] = stats_ms(timed(lambda i: model.sample(feats[i % 10], gen), min(args.calls, 200)))
    result["meets_targets"] = {name: result[name]["p99_ms"] <= 20 and rates[name] >= 50 for name in modes}

    print(f"action expert ({params} parameters, {size_mb:.2f} MB on disk, H={h}, {policy.flow_steps} flow steps), "
          f"load average {load_before} before, {result['machine']['load_average_1_5_15_after']} after")
    for name in modes:
        s = result[name]
        print(f"  {name:<19} p50 {s['p50_ms']:6.2f} ms  p90 {s['p90_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms  "
              f"max {s['max_ms']:6.2f} ms  rate {result['chunk_rate_hz'][name]:6.1f} Hz  "
              f"{'meets' if result['meets_targets'][name] else 'MISSES'} target (>= 50 Hz, p99 <= 20 ms)")
    r = result["full_vjp_over_default_ratio"]
    print(f"  guided_rtc = {result['guidance']['guided_rtc']}; full-VJP guidance costs {r['p50']}x (p50), "
          f"{r['p99']}x (p99)")
    print("  frozen-prefix error (first 4 actions vs a committed plan 0.05 rad away, worst joint, mean over 10 "
          "scenes): " + ", ".join(f"{k} {v * 1e3:.1f} mrad" for k, v in result["frozen_prefix_error_rad"].items()))
    if "torch_plain_reference" in result:
        print(f"  torch (reference) p50 {result['torch_plain_reference']['p50_ms']:.2f} ms")
    print(f"  memory: RSS +{result['memory_mb']['expert_increment']} MB for the expert "
          f"({result['memory_mb']['rss_with_expert']} MB process total)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
