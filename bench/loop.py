#!/usr/bin/env python3
"""The whole loop in simulation: action-expert chunk rate with the planner idle vs busy,
camera-to-command latency, and per-node CPU, in one run.

The `sim` profile (sim_node, safety_controller, grounding_node, planner_node, action_expert) is
started as separate processes on a private ROS domain, as `vla-stack demo` does: the scene's own
mug is enrolled as "my_mug" from rendered reference views, "bring my cup to the tray" is
published once on task/instruction, and after a warm-up the run alternates phases of a fixed
wall-clock length (idle, busy, idle, busy by default):

- idle: nobody talks to the planner; it only monitors progress (10 Hz) and republishes (1 Hz).
- busy: this process publishes a stream of new, distinct instructions on task/feedback
  ("carry the blue glass mug to the plate", ...; `--busy-rate` per wall second). Each one is a
  new task for the planner: it pauses the current subtask and plans the new text in its worker
  thread (MiniLM sentence embeddings of the instruction and of every candidate step naming the
  new object and place, SayCan-style scoring; a cold plan costs ~0.2-0.6 s of one core,
  bench/planner.py), then a latent (another embedding) when a plan is installed. Every text
  names a different object/place, so the embedding cache never answers. Instructions arrive
  faster than plans finish: each new one supersedes the pending one, the worker runs back to
  back. task/feedback goes to the planner only
  (grounding listens to task/instruction), so "busy" loads the planner, not grounding.

Two parameters differ from the shipped configuration, for both phases alike:
- action_expert `inputs.follow_planner_status: false`: the expert otherwise holds (publishes no
  chunk) while the planner's subtask is not 'active', and every busy-phase instruction pauses
  it; with the parameter off the expert produces chunks for the current episode state in both
  phases, so the rates compare the expert's own throughput;
- planner_node `use_grounding: false`: instructions are planned at once instead of after a wait
  of up to `grounding_wait` (3 s) for grounding's rewrite, which never comes for task/feedback
  (with the wait, a stream of instructions would keep the planner waiting, not working).

Measured (this process subscribes; its node runs on sim time, /clock from sim_node):

1. Chunk rate on action_expert/chunk per phase: messages per wall second and per sim second
   (sim time elapsed over the phase from /clock). The expert requests a chunk every
   `scheduler.execution_horizon` control steps of sim time, so per sim second is the figure
   that shows whether the expert kept its schedule; per wall second also moves with the
   simulator's achieved speed. Ratio busy/idle (sums over the repeats); target >= 0.95.
2. End-to-end latency camera frame -> arm command, per chunk. grounding/target carries the
   colour frame's stamp t_frame (sim time of the render); a chunk's header.stamp is its
   observation time t_obs (joint_states stamp). For each chunk: t_frame = stamp of the newest
   grounding target this process had received by sim time t_obs (the target the expert most
   likely used; the expert builds its observation at its control tick, within one joint_states
   period of t_obs). Then
     frame -> chunk   = (receive time of the chunk here) - t_frame
     frame -> command = (receive time of the first arm_controller/joint_trajectory command
                        computed with the chunk) - t_frame
   where "the first command computed with the chunk" is the SECOND command received after the
   chunk: the safety controller takes a queued chunk in after publishing the command of the
   tick it arrived in, so the following tick's command is the first one that follows it.
   Reported in sim time (receive times read from this node's /clock-driven clock) and in wall
   time (t_frame mapped to the wall time at which this process received /clock = t_frame, so
   it includes the render). Chunks observed while a mug was in the gripper (sim/ground_truth,
   2 Hz) are left out: then the expert's target is the hand's forward kinematics, not the
   camera. Breakdown: frame -> target received, frame -> observation, observation -> chunk.
3. CPU per node: utime+stime from /proc/<pid>/stat of each node process and its descendants over
   each phase, as % of one core; the total; this process; whole-machine CPU use from /proc/stat
   (the machine is shared: other jobs show up there) and the load average.

    python bench/loop.py                              # 30 s per phase, idle/busy x 2
    python bench/loop.py --phase-seconds 45 --real-time-factor 0.5 --camera-rate 10

Writes bench/results/loop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from vla_stack.lab.demo_runner import EpisodeObserver, enroll_from_sim
from vla_stack.ros.stack_client import StackNotReady

RESULTS = Path(__file__).resolve().parent / "results"
INSTRUCTION = "bring my cup to the tray"
BUSY_VERBS = ("bring", "carry", "move", "take", "put", "place")
BUSY_COLOURS = ("red", "blue", "green", "yellow", "white", "black", "grey", "orange", "purple", "pink", "brown")
BUSY_MATERIALS = ("ceramic", "glass", "plastic", "metal", "paper", "enamel", "porcelain")
BUSY_NOUNS = ("cup", "mug", "tumbler", "beaker")
BUSY_PLACES = ("tray", "plate", "shelf", "box", "mat")


def busy_instruction(k: int) -> str:
    """The k-th busy-phase instruction: every one names a different object/place (1540 combinations), so the
    planner's sentence-embedding cache never answers for it: each is a cold plan (instruction + candidate steps)."""
    c, rest = k % len(BUSY_COLOURS), k // len(BUSY_COLOURS)
    m, rest = rest % len(BUSY_MATERIALS), rest // len(BUSY_MATERIALS)
    n, rest = rest % len(BUSY_NOUNS), rest // len(BUSY_NOUNS)
    place = BUSY_PLACES[rest % len(BUSY_PLACES)]
    verb = BUSY_VERBS[k % len(BUSY_VERBS)]
    return f"{verb} the {BUSY_COLOURS[c]} {BUSY_MATERIALS[m]} {BUSY_NOUNS[n]} to the {place}"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_RATIO = 0.95


