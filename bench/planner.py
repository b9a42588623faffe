#!/usr/bin/env python3
"""Planner and recorder figures (in process, no ROS graph needed):

1. Offline planner: sentence-model load time; plan latency per instruction, first time (cold
   embedding cache) and again (warm); latent latency (one embedding); `TaskPlanner.step()`
   cost (the 10 Hz monitor) with a plan running.
2. Recorder: MCAP write throughput of CDR payloads the size of a 640x480 rgb8 image and of a
   joint_states message (what `vla-stack record` does per message after receiving it).

    python bench/planner.py
    python bench/planner.py --repeats 20

Writes bench/results/planner.json. The machine is shared: the load average is recorded next to
the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

INSTRUCTIONS = [
    "bring the red-highlighted cup to the tray",
    "hand me my cup",
    "bring my cup to the tray and then go home",
    "open the gripper",
    "what is the weather today",
]


def ms(values: list[float]) -> dict:
    """p50 / max / mean of durations given in s, as ms."""
    v = sorted(values)
    return {"p50_ms": round(1000 * statistics.median(v), 2), "max_ms": round(1000 * v[-1], 2),
            "mean_ms": round(1000 * statistics.fmean(v), 2), "n": len(v)}


def bench_planner(repeats: int) -> dict:
    from vla_stack.core.planning import OfflinePlanner, TaskPlanner, TaskPlannerConfig
    from vla_stack.core.planning.backends import PlanningState, PlanRequest
    from vla_stack.core.planning.embedding import SentenceEmbedder
    from vla_stack.core.planning.skills import Subtask

    t0 = time.perf_counter()
    embedder = SentenceEmbedder()
    load_s = time.perf_counter() - t0
    planner = OfflinePlanner(embedder=embedder)
    t0 = time.perf_counter()
    embedder.embed(["warm up the model once"])
    first_encode_s = time.perf_counter() - t0

    per_instruction = {}
    for text in INSTRUCTIONS:
        t0 = time.perf_counter()
        r = planner.plan(PlanRequest(text, PlanningState()))
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            planner.plan(PlanRequest(text, PlanningState()))
            warm.append(time.perf_counter() - t0)
        per_instruction[text] = {
            "plan": [s.skill for s in r.subtasks] if r.ok else f"rejected: {r.reason}",
            "cold_ms": round(1000 * cold, 1), "warm": ms(warm),
        }

    latent = []
    for i in range(repeats):
        s = Subtask("pick", {"object": f"cup number {i}"})  # new text each time: a real encode
        t0 = time.perf_counter()
        planner.latent("bring the red-highlighted cup to the tray", s)
        latent.append(time.perf_counter() - t0)
    single = []
    for i in range(repeats):
        t0 = time.perf_counter()
        embedder.embed([f"a sentence that was never seen before, number {i}"])
        single.append(time.perf_counter() - t0)

    clock = [100.0]
    tp = TaskPlanner(planner, TaskPlannerConfig(use_grounding=False), clock=lambda: clock[0])
    tp.on_instruction("bring the red-highlighted cup to the tray")
    tp.plan_now()
    steps = []
    for _ in range(max(200, repeats * 20)):
        clock[0] += 0.1
        t0 = time.perf_counter()
        tp.step()
        steps.append(time.perf_counter() - t0)
    return {
        "model_load_s": round(load_s, 2), "first_encode_s": round(first_encode_s, 3),
        "plans": per_instruction, "latent_new_text": ms(latent), "embed_one_new_sentence": ms(single),
        "task_planner_step": ms(steps),
    }


def bench_recorder(seconds: float) -> dict:
    from vla_stack.core.recording import McapRecording, MessageDefinitions

    defs = MessageDefinitions()
    out = {}
    for name, type_name, size in (("image_640x480_rgb8", "sensor_msgs/msg/Image", 640 * 480 * 3 + 64),
                                  ("joint_states", "sensor_msgs/msg/JointState", 400)):
        payload = os.urandom(size)
        with tempfile.TemporaryDirectory() as d:
            rec = McapRecording(Path(d) / "b.mcap")
            rec.add_topic("/t", type_name, defs.schema_text(type_name))
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                rec.write("/t", payload, time.time_ns())
                n += 1
            elapsed = time.perf_counter() - t0
            summary = rec.close()
        out[name] = {"messages_per_s": round(n / elapsed, 1), "MB_per_s": round(n * size / elapsed / 1e6, 1),
                     "file_MB": round(summary.file_bytes / 1e6, 1), "payload_bytes": size}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="repetitions per measurement (default: 10)")
    parser.add_argument("--recorder-seconds", type=float, default=2.0, help="seconds per recorder measurement")
    parser.add_argument("--out", type=Path, default=RESULTS / "planner.json")
    args = parser.parse_args()
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_average_before": os.getloadavg()},
        "planner": bench_planner(args.repeats),
        "recorder": bench_recorder(args.recorder_seconds),
    }
    result["machine"]["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    p = result["planner"]
    print(f"sentence model load {p['model_load_s']} s; one new sentence p50 {p['embed_one_new_sentence']['p50_ms']} ms; "
          f"latent p50 {p['latent_new_text']['p50_ms']} ms; TaskPlanner.step p50 {p['task_planner_step']['p50_ms']} ms")
    for text, r in p["plans"].items():
        print(f"  {text!r:48} {str(r['plan']):40.40} cold {r['cold_ms']:8.1f} ms  warm p50 {r['warm']['p50_ms']:6.2f} ms")
    for name, r in result["recorder"].items():
        print(f"recorder {name}: {r['messages_per_s']} msg/s, {r['MB_per_s']} MB/s")
    print(f"load average {result['machine']['load_average_before']} -> {result['machine']['load_average_after']}; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
