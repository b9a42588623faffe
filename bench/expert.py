#!/usr/bin/env python3
"""Action expert inference speed on this machine: latency p50/p99, achieved chunk rate, memory.

Measures the shipped checkpoint (or --checkpoint) through the `builtin` backend exactly as the
action expert node calls it (`policy.infer(observation[, guidance])`, numpy runtime, one
thread), on observations of simulated scenes:

- plain inference (sync / naive_async / temporal_ensemble requests);
- guided inference (rtc requests: d = 4 frozen steps, s = 8), which adds one backward pass per
  flow step;
- achieved chunk rate: chunks per second when inference runs back to back for --seconds;
- memory: resident set size of the process before and after loading the expert, checkpoint
  size on disk, parameter count;
- for reference, the same network run through torch (--torch), which is why inference runs in
  numpy.

    python bench/expert.py                 # 500 calls each, 10 s rate test
    python bench/expert.py --calls 2000 --torch

Writes bench/results/expert.json. Target (issue 5): >= 50 Hz, p99 <= 20 ms. The load average
is recorded: on a machine shared with other jobs the figures are pessimistic.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--calls", type=int, default=500, help="inference calls per mode (default: 500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the chunk-rate test (default: 10)")
    parser.add_argument("--torch", action="store_true", help="also time the torch forward (reference)")
    parser.add_argument("--out", type=Path, default=RESULTS / "expert.json")
    args = parser.parse_args()

    import numpy as np

    rss0 = rss_mb()
    from vla_stack.core.policy.backends.builtin import BuiltinExpertConfig, BuiltinExpertPolicy
    from vla_stack.core.policy.checkpoint import DEFAULT_CHECKPOINT
    from vla_stack.core.policy.rtc import prefix_weights
    from vla_stack.core.policy.simulation import SimPickPlace
    from vla_stack.core.policy.types import Guidance, chunk_to_actions

    rss_imports = rss_mb()
    t0 = time.perf_counter()
    policy = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=args.checkpoint))
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mb()
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

    def timed(fn, n):
        out = []
        for i in range(n):
            t = time.perf_counter()
            fn(i)
            out.append(time.perf_counter() - t)
        return out

    for i in range(20):  # warm-up
        policy.infer(observations[i % 10])
    plain = timed(lambda i: policy.infer(observations[i % 10]), args.calls)
    guided = timed(lambda i: policy.infer(observations[i % 10], guidance[i % 10]), args.calls)
    count, t_start = 0, time.perf_counter()
    while time.perf_counter() - t_start < args.seconds:
        policy.infer(observations[count % 10])
        count += 1
    rate_plain = count / (time.perf_counter() - t_start)
    count, t_start = 0, time.perf_counter()
    while time.perf_counter() - t_start < args.seconds:
        policy.infer(observations[count % 10], guidance[count % 10])
        count += 1
    rate_guided = count / (time.perf_counter() - t_start)

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                    "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()]},
        "checkpoint": str(ckpt_dir), "checkpoint_size_mb": round(size_mb, 3), "parameters": params,
        "horizon": h, "control_period_s": meta.control_period, "flow_steps": policy.flow_steps,
        "runtime": "numpy (vla_stack.core.policy.runtime), 1 thread",
        "plain": stats_ms(plain), "guided_rtc": stats_ms(guided),
        "chunk_rate_hz": {"plain": round(rate_plain, 1), "guided_rtc": round(rate_guided, 1)},
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
    result["meets_targets"] = {
        "plain": result["plain"]["p99_ms"] <= 20 and rate_plain >= 50,
        "guided_rtc": result["guided_rtc"]["p99_ms"] <= 20 and rate_guided >= 50,
    }

    print(f"action expert ({params} parameters, {size_mb:.2f} MB on disk, H={h}, {policy.flow_steps} flow steps), "
          f"load average {result['machine']['load_average_1_5_15']}")
    for name in ("plain", "guided_rtc"):
        s = result[name]
        print(f"  {name:<11} p50 {s['p50_ms']:6.2f} ms  p90 {s['p90_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms  "
              f"max {s['max_ms']:6.2f} ms  rate {result['chunk_rate_hz'][name]:6.1f} Hz  "
              f"{'meets' if result['meets_targets'][name] else 'MISSES'} target (>= 50 Hz, p99 <= 20 ms)")
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