# ----------------------------------------------------------------------------------- /proc helpers
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def _tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), clock ticks; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # fields 14, 15 of stat(5), counted after the comm field


def _thread_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime per thread (tid) of the given processes, clock ticks."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            out[int(tid)] = _cpu_ticks_path(f"/proc/{pid}/task/{tid}/stat")
    return out


def _cpu_ticks_path(path: str) -> int:
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def cpu_sample(group) -> dict:
    """CPU ticks per node (process tree), of this process, and of the machine, with a wall stamp."""
    kids = _children_map()
    nodes, threads = {}, {}
    for p in group.processes:
        if p.pid is not None and p.poll() is None:
            tree = _tree(p.pid, kids)
            nodes[p.spec.name] = sum(_cpu_ticks(q) for q in tree)
            threads[p.spec.name] = _thread_ticks(tree)
    busy, total = _machine_ticks()
    return {"wall": time.monotonic(), "nodes": nodes, "threads": threads, "self": _cpu_ticks(os.getpid()),
            "machine": (busy, total), "loadavg": os.getloadavg()}


def cpu_between(a: dict, b: dict) -> dict:
    """% of one core per node over [a, b], total of the stack, this process, machine use."""
    dt = max(b["wall"] - a["wall"], 1e-6)
    per = {n: round(100.0 * (b["nodes"][n] - a["nodes"].get(n, 0)) / CLK_TCK / dt, 1) for n in b["nodes"]}
    top = {}
    for n, tb in b["threads"].items():
        ta = a["threads"].get(n, {})
        deltas = sorted((tb[t] - ta.get(t, 0) for t in tb), reverse=True)
        top[n] = [round(100.0 * d / CLK_TCK / dt, 1) for d in deltas[:2]]
    mb = b["machine"][0] - a["machine"][0]
    mt = max(b["machine"][1] - a["machine"][1], 1)
    return {
        "per_node_pct_of_one_core": per,
        "stack_total_pct_of_one_core": round(sum(per.values()), 1),
        # the two busiest threads of each node (e.g. the planner's worker, the expert's inference thread)
        "top_threads_pct_of_one_core": top,
        "bench_process_pct_of_one_core": round(100.0 * (b["self"] - a["self"]) / CLK_TCK / dt, 1),
        # all CPUs: 100 % = every core busy (includes other jobs on the shared machine)
        "machine_busy_pct_of_all_cores": round(100.0 * mb / mt, 1),
        "loadavg_start": [round(v, 2) for v in a["loadavg"]],
        "loadavg_end": [round(v, 2) for v in b["loadavg"]],
    }


def _pcts(values, ndigits: int = 1) -> dict:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    return {"n": int(v.size), "p50": round(float(np.percentile(v, 50)), ndigits),
            "p99": round(float(np.percentile(v, 99)), ndigits), "max": round(float(v.max()), ndigits),
            "mean": round(float(v.mean()), ndigits)}


