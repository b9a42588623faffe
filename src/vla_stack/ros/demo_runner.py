"""`vla-stack demo`: the simulated pick-and-place, headless, over real ROS 2 processes.

Each episode starts the `sim` profile (MuJoCo Panda + look-alike mugs) and the scripted pick
node as separate processes on a private ROS domain, hands the pick node the grasp point of
"my" mug on `grounding/target`, and watches: it records the scene camera to an mp4 with the
phase written in, and judges success from the simulator's ground truth (the demo is the
evaluator, so it may read `sim/ground_truth`; no stack node does).

Until the grounding node exists (issue 4), the grasp point comes from ground truth: this demo
shows the robot, the command interface and the process plumbing, not personalisation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vla_stack.bringup import (
    ManagedProcess,
    NodeSpec,
    ProcessGroup,
    load_profile,
    localhost_dds_environment,
    node_command,
)
from vla_stack.core.policy.scripted_expert import targets_from_ground_truth


@dataclass
class EpisodeResult:
    """What one episode did."""

    episode: int
    seed: int
    mugs: int
    phase: str = "not started"
    picked_mine: bool = False
    success: bool = False
    duration_s: float = 0.0
    frames: int = 0
    reason: str = ""


def _in_tray(gt: dict, mug: str) -> bool:
    """The simulator's own verdict: mug upright on the tray floor."""
    entry = next(m for m in gt["mugs"] if m["name"] == mug)
    return bool(entry["in_tray"] and entry["upright"])


class DemoObserver:
    """rclpy node of the demo process: ground truth, camera frames, pick status, target publisher."""

    def __init__(self, rclpy_mod, context) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String

        from vla_stack.ros import interfaces as itf

        self.itf = itf
        self.node = rclpy_mod.create_node("vla_stack_demo", context=context)
        self.lock = threading.Lock()
        self.ground_truth: dict | None = None
        self.frame: np.ndarray | None = None
        self.frame_count = 0
        self.status: dict = {}
        self.node.create_subscription(String, itf.GROUND_TRUTH.name, self._on_gt, itf.GROUND_TRUTH.sub_qos)
        self.node.create_subscription(itf.COLOR_IMAGE.msg_type, itf.COLOR_IMAGE.name, self._on_image, itf.COLOR_IMAGE.sub_qos)
        status = itf.status("scripted_pick")
        self.node.create_subscription(status.msg_type, status.name, self._on_status, itf.LATCHED_QOS)
        self.target_pub = self.node.create_publisher(itf.GROUNDING_TARGET.msg_type, itf.GROUNDING_TARGET.name, itf.GROUNDING_TARGET.pub_qos)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_gt(self, msg) -> None:
        try:
            gt = json.loads(msg.data)
        except json.JSONDecodeError:
            return
        with self.lock:
            self.ground_truth = gt

    def _on_image(self, msg) -> None:
        from vla_stack.ros.conversions import MessageError, image_to_frame

        try:
            frame = image_to_frame(msg).image
        except MessageError:
            return
        with self.lock:
            self.frame = frame
            self.frame_count += 1

    def _on_status(self, msg) -> None:
        from vla_stack.ros.conversions import diagnostics_to_dict

        d = diagnostics_to_dict(msg).get("scripted_pick")
        if d:
            with self.lock:
                self.status = d["values"]

    def reset(self) -> None:
        with self.lock:
            self.ground_truth, self.frame, self.frame_count, self.status = None, None, 0, {}

    def publish_target(self, grasp: np.ndarray, yaw: float) -> None:
        from vla_stack.core.types import Pose
        from vla_stack.ros.conversions import pose_to_msg

        quat = np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])
        self.target_pub.publish(pose_to_msg(Pose(grasp, quat, 0.0, "panda_link0")))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()


