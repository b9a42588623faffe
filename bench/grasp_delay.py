#!/usr/bin/env python3
"""Grasp contact force vs inference delay, with and without the safety controller core in the loop.

Lockstep and in process (no ROS): the shipped expert (rtc, ground-truth targets) requests a
chunk, which is delivered `delay` control steps (50 ms each) later. With `--safety`, every
delivered chunk goes to the ROS-free `SafetyController` (default Panda config, 250 Hz), whose
commands drive the simulated arm through its position interface, and the wrist wrench feeds its
contact-force stop (60 N); without it, actions go straight to the arm as in bench/chunking.py.

Prints per seed and delay: success, peak wrist force and when, and whether the safety controller
stopped (contact stop / chunks rejected). This is how the demo's failed grasps (220-290 N) were
traced to inference latency inside the saturated stack rather than to grounding's targets.

    python bench/grasp_delay.py                        # seeds 2,16,19,10001-10005; delays 2,6,8
    python bench/grasp_delay.py --seeds 16 --delays 8 --no-safety

Writes bench/results/grasp_delay.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
RESULTS = Path(__file__).resolve().parent / "results"


class DirectActuator:
    """`run_episode` actuator: actions straight to the arm (its default), peak wrist force recorded."""

    def __init__(self, meta) -> None:
        self.meta = meta
        self.peak, self.peak_at, self.rejected, self.state = 0.0, 0.0, 0, ""

    def deliver(self, actions, stamp: float, task) -> None:
        """Nothing to do: `act` gets every action."""

    def act(self, action, task) -> None:
        task.apply(action) if action is not None else task.hold()
        self.track(task)

    def track(self, task) -> None:
        import numpy as np

        force = float(np.linalg.norm(task.sim.wrench().force))
        if force > self.peak:
            self.peak, self.peak_at = force, task.sim.time


class SafetyActuator(DirectActuator):
    """`run_episode` actuator: delivered chunks go to the ROS-free `SafetyController` (default Panda
    config, 250 Hz), whose commands drive the arm (position interface) between control steps; the
    wrist wrench feeds its contact stop. Counts rejected chunks."""

    def __init__(self, meta) -> None:
        from vla_stack.core.safety.controller import SafetyController, SafetyControllerConfig

        super().__init__(meta)
        self.ctrl = SafetyController(SafetyControllerConfig())

    def deliver(self, actions, stamp: float, task) -> None:
        from vla_stack.core.policy.types import actions_to_chunk

        if not self.ctrl.submit_chunk(actions_to_chunk(actions, stamp, self.meta), task.sim.time):
            self.rejected += 1

    def act(self, action, task) -> None:  # the arm follows the controller, not `action`
        sim = task.sim
        for _ in range(int(round(self.meta.control_period / self.ctrl.dt))):
            now = sim.time
            self.ctrl.on_joint_state(sim.joint_state(), now)
            self.ctrl.on_wrench(sim.wrench(), now)
            out = self.ctrl.update(now)
            if out.arm is not None:
                sim.command_positions(out.arm.positions)
            if out.gripper is not None:
                sim.command_gripper(out.gripper.width, out.gripper.max_force)
            sim.step(int(round(self.ctrl.dt / sim.physics_dt)))
            self.state = out.state.name
        self.track(task)


def episode(policy, seed: int, delay: int, safety: bool, max_time: float = 30.0) -> dict:
    """One lockstep episode (`run_episode`, rtc, ground-truth targets); see the module docstring."""
    from vla_stack.lab.policy.evaluation import run_episode

    act = (SafetyActuator if safety else DirectActuator)(policy.metadata)
    res = run_episode(policy, seed, "rtc", delay, max_time=max_time, actuator=act)
    return {"seed": seed, "delay": delay, "safety": safety, "success": bool(res.success),
            "peak_force_n": round(act.peak, 1), "peak_at_s": round(act.peak_at, 2), "chunks_rejected": act.rejected,
            "safety_state": act.state}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="2,16,19,10001,10002,10003,10004,10005", help="comma-separated scene seeds")
    parser.add_argument("--delays", default="2,6,8", help="comma-separated inference delays, 50 ms control steps")
    parser.add_argument("--no-safety", action="store_true", help="actions straight to the arm (no safety controller)")
    parser.add_argument("--out", type=Path, default=RESULTS / "grasp_delay.json")
    args = parser.parse_args()

    from vla_stack.core.policy.backends.builtin import BuiltinExpertPolicy

    policy = BuiltinExpertPolicy()
    rows = []
    for delay in [int(d) for d in args.delays.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            r = episode(policy, seed, delay, not args.no_safety)
            rows.append(r)
            print(f"delay {delay:>2} ({50 * delay:>3} ms)  seed {seed:>5}  {'ok  ' if r['success'] else 'FAIL'}  "
                  f"peak wrist force {r['peak_force_n']:>6.1f} N at {r['peak_at_s']:>5.2f} s  "
                  f"chunks rejected {r['chunks_rejected']:>3}  {r['safety_state']}", flush=True)
    summary = {}
    for d in sorted({r["delay"] for r in rows}):
        rs = [r for r in rows if r["delay"] == d]
        summary[str(d)] = {"success_rate": sum(r["success"] for r in rs) / len(rs),
                           "peak_force_median_n": sorted(r["peak_force_n"] for r in rs)[len(rs) // 2],
                           "over_60n": sum(r["peak_force_n"] > 60 for r in rs), "episodes": len(rs)}
        s = summary[str(d)]
        print(f"delay {d}: success {s['success_rate']:.0%}, peak force > 60 N in {s['over_60n']}/{len(rs)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "safety": not args.no_safety,
        "summary": summary, "episodes": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