# ----------------------------------------------------------------------------------- observer node
class LoopObserver(EpisodeObserver):
    """The demo's stack client on sim time, also recording receive times of targets, chunks and arm commands."""

    def __init__(self) -> None:
        self.targets: list[tuple[float, float, float]] = []  # (sim recv, wall recv, frame stamp)
        self.chunk_times: list[tuple[float, float, float]] = []  # (sim recv, wall recv, observation stamp)
        self.commands: list[tuple[float, float]] = []  # (sim recv, wall recv)
        self.holding: list[tuple[float, bool]] = []  # (sim time, a mug is in the gripper)
        self.latents: list[float] = []  # wall recv
        self.waiting: dict[str, int] = {}  # expert "waiting_for" reasons seen
        super().__init__(node_name="vla_stack_bench_loop", watch_images=False, use_sim_time=True)

    def _create_subscriptions(self) -> None:
        from vla_stack.ros import interfaces as itf

        super()._create_subscriptions()
        n = self.node
        n.create_subscription(itf.GROUNDING_TARGET.msg_type, itf.GROUNDING_TARGET.name, self._on_target,
                              itf.GROUNDING_TARGET.sub_qos)
        n.create_subscription(itf.ACTION_CHUNK.msg_type, itf.ACTION_CHUNK.name, self._on_timed_chunk,
                              itf.ACTION_CHUNK.sub_qos)
        n.create_subscription(itf.ARM_TRAJECTORY.msg_type, itf.ARM_TRAJECTORY.name, self._on_command,
                              itf.ARM_TRAJECTORY.sub_qos)
        n.create_subscription(itf.PLANNER_LATENT.msg_type, itf.PLANNER_LATENT.name,
                              lambda _m: self.latents.append(time.monotonic()), itf.PLANNER_LATENT.sub_qos)

    def sim_now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_target(self, msg) -> None:
        from vla_stack.ros.conversions import stamp_to_seconds

        rec = (self.sim_now(), time.monotonic(), stamp_to_seconds(msg.header.stamp))
        with self.lock:
            self.targets.append(rec)

    def _on_timed_chunk(self, msg) -> None:
        from vla_stack.ros.conversions import stamp_to_seconds

        rec = (self.sim_now(), time.monotonic(), stamp_to_seconds(msg.header.stamp))
        with self.lock:
            self.chunk_times.append(rec)

    def _on_command(self, _msg) -> None:
        rec = (self.sim_now(), time.monotonic())
        with self.lock:
            self.commands.append(rec)

    def _on_gt(self, msg) -> None:
        super()._on_gt(msg)
        gt = self.status().gt
        if gt is None:
            return
        held = any(m.get("in_gripper") for m in gt.get("mugs", []))
        with self.lock:
            self.holding.append((float(gt.get("time", self.sim_now())), held))

    def _on_status(self, name: str, msg) -> None:
        from vla_stack.ros.conversions import diagnostics_to_dict

        super()._on_status(name, msg)
        if name == "action_expert":
            for report in diagnostics_to_dict(msg).values():
                reason = report["values"].get("waiting_for", "") or "(producing)"
                with self.lock:
                    self.waiting[reason[:80]] = self.waiting.get(reason[:80], 0) + 1


# ----------------------------------------------------------------------------------- stack
class PlannerLog:
    """Output sink of the node processes: counts the plans planner_node's worker computed, per phase.

    planner_node logs "planner: plan for '...': ... (offline, N ms)" for an installed plan,
    "planner: dropped the plan for '...' (superseded)" for one a newer instruction overtook, and
    "... not understood ..." for a rejected one: each is one backend run (a plan computed).
    """

    PLAN_MS = re.compile(r"\(offline[^,]*, ([0-9.]+) ms\)")

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.lock = threading.Lock()
        self.phase = "startup"
        self.counts: dict[str, dict[str, int]] = {}
        self.plan_ms: dict[str, list[float]] = {}

    def __call__(self, line: str) -> None:
        if self.verbose:
            print(line, flush=True)
        if not line.startswith("[planner_node]"):
            return
        kind = ("superseded" if "(superseded)" in line else "installed" if "planner: plan for" in line
                else "rejected" if "not understood" in line else "")
        if not kind:
            return
        with self.lock:
            c = self.counts.setdefault(self.phase, {"installed": 0, "superseded": 0, "rejected": 0})
            c[kind] += 1
            m = self.PLAN_MS.search(line)
            if m:
                self.plan_ms.setdefault(self.phase, []).append(float(m.group(1)))

    def take(self, phase: str) -> dict:
        with self.lock:
            c = dict(self.counts.get(phase, {"installed": 0, "superseded": 0, "rejected": 0}))
            c["computed"] = sum(c.values())
            c["installed_plan_ms"] = _pcts(self.plan_ms.get(phase, []))
            return c