def _overlay(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    import cv2

    img = np.ascontiguousarray(frame).copy()
    y = 24
    for text in lines:
        cv2.putText(img, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        y += 24
    return img


def run_episode(observer: DemoObserver, index: int, args: argparse.Namespace, writer, log) -> EpisodeResult:
    """One episode: bring up sim + pick node, run to completion or timeout, judge from ground truth."""
    seed = args.seed + index
    res = EpisodeResult(index + 1, seed, args.mugs)
    profile = load_profile("sim")
    sim_overrides = {"seed": seed, "num_mugs": args.mugs}
    if args.objects:
        sim_overrides["texture_dir"] = str(Path(args.objects).resolve())
    nodes = tuple(replace(n, overrides={**n.overrides, **sim_overrides}) if n.executable == "sim_node" else n
                  for n in profile.nodes)
    profile = replace(profile, nodes=nodes)
    sink = (lambda line: print(line, flush=True)) if args.verbose else (lambda line: None)
    group = ProcessGroup(profile, sink=sink)
    observer.reset()
    pick: ManagedProcess | None = None
    t0 = time.monotonic()
    try:
        group.start()
        deadline = t0 + 120
        while time.monotonic() < deadline:
            with observer.lock:
                gt = observer.ground_truth
            if gt is not None:
                break
            if group.check():
                res.reason = "sim_node exited during start-up (run with --verbose)"
                return res
            time.sleep(0.1)
        else:
            res.reason = "no ground truth from the simulator within 120 s"
            return res
        mine = gt["mine"]
        grasp, yaw, place = targets_from_ground_truth(gt, mine)
        log(f"episode {res.episode}: seed {seed}, {len(gt['mugs'])} mugs, mine = {mine} at "
            f"{np.round(grasp, 3).tolist()} m, tray at {np.round(place, 3).tolist()} m")
        spec = NodeSpec("scripted_pick_node", "scripted_pick_node", overrides={"place_position": [float(v) for v in place]})
        pick = ManagedProcess(spec, node_command(spec), group.env, sink)
        pick.start()
        run_start = time.monotonic()
        last_publish = 0.0
        last_frame = -1
        while time.monotonic() - run_start < args.timeout:
            with observer.lock:
                status = dict(observer.status)
                frame, count = observer.frame, observer.frame_count
            phase = status.get("phase", "starting")
            res.phase = phase
            if phase in ("waiting for target", "starting") and time.monotonic() - last_publish > 0.5:
                observer.publish_target(grasp, yaw)
                last_publish = time.monotonic()
            if writer is not None and frame is not None and count != last_frame:
                last_frame = count
                writer.append_data(_overlay(frame, [
                    f"episode {res.episode}  seed {seed}  t={time.monotonic() - run_start:5.1f} s",
                    f"task: bring my cup to the tray ({mine})",
                    f"phase: {phase}",
                ]))
                res.frames += 1
            if phase in ("done", "failed"):
                res.reason = status.get("reason", "")
                break
            if pick.poll() is not None:
                res.reason = f"scripted_pick_node exited with code {pick.poll()}"
                break
            time.sleep(0.02)
        else:
            res.reason = f"timeout after {args.timeout:.0f} s in phase '{res.phase}'"
        time.sleep(1.0)  # let the mug settle and the ground truth refresh
        with observer.lock:
            gt_end = observer.ground_truth or gt
        res.picked_mine = bool(gt_end.get("grasped") == mine or _in_tray(gt_end, mine))
        res.success = res.phase == "done" and _in_tray(gt_end, mine)
        if res.phase == "done" and not res.success:
            res.reason = "script finished but the mug is not upright in the tray"
        return res
    finally:
        res.duration_s = time.monotonic() - t0
        if pick is not None:
            pick.stop(5.0)
        group.stop(5.0)


def run_demo(args: argparse.Namespace) -> int:
    """Entry of `vla-stack demo` (see `vla_stack.cli`). Returns 0 if every episode succeeded."""
    os.environ.update(localhost_dds_environment())
    os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random().randint(101, 200)))
    os.environ.setdefault("MUJOCO_GL", "egl")
    if "HOME" not in os.environ:
        os.environ["ROS_LOG_DIR"] = str(Path.cwd() / ".ros_log")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import rclpy
    from rclpy.context import Context

    def log(text: str) -> None:
        print(f"[demo] {text}", flush=True)

    log(f"{args.episodes} episode(s), {args.mugs} look-alike mugs, ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}, output {out}/")
    writer = None
    video = out / "demo.mp4"
    if not args.no_video:
        import imageio.v2 as imageio

        writer = imageio.get_writer(video, fps=10, codec="libx264", quality=8, macro_block_size=8, ffmpeg_log_level="error")
    context = Context()
    rclpy.init(context=context)
    observer = DemoObserver(rclpy, context)
    results: list[EpisodeResult] = []
    try:
        for i in range(args.episodes):
            r = run_episode(observer, i, args, writer, log)
            results.append(r)
            log(f"episode {r.episode}: {'SUCCESS' if r.success else 'FAILED'} ({r.phase}, {r.duration_s:.1f} s)"
                + (f": {r.reason}" if r.reason else ""))
    finally:
        observer.close()
        rclpy.try_shutdown(context=context)
        if writer is not None:
            writer.close()

    print()
    print(f"{'ep':>3} {'seed':>5} {'mugs':>4} {'mine picked':>11} {'success':>7} {'time s':>7} {'frames':>6}  note")
    for r in results:
        print(f"{r.episode:>3} {r.seed:>5} {r.mugs:>4} {('yes' if r.picked_mine else 'no'):>11} "
              f"{('yes' if r.success else 'no'):>7} {r.duration_s:7.1f} {r.frames:>6}  {r.reason}")
    ok = sum(r.success for r in results)
    print(f"total: {ok}/{len(results)} succeeded")
    summary = {"episodes": [r.__dict__ for r in results], "successes": ok, "video": str(video) if writer else None}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if writer is not None:
        print(f"video: {video}")
    print(f"summary: {out / 'summary.json'}")
    return 0 if ok == len(results) else 1