def start_stack(obs: LoopObserver, args, memory: Path, log, sink: PlannerLog):
    """Start the sim profile with the bench overrides; wait (bounded) until every node reports."""
    overrides = {
        "sim_node": {"seed": args.seed, "num_mugs": args.mugs, "camera_rate": args.camera_rate,
                     "real_time_factor": args.real_time_factor},
        "grounding_node": {"memory_root": str(memory), "personal": True},
        "planner_node": {"use_grounding": False},
        "action_expert_node": {"inputs.follow_planner_status": False},
    }
    group = obs.start_profile("sim", overrides, sink=sink)
    log(f"starting the stack: {', '.join(p.spec.name for p in group.processes)} "
        f"(ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']})")
    try:
        took = obs.wait_until_ready(args.startup_timeout, extra=lambda s: s.gt is not None)
    except StackNotReady as exc:
        raise RuntimeError(f"{exc} (run with --verbose)") from exc
    log(f"stack up in {took:.1f} s")
    return group, dict(overrides)


def run_phase(obs: LoopObserver, group, kind: str, seconds: float, busy_rate: float, counter: list[int], log,
              sink: PlannerLog, label: str) -> dict:
    """One phase of `seconds` wall time; in 'busy' publish distinct instructions on task/feedback."""
    with sink.lock:
        sink.phase = label

    c0 = cpu_sample(group)
    w0, s0 = time.monotonic(), obs.sim_now()
    sent = 0
    next_pub = w0
    with obs.lock:
        waiting0 = dict(obs.waiting)
    while time.monotonic() - w0 < seconds:
        now = time.monotonic()
        if kind == "busy" and now >= next_pub:
            obs.send_feedback(busy_instruction(counter[0]))
            counter[0] += 1
            sent += 1
            next_pub += 1.0 / busy_rate
        dead = group.check()
        if dead:
            raise RuntimeError(f"{dead} exited during the {kind} phase (run with --verbose)")
        time.sleep(0.01)
    w1, s1 = time.monotonic(), obs.sim_now()
    c1 = cpu_sample(group)
    with sink.lock:
        sink.phase = label + " (after)"
    plans = sink.take(label)
    st = obs.status().status
    with obs.lock:
        waiting = {k: v - waiting0.get(k, 0) for k, v in obs.waiting.items() if v - waiting0.get(k, 0) > 0}
        n_chunks = sum(1 for c in obs.chunk_times if w0 <= c[1] < w1)
        n_latents = sum(1 for t in obs.latents if w0 <= t < w1)
    wall, sim = w1 - w0, s1 - s0
    res = {
        "kind": kind, "wall_start": w0, "wall_end": w1, "sim_start": s0, "sim_end": s1,
        "wall_s": round(wall, 2), "sim_s": round(sim, 2), "achieved_rtf": round(sim / wall, 3) if wall > 0 else None,
        "chunks": n_chunks,
        "chunk_rate_per_wall_s": round(n_chunks / wall, 3) if wall > 0 else None,
        "chunk_rate_per_sim_s": round(n_chunks / sim, 3) if sim > 0 else None,
        "feedback_instructions_sent": sent,
        "planner_latents_received": n_latents,
        # plans planner_node's worker computed in this phase (from its log lines; see PlannerLog)
        "planner_plans": plans,
        "planner_state_end": st.get("planner", {}).get("state", ""),
        "expert_waiting_reasons": waiting,
        "cpu": cpu_between(c0, c1),
    }
    log(f"{kind:>4} phase: {n_chunks} chunks in {wall:.1f} s wall / {sim:.1f} s sim "
        f"({res['chunk_rate_per_wall_s']}/s wall, {res['chunk_rate_per_sim_s']}/s sim, RTF {res['achieved_rtf']}); "
        f"instructions sent {sent}, plans computed {plans['computed']} ({plans['installed']} installed, "
        f"{plans['superseded']} superseded); stack CPU {res['cpu']['stack_total_pct_of_one_core']} % "
        f"of one core (planner {res['cpu']['per_node_pct_of_one_core'].get('planner_node')} %, expert "
        f"{res['cpu']['per_node_pct_of_one_core'].get('action_expert')} %), machine "
        f"{res['cpu']['machine_busy_pct_of_all_cores']} %, load {res['cpu']['loadavg_end'][0]}")
    return res


# ----------------------------------------------------------------------------------- latency
def latencies(obs: LoopObserver, phases: list[dict], max_target_age: float) -> dict:
    """Per-chunk camera -> chunk -> command latencies (see the module docstring), per phase kind."""
    with obs.lock:
        targets = np.array(obs.targets, dtype=float).reshape(-1, 3)
        chunks = np.array(obs.chunk_times, dtype=float).reshape(-1, 3)
        cmds = np.array(obs.commands, dtype=float).reshape(-1, 2)
        holding = list(obs.holding)
    # sim -> wall map from every receive in this process (sim clock as this node saw it)
    pairs = np.concatenate([targets[:, :2], chunks[:, :2], cmds]) if len(cmds) else np.zeros((0, 2))
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    hold_t = np.array([h[0] for h in holding]) if holding else np.zeros(0)
    hold_v = np.array([h[1] for h in holding], dtype=bool) if holding else np.zeros(0, dtype=bool)
    order = np.argsort(targets[:, 0], kind="stable")
    targets = targets[order]
    per_kind: dict[str, dict[str, list]] = {}
    skipped = {"holding": 0, "no_target_yet": 0, "stale_target": 0, "no_command_after": 0}
    for ph in phases:
        acc = per_kind.setdefault(ph["kind"], {k: [] for k in (
            "frame_to_target_recv_sim_ms", "frame_to_obs_sim_ms", "obs_to_chunk_sim_ms", "frame_to_chunk_sim_ms",
            "frame_to_command_sim_ms", "frame_to_chunk_wall_ms", "frame_to_command_wall_ms", "obs_to_chunk_wall_ms",
            "chunk_to_command_wall_ms")})
        sel = chunks[(chunks[:, 1] >= ph["wall_start"]) & (chunks[:, 1] < ph["wall_end"])]
        for c_sim, c_wall, t_obs in sel:
            if hold_t.size:
                i = np.searchsorted(hold_t, t_obs, side="right") - 1
                if i >= 0 and hold_v[i]:
                    skipped["holding"] += 1
                    continue
            j = np.searchsorted(targets[:, 0], t_obs, side="right") - 1
            if j < 0:
                skipped["no_target_yet"] += 1
                continue
            t_recv_sim, _t_recv_wall, t_frame = targets[j]
            if t_obs - t_frame > max_target_age:
                skipped["stale_target"] += 1
                continue
            k = np.searchsorted(cmds[:, 1], c_wall, side="right") + 1  # second command after the chunk
            if k >= len(cmds):
                skipped["no_command_after"] += 1
                continue
            cmd_sim, cmd_wall = cmds[k]
            frame_wall = float(np.interp(t_frame, pairs[:, 0], pairs[:, 1]))
            obs_wall = float(np.interp(t_obs, pairs[:, 0], pairs[:, 1]))
            acc["frame_to_target_recv_sim_ms"].append(1e3 * (t_recv_sim - t_frame))
            acc["frame_to_obs_sim_ms"].append(1e3 * (t_obs - t_frame))
            acc["obs_to_chunk_sim_ms"].append(1e3 * (c_sim - t_obs))
            acc["frame_to_chunk_sim_ms"].append(1e3 * (c_sim - t_frame))
            acc["frame_to_command_sim_ms"].append(1e3 * (cmd_sim - t_frame))
            acc["frame_to_chunk_wall_ms"].append(1e3 * (c_wall - frame_wall))
            acc["frame_to_command_wall_ms"].append(1e3 * (cmd_wall - frame_wall))
            acc["obs_to_chunk_wall_ms"].append(1e3 * (c_wall - obs_wall))
            acc["chunk_to_command_wall_ms"].append(1e3 * (cmd_wall - c_wall))
    out: dict = {"skipped_chunks": skipped}
    everything: dict[str, list] = {}
    for kind, acc in per_kind.items():
        out[kind] = {k: _pcts(v) for k, v in acc.items()}
        for k, v in acc.items():
            everything.setdefault(k, []).extend(v)
    out["all"] = {k: _pcts(v) for k, v in everything.items()}
    return out


# ----------------------------------------------------------------------------------- main
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _sum_rates(phases: list[dict], kind: str) -> dict:
    ps = [p for p in phases if p["kind"] == kind]
    n = sum(p["chunks"] for p in ps)
    wall = sum(p["wall_end"] - p["wall_start"] for p in ps)
    sim = sum(p["sim_end"] - p["sim_start"] for p in ps)
    return {"chunks": n, "wall_s": round(wall, 2), "sim_s": round(sim, 2),
            "per_wall_s": n / wall if wall > 0 else float("nan"), "per_sim_s": n / sim if sim > 0 else float("nan")}


def _mean_cpu(phases: list[dict], kind: str) -> dict:
    ps = [p["cpu"] for p in phases if p["kind"] == kind]
    if not ps:
        return {}
    names = sorted({n for p in ps for n in p["per_node_pct_of_one_core"]})
    return {
        "per_node_pct_of_one_core": {n: round(float(np.mean([p["per_node_pct_of_one_core"].get(n, 0.0) for p in ps])), 1)
                                     for n in names},
        "stack_total_pct_of_one_core": round(float(np.mean([p["stack_total_pct_of_one_core"] for p in ps])), 1),
        "bench_process_pct_of_one_core": round(float(np.mean([p["bench_process_pct_of_one_core"] for p in ps])), 1),
        "machine_busy_pct_of_all_cores": round(float(np.mean([p["machine_busy_pct_of_all_cores"] for p in ps])), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring (head -60 bench/loop.py) for the exact definitions.")
    ap.add_argument("--phase-seconds", type=float, default=30.0, help="wall-clock length of each phase, s (default 30)")
    ap.add_argument("--repeats", type=int, default=2, help="idle/busy pairs, alternated (default 2)")
    ap.add_argument("--warmup", type=float, default=8.0,
                    help="wall s after the first chunk before measuring (default 8)")
    ap.add_argument("--busy-rate", type=float, default=4.0,
                    help="new instructions per wall second on task/feedback in the busy phases (default 4)")
    ap.add_argument("--real-time-factor", type=float, default=0.5,
                    help="sim_node real_time_factor (sim s per wall s; default 0.5 as the demo on 2 cores)")
    ap.add_argument("--camera-rate", type=float, default=10.0, help="scene camera rate, Hz of sim time (default 10, as the demo)")
    ap.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    ap.add_argument("--mugs", type=int, default=3, choices=[2, 3, 4], help="look-alike mugs (default 3)")
    ap.add_argument("--startup-timeout", type=float, default=150.0, help="wall s for the stack to come up (default 150)")
    ap.add_argument("--first-chunk-timeout", type=float, default=90.0,
                    help="wall s from the instruction to the first chunk (default 90)")
    ap.add_argument("--out", type=Path, default=RESULTS / "loop.json", help="results JSON (default bench/results/loop.json)")
    ap.add_argument("--verbose", action="store_true", help="print the nodes' output")
    args = ap.parse_args(argv)
    if args.phase_seconds <= 0 or args.repeats < 1 or args.busy_rate <= 0 or args.real_time_factor <= 0:
        ap.error("--phase-seconds, --repeats, --busy-rate and --real-time-factor must be positive")

    from vla_stack.bringup import localhost_dds_environment

    os.environ.update(localhost_dds_environment())
    os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    os.environ["ROS_DOMAIN_ID"] = str(random.Random().randint(101, 200))
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("HOME", "/tmp")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    def log(text: str) -> None:
        print(f"[loop] {text}", flush=True)

    t_run = time.monotonic()
    load_before = os.getloadavg()
    result: dict = {
        "benchmark": "loop",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "platform": platform.platform(),
                    "python": sys.version.split()[0]},
        "command": "python bench/loop.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {"phase_seconds": args.phase_seconds, "repeats": args.repeats, "warmup_s": args.warmup,
                   "busy_rate_per_wall_s": args.busy_rate, "real_time_factor": args.real_time_factor,
                   "camera_rate_hz_sim": args.camera_rate, "seed": args.seed, "mugs": args.mugs,
                   "instruction": INSTRUCTION},
        "definitions": {
            "chunk_rate": "action_expert/chunk messages received by this process per wall second and per sim second "
                          "(/clock) of the phase",
            "busy": "new distinct instructions on task/feedback at busy_rate (planner plans + embeds each); idle: none",
            "t_frame": "header.stamp of the newest grounding/target received here by sim time t_obs (= colour frame stamp)",
            "t_obs": "action_expert/chunk header.stamp (joint_states stamp the chunk was computed from)",
            "frame_to_chunk": "receive time of the chunk here - t_frame",
            "frame_to_command": "receive time here of the 2nd arm_controller/joint_trajectory command after the chunk "
                                "(the 1st computed with it: the safety controller takes a chunk in after that tick's "
                                "command) - t_frame",
            "sim_ms": "receive times from this node's sim clock (/clock)",
            "wall_ms": "t_frame mapped to the wall time at which this process saw /clock reach it; includes the render",
            "excluded": "chunks observed while a mug was in the gripper (target = hand FK, not the camera)",
        },
        "bench_overrides_note": "action_expert inputs.follow_planner_status=false (no hold while the planner's subtask "
                                "is paused by each busy-phase instruction); planner_node use_grounding=false (plan "
                                "instructions at once); both phases alike",
        "load_average": {"before": [round(v, 2) for v in load_before]},
    }
    memory = Path(tempfile.mkdtemp(prefix="bench_loop_")) / "personal_objects"
    group = None
    obs = None
    status = 1
    try:
        mine, enrol_s = enroll_from_sim(args.seed, args.mugs, memory, None)
        log(f"enrolled {mine} of scene seed {args.seed} as my_mug in {enrol_s:.2f} s ({memory})")
        obs = LoopObserver()  # its own rclpy context
        sink = PlannerLog(args.verbose)
        group, overrides = start_stack(obs, args, memory, log, sink)
        result["overrides"] = overrides
        obs.send_instruction(INSTRUCTION)
        log(f"instruction {INSTRUCTION!r} published; waiting for the first chunk")
        t0 = time.monotonic()
        while not obs.chunk_times:
            if group.check():
                raise RuntimeError("a node exited before the first chunk (run with --verbose)")
            if time.monotonic() - t0 > args.first_chunk_timeout:
                why = obs.status().status.get("action_expert", {}).get("waiting_for", "?")
                raise RuntimeError(f"no chunk within {args.first_chunk_timeout:.0f} s (expert: {why})")
            time.sleep(0.1)
        log(f"first chunk {time.monotonic() - t0:.1f} s after the instruction; warm-up {args.warmup:.0f} s")
        deadline = time.monotonic() + args.warmup
        while time.monotonic() < deadline:
            if group.check():
                raise RuntimeError("a node exited during the warm-up (run with --verbose)")
            time.sleep(0.1)
        phases: list[dict] = []
        counter = [0]
        for i in range(args.repeats):
            for kind in ("idle", "busy"):
                phases.append(run_phase(obs, group, kind, args.phase_seconds, args.busy_rate, counter, log, sink,
                                        f"{kind}{i + 1}"))
        result["phases"] = phases
        result["final_status"] = {k: dict(v) for k, v in obs.status().status.items()}
        lat = latencies(obs, phases, max_target_age=2.0)
        result["latency"] = lat
        idle, busy = _sum_rates(phases, "idle"), _sum_rates(phases, "busy")
        ratio_sim = busy["per_sim_s"] / idle["per_sim_s"] if idle["per_sim_s"] > 0 else float("nan")
        ratio_wall = busy["per_wall_s"] / idle["per_wall_s"] if idle["per_wall_s"] > 0 else float("nan")
        result["chunk_rate"] = {
            "idle": idle, "busy": busy,
            "ratio_busy_over_idle_per_sim_s": round(ratio_sim, 3),
            "ratio_busy_over_idle_per_wall_s": round(ratio_wall, 3),
            "target": TARGET_RATIO,
            "target_met_sim": bool(ratio_sim >= TARGET_RATIO),
            "target_met_wall": bool(ratio_wall >= TARGET_RATIO),
        }
        result["cpu"] = {"idle": _mean_cpu(phases, "idle"), "busy": _mean_cpu(phases, "busy")}
        status = 0
    except KeyboardInterrupt:
        log("interrupted")
        result["error"] = "interrupted"
    except RuntimeError as exc:
        log(f"FAILED: {exc}")
        result["error"] = str(exc)
        if group is not None:
            for p in group.processes:
                if p.output:
                    result.setdefault("node_output_tail", {})[p.spec.name] = p.output[-15:]
    finally:
        if obs is not None:
            if obs.group is not None:
                log("stopping the stack")
            obs.close(5.0)  # stops the stack it started, then its node and context
        shutil.rmtree(memory.parent, ignore_errors=True)
    result["load_average"]["after"] = [round(v, 2) for v in os.getloadavg()]
    result["total_wall_s"] = round(time.monotonic() - t_run, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=lambda o: None if o != o else o))
    if status == 0:
        report(result)
    log(f"wrote {args.out}")
    return status


def report(r: dict) -> None:
    """Print the summary table."""
    c = r["config"]
    la = r["load_average"]
    print()
    print(f"loop bench: {r['machine']['cpus']} cpus ({r['machine']['cpu_model']}), RTF {c['real_time_factor']}, camera "
          f"{c['camera_rate_hz_sim']:g} Hz sim, {c['repeats']} x (idle, busy) x {c['phase_seconds']:g} s wall, busy = "
          f"{c['busy_rate_per_wall_s']:g} instructions/s on task/feedback; load {la['before'][0]} -> {la['after'][0]}")
    print("phase  chunks  wall s  sim s   RTF   chunks/s wall  chunks/s sim  plans  stack CPU%  planner%  "
          "(worker)  expert%  machine%  load1")
    for p in r["phases"]:
        cpu = p["cpu"]
        print(f"{p['kind']:<5} {p['chunks']:>7} {p['wall_s']:>7.1f} {p['sim_s']:>6.1f} {p['achieved_rtf']:>5.2f} "
              f"{p['chunk_rate_per_wall_s']:>14.3f} {p['chunk_rate_per_sim_s']:>13.3f} {p['planner_plans']['computed']:>6} "
              f"{cpu['stack_total_pct_of_one_core']:>11.1f} {cpu['per_node_pct_of_one_core'].get('planner_node', 0):>9.1f} "
              f"{(cpu['top_threads_pct_of_one_core'].get('planner_node') or [0])[0]:>9.1f} "
              f"{cpu['per_node_pct_of_one_core'].get('action_expert', 0):>8.1f} {cpu['machine_busy_pct_of_all_cores']:>9.1f} "
              f"{cpu['loadavg_end'][0]:>6.2f}")
    cr = r["chunk_rate"]
    print(f"chunk rate busy/idle: {cr['ratio_busy_over_idle_per_sim_s']:.3f} per sim s "
          f"({cr['busy']['per_sim_s']:.3f} vs {cr['idle']['per_sim_s']:.3f}), "
          f"{cr['ratio_busy_over_idle_per_wall_s']:.3f} per wall s ({cr['busy']['per_wall_s']:.3f} vs "
          f"{cr['idle']['per_wall_s']:.3f}); target >= {cr['target']}: "
          f"{'MET' if cr['target_met_sim'] else 'NOT MET'} (sim), {'MET' if cr['target_met_wall'] else 'NOT MET'} (wall)")
    print("CPU, % of one core (mean over the phases of each kind):")
    for kind in ("idle", "busy"):
        cpu = r["cpu"][kind]
        nodes = ", ".join(f"{n} {v:.1f}" for n, v in cpu["per_node_pct_of_one_core"].items())
        print(f"  {kind}: {nodes}; stack {cpu['stack_total_pct_of_one_core']:.1f}, this bench "
              f"{cpu['bench_process_pct_of_one_core']:.1f}; machine {cpu['machine_busy_pct_of_all_cores']:.1f} % of all cores")
    lat = r["latency"]
    print("camera frame -> command latency (chunks not observed while holding; ms, p50 / p99 / n):")
    rows = (("frame -> target received (sim)", "frame_to_target_recv_sim_ms"),
            ("frame -> observation t_obs (sim)", "frame_to_obs_sim_ms"),
            ("observation -> chunk received (sim)", "obs_to_chunk_sim_ms"),
            ("frame -> chunk received (sim)", "frame_to_chunk_sim_ms"),
            ("frame -> first command with it (sim)", "frame_to_command_sim_ms"),
            ("observation -> chunk received (wall)", "obs_to_chunk_wall_ms"),
            ("frame -> chunk received (wall)", "frame_to_chunk_wall_ms"),
            ("frame -> first command with it (wall)", "frame_to_command_wall_ms"))
    for label, key in rows:
        parts = []
        for kind in ("idle", "busy", "all"):
            s = lat.get(kind, {}).get(key, {"n": 0})
            parts.append(f"{kind} {s['p50']:.0f} / {s['p99']:.0f} / {s['n']}" if s["n"] else f"{kind} n/a")
        print(f"  {label:<40} " + "   ".join(parts))
    print(f"  skipped chunks: {lat['skipped_chunks']}")


if __name__ == "__main__":
    sys.exit(main())
