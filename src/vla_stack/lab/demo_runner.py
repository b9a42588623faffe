"""`vla-stack demo`: "bring my cup to the tray" with the whole stack, headless, over real ROS 2 processes.

Each episode:
1. renders reference views of the scene's own mug (the user's "my cup") in the simulator and
   enrols them in a personal-object memory (`vla-stack enroll my_mug --from-sim SEED` does the same);
2. starts the `sim` profile (sim_node, safety_controller, grounding_node, planner_node,
   action_expert) as separate processes on a private ROS domain;
3. publishes "bring my cup to the tray" on `task/instruction` and watches: grounding highlights
   a mug and publishes its grasp point and the tray's place point, the planner publishes
   subtasks, the action expert streams chunks through the safety controller to the arm;
4. judges from the simulator's ground truth (the demo is the evaluator, so it may read
   `sim/ground_truth`; no stack node does): which mug the gripper took first, whether my mug
   ends upright in the tray, in how long, with how many safety interventions, and the latencies
   the nodes report.

Outputs (in --out): demo.mp4 (grounding's highlighted camera image with the subtask and the
grounding status written in), demo.mcap (the stack's topics, ROS 2 message encoding: open it in
Foxglove; camera-size images are kept at 2 Hz), summary.json, and a table on stdout.

`--no-grounding` runs the generic baseline (the grounding node picks the best "cup" proposal, no
personal memory); `--baseline` runs both on the same seeds and prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from vla_stack.bringup import ProcessGroup, localhost_dds_environment
from vla_stack.core.contracts import ContractError, parse_ground_truth
from vla_stack.ros.stack_client import StackClient, StackNotReady, StackStatus

INSTRUCTION = "bring my cup to the tray"
VIDEO_FPS = 10


@dataclass
class EpisodeResult:
    """What one episode did (ground truth judges; latencies are what the nodes reported)."""

    episode: int
    seed: int
    mugs: int
    mode: str  # "personal" (VAP grounding) or "generic" (baseline)
    mine: str = ""
    touched: str = ""  # first mug the gripper held ("" = none)
    correct_mug: bool = False
    success: bool = False
    duration_s: float = 0.0  # instruction -> success (or end), sim time
    wall_s: float = 0.0  # the same in wall-clock time
    startup_s: float = 0.0
    safety_interventions: int = 0
    safety_codes: dict = field(default_factory=dict)
    grounding_status: str = ""
    grounding_detection_ms: float = float("nan")
    grounding_tracking_p95_ms: float = float("nan")
    inference_p50_ms: float = float("nan")
    inference_p99_ms: float = float("nan")
    chunks: int = 0
    planner_state: str = ""
    frames: int = 0
    reason: str = ""


@dataclass(frozen=True)
class EpisodeStatus(StackStatus):
    """`StackStatus` plus what only an evaluator sees: the simulator's ground truth.

    Args:
        gt: latest `sim/ground_truth` JSON (mugs, tray, time, seed ...), None before the first.
        first_gt: the first one after the last `forget()`.
        touched: first mug seen in the gripper since the last `forget()` ("" = none).
    """

    gt: dict | None = None
    first_gt: dict | None = None
    touched: str = ""


class EpisodeObserver(StackClient):
    """The demo's stack client (`StackClient`): watches the stack's topics and the simulator's ground truth
    (the demo is the evaluator, so it may read it; no stack node does), publishes the instruction and
    records MCAP. `status()` returns an `EpisodeStatus`.
    """

    status_type = EpisodeStatus

    def __init__(self, context=None, namespace: str = "", node_name: str = "vla_stack_demo",
                 watch_images: bool = True, use_sim_time: bool = False) -> None:
        self.recorder = None
        super().__init__(namespace=namespace, context=context, node_name=node_name, watch_images=watch_images,
                         use_sim_time=use_sim_time)

    def _create_subscriptions(self) -> None:
        from std_msgs.msg import String

        from vla_stack.ros import interfaces as itf

        self.node.create_subscription(String, itf.GROUND_TRUTH.name, self._on_gt, itf.GROUND_TRUTH.sub_qos)
        self.node.create_subscription(String, itf.FEEDBACK.name, lambda m: None, itf.FEEDBACK.sub_qos)

    def record(self, recording, exclude: list[str]) -> None:
        """Record the stack's topics into `recording` (McapRecording) from now on."""
        from vla_stack.ros.recorder import TopicRecorder

        self.recorder = TopicRecorder(self.node, recording, exclude=exclude,
                                      max_rates={"*image*": 2.0, "*mask*": 2.0, "*segmentation*": 0.5})

    def _on_gt(self, msg) -> None:
        try:
            gt = parse_ground_truth(msg.data).to_dict()
        except ContractError:
            return
        with self.lock:
            obs = self._observed
            touched = obs.touched
            if not touched:
                held = [m["name"] for m in gt.get("mugs", []) if m.get("in_gripper")]
                touched = held[0] if held else ""
            self._observed = replace(obs, gt=gt, first_gt=obs.first_gt if obs.first_gt is not None else gt,
                                     touched=touched)


def _overlay(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    import cv2

    img = np.ascontiguousarray(frame).copy()
    y = 22
    for text in lines:
        cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        y += 22
    return img


def _float(d: dict, key: str) -> float:
    try:
        return float(d.get(key, "nan"))
    except (TypeError, ValueError):
        return float("nan")


def enroll_from_sim(seed: int, mugs: int, memory: Path, objects: Path | None,
                    family: str = "procedural") -> tuple[str, float]:
    """Enrol scene `seed`'s own mug as "my_mug" in `memory` from rendered reference views
    (mug textures from the directory `objects`, else generated by texture `family`).

    Returns (the simulator's name of that mug, seconds the enrolment itself took).
    """
    from vla_stack.core.grounding.embedders import AppearanceEmbedder
    from vla_stack.core.grounding.memory import PersonalObjectMemory
    from vla_stack.core.sim import SceneConfig, SimRobot
    from vla_stack.lab.grounding.sim_scenes import sim_reference_views

    cfg = SceneConfig(seed=seed, num_mugs=mugs, texture_dir=str(objects) if objects else "", family=family)
    robot = SimRobot(cfg)
    try:
        mine = robot.ground_truth()["mine"]
        views, masks = sim_reference_views(robot, mine)
    finally:
        robot.close()
    t0 = time.perf_counter()
    PersonalObjectMemory(memory).enroll("my_mug", views, "cup", AppearanceEmbedder(), masks=masks, overwrite=True,
                                        aliases=["my mug"], source=f"sim seed {seed} ({mine})")
    return mine, time.perf_counter() - t0


def _in_tray(gt: dict, mug: str) -> bool:
    entry = next(m for m in gt["mugs"] if m["name"] == mug)
    return bool(entry["in_tray"] and entry["upright"] and not entry.get("in_gripper"))


def start_stack(observer: EpisodeObserver, mode: str, args: argparse.Namespace, memory: Path, log,
                extra_overrides: dict[str, dict] | None = None) -> ProcessGroup:
    """Start the `sim` profile for `mode` ("personal" / "generic") and wait until every node is up.

    `extra_overrides` adds parameters per executable ({"planner_node": {"resume_file": ...}}).

    Raises RuntimeError with the reason when a node dies or the stack is not ready in time.
    """
    overrides = {
        "sim_node": {"seed": args.seed, "num_mugs": args.mugs, "camera_rate": args.camera_rate,
                     "real_time_factor": args.real_time_factor,
                     "family": getattr(args, "family", "procedural"),
                     **({"texture_dir": str(Path(args.objects).resolve())} if args.objects else {})},
        "grounding_node": {"memory_root": str(memory), "personal": mode == "personal"},
    }
    for exe, extra in (extra_overrides or {}).items():
        overrides[exe] = {**overrides.get(exe, {}), **extra}
    log_dir = getattr(args, "log_dir", None)
    log_file = None
    if log_dir:  # every node's output, prefixed with its name, whatever --verbose says
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        log_file = open(Path(log_dir) / f"stack_{mode}.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (lives with the group)

    def sink(line: str) -> None:
        if log_file is not None:
            log_file.write(line + "\n")
        if args.verbose:
            print(line, flush=True)

    group = observer.start_profile("sim", overrides, sink=sink)
    log(f"starting the stack ({mode} grounding): {', '.join(p.spec.name for p in group.processes)}")
    try:
        took = observer.wait_until_ready(args.startup_timeout, extra=lambda s: s.gt is not None)
    except StackNotReady as exc:
        where = f" (its output: {log_dir or 'run with --verbose'})" if "exited" in str(exc) else ""
        raise RuntimeError(f"{exc}{where}") from exc
    log(f"stack up in {took:.1f} s")
    return group


def run_episode(observer: EpisodeObserver, group: ProcessGroup, index: int, seed: int, mode: str,
                args: argparse.Namespace, writer, memory: Path, log) -> EpisodeResult:
    """One episode on a running stack: new scene, every node reset, instruction, watch, judge."""
    res = EpisodeResult(index + 1, seed, args.mugs, mode)
    t0 = time.monotonic()
    try:
        res.mine, enrol_s = reset_episode(observer, seed, args.mugs, memory, args.objects,
                                          getattr(args, "family", "procedural"))
    except RuntimeError as exc:
        res.reason = str(exc)
        return res
    res.startup_s = time.monotonic() - t0
    safety0 = {k: int(v) for k, v in observer.status().status.get("safety_controller", {}).items()
               if k.startswith("count.")}  # the controller's counters run since its start
    log(f"episode {res.episode} ({mode}): seed {seed}, {args.mugs} mugs, mine = {res.mine} "
        f"(enrolled in {enrol_s:.2f} s); instruction: {INSTRUCTION!r}")
    observer.send_instruction(INSTRUCTION)
    run_start = time.monotonic()
    sim_start = float(observer.status().gt["time"])
    wall_cap = args.timeout / max(args.real_time_factor, 0.05) * 3.0 + 60.0  # a stalled simulator still ends
    last_frame, success_since, done_since = -1, None, None
    sim_now = sim_start
    while sim_now - sim_start < args.timeout and time.monotonic() - run_start < wall_cap:
        snap = observer.status()
        gt, st = snap.gt, snap.status
        if gt is not None:
            sim_now = float(gt.get("time", sim_now))
        sub = snap.subtask
        if writer is not None and snap.frame is not None and snap.frame_count != last_frame:
            last_frame = snap.frame_count
            g = st.get("grounding", {})
            lines = [
                f"ep {res.episode} ({mode}) seed {seed}  t={sim_now - sim_start:4.1f} s (sim)",
                f"task: {snap.rewritten or INSTRUCTION}",
                f"subtask: {sub.get('skill', '-')} {sub.get('arguments', {}).get('object', '')} "
                f"[{sub.get('status', '-')}]",
                f"grounding: {g.get('status', '-')} score {g.get('score', '-')}",
            ]
            writer.append(_overlay(snap.frame, lines))
            res.frames += 1
        if gt is not None and gt.get("seed") == seed and _in_tray(gt, res.mine):
            success_since = success_since or sim_now
            if sim_now - success_since >= 1.0:  # resting in the tray, released, for 1 s of sim time
                res.success = True
                break
        else:
            success_since = None
        state = st.get("planner", {}).get("state", "")
        if state == "failed":
            res.reason = f"planner: {st['planner'].get('message', '')[:120]}"
            break
        if state == "done" and success_since is None:
            done_since = done_since if done_since is not None else sim_now
            if sim_now - done_since >= 3.0:  # the planner finished, and my mug is not in the tray
                res.reason = "the task finished without my mug in the tray"
                break
        else:
            done_since = None
        dead = group.check()
        if dead:
            res.reason = f"{dead} exited mid-episode"
            break
        time.sleep(1.0 / (2 * VIDEO_FPS))
    else:
        res.reason = (f"timeout after {args.timeout:.0f} s (sim)" if sim_now - sim_start >= args.timeout
                      else f"the simulator stalled: {sim_now - sim_start:.0f} s of sim time in {wall_cap:.0f} s")
    res.duration_s = sim_now - sim_start
    res.wall_s = time.monotonic() - run_start
    snap = observer.status()
    st = snap.status
    res.touched = snap.touched
    res.correct_mug = res.touched == res.mine
    if res.success and not res.touched:
        res.correct_mug = True  # the mug reached the tray: it was held even if no sample saw it
    res.chunks = snap.chunks
    safety = st.get("safety_controller", {})
    res.safety_codes = {k[len("count."):]: int(v) - safety0.get(k, 0) for k, v in safety.items()
                        if k.startswith("count.") and int(v) - safety0.get(k, 0) > 0}
    res.safety_interventions = sum(res.safety_codes.values())
    g = st.get("grounding", {})
    res.grounding_status = g.get("status", "")
    res.grounding_detection_ms = _float(g, "detection_ms")
    res.grounding_tracking_p95_ms = _float(g, "tracking_ms_p95")
    e = st.get("action_expert", {})
    res.inference_p50_ms = _float(e, "inference_latency_p50_ms")
    res.inference_p99_ms = _float(e, "inference_latency_p99_ms")
    res.planner_state = st.get("planner", {}).get("state", "")
    if not res.success and not res.reason:
        res.reason = "mug not upright in the tray"
    if res.touched and not res.correct_mug:
        res.reason = (res.reason + "; " if res.reason else "") + f"took {res.touched}, not {res.mine}"
    return res


def reset_episode(observer: EpisodeObserver, seed: int, mugs: int, memory: Path, objects: Path | None,
                  family: str = "procedural") -> tuple[str, float]:
    """Enrol scene `seed`'s mug, reset the simulator to that scene and reset every node (`StackClient.reset`).
    The simulator keeps the texture source it was started with (`texture_dir` / `family`): pass the same here.

    Returns (the simulator's name of "my" mug, enrolment seconds). Raises RuntimeError with the reason.
    """
    mine, enrol_s = enroll_from_sim(seed, mugs, memory, objects, family)
    observer.reset(scene={"seed": seed, "num_mugs": mugs},
                   scene_ready=lambda s: s.gt is not None and s.gt.get("seed") == seed)
    return mine, enrol_s


class _Video:
    """mp4 writer that tolerates a missing ffmpeg (reports it once)."""

    def __init__(self, path: Path) -> None:
        import imageio.v2 as imageio

        self.path = path
        self.writer = imageio.get_writer(path, fps=VIDEO_FPS, codec="libx264", quality=8, macro_block_size=8,
                                         ffmpeg_log_level="error")
        self.viewer = None

    def append(self, frame: np.ndarray) -> None:
        self.writer.append_data(frame)
        if self.viewer is not None:
            self.viewer(frame)

    def close(self) -> None:
        self.writer.close()


def _viewer(log):
    """A window showing the frames when a display exists (tkinter), else None with the reason logged."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        log("--viewer: no display (DISPLAY/WAYLAND_DISPLAY unset); running headless, see the mp4")
        return None
    try:
        import tkinter as tk

        from PIL import Image, ImageTk
    except ImportError as exc:
        log(f"--viewer: tkinter/Pillow unavailable ({exc}); running headless, see the mp4")
        return None
    root = tk.Tk()
    root.title("vla_stack demo")
    label = tk.Label(root)
    label.pack()

    def show(frame: np.ndarray) -> None:
        photo = ImageTk.PhotoImage(Image.fromarray(frame))
        label.configure(image=photo)
        label.image = photo
        root.update()

    return show


def run_demo(args: argparse.Namespace) -> int:
    """Entry of `vla-stack demo` (see `vla_stack.cli`). Returns 0 when every personal episode succeeded."""
    from vla_stack.core.sim.mug_families import DEFAULT_FAMILY, check_family

    family = getattr(args, "family", DEFAULT_FAMILY)
    try:
        check_family(family)
    except ValueError as exc:
        print(f"vla-stack demo: --family: {exc}", file=sys.stderr)
        return 2
    if args.objects and family != DEFAULT_FAMILY:
        print("vla-stack demo: give either --objects DIR or --family NAME, not both", file=sys.stderr)
        return 2
    os.environ.update(localhost_dds_environment())
    os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random().randint(101, 200)))
    os.environ.setdefault("MUJOCO_GL", "egl")
    if "HOME" not in os.environ:
        os.environ["ROS_LOG_DIR"] = str(Path.cwd() / ".ros_log")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    memory = out / "personal_objects"
    if memory.exists():
        shutil.rmtree(memory)
    args.log_dir = str(out / "logs")
    if Path(args.log_dir).exists():
        shutil.rmtree(args.log_dir)

    import rclpy
    from rclpy.context import Context

    def log(text: str) -> None:
        print(f"[demo] {text}", flush=True)

    modes = ["generic"] if args.no_grounding else (["personal", "generic"] if args.baseline else ["personal"])
    textures = f"textures from {args.objects}" if args.objects else f"'{family}' textures"
    log(f"{args.episodes} episode(s) x {modes}, {args.mugs} look-alike mugs ({textures}), seeds {args.seed}..{args.seed + args.episodes - 1}, "
        f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}, output {out}/")
    video = None if args.no_video else _Video(out / "demo.mp4")
    if video is not None and args.viewer:
        video.viewer = _viewer(log)
    context = Context()
    rclpy.init(context=context)
    observer = EpisodeObserver(context)
    recording = None
    if not args.no_record:
        from vla_stack.core.recording import McapRecording

        recording = McapRecording(out / "demo.mcap")
        observer.record(recording, exclude=["camera/*", "wrist_camera/*", "sim/ground_truth/segmentation", "/clock"])
    results: list[EpisodeResult] = []
    try:
        for mode in modes:
            try:
                group = start_stack(observer, mode, args, memory, log)
            except RuntimeError as exc:
                log(f"the stack did not come up: {exc}")
                return 2
            for i in range(args.episodes):
                r = run_episode(observer, group, i, args.seed + i, mode, args, video, memory, log)
                results.append(r)
                log(f"episode {r.episode} ({mode}): {'SUCCESS' if r.success else 'FAILED'} in {r.duration_s:.1f} s, "
                    f"took {r.touched or 'no mug'} (mine: {r.mine})" + (f": {r.reason}" if r.reason else ""))
            observer.stop_stack(5.0)
    except KeyboardInterrupt:
        log("interrupted: summarising the finished episodes")
    finally:
        observer.close(5.0)  # stops the stack if it is still running
        rclpy.try_shutdown(context=context)
        if video is not None:
            video.close()
        if recording is not None:
            recording.close()
    return _report(results, modes, out, video, recording, args)


def _report(results: list[EpisodeResult], modes: list[str], out: Path, video, recording, args) -> int:
    print()
    print("time s = sim seconds from the instruction to the mug resting in the tray (or the end of the episode)")
    print(f"{'ep':>3} {'mode':>8} {'seed':>5} {'mugs':>4} {'correct mug':>11} {'success':>7} {'time s':>6} "
          f"{'safety':>6} {'detect ms':>9} {'track p95':>9} {'infer p50/p99 ms':>16}  note")
    for r in results:
        print(f"{r.episode:>3} {r.mode:>8} {r.seed:>5} {r.mugs:>4} {('yes' if r.correct_mug else 'no'):>11} "
              f"{('yes' if r.success else 'no'):>7} {r.duration_s:6.1f} {r.safety_interventions:>6} "
              f"{r.grounding_detection_ms:9.0f} {r.grounding_tracking_p95_ms:9.1f} "
              f"{r.inference_p50_ms:7.1f}/{r.inference_p99_ms:<8.1f}  {r.reason}")
    totals = {}
    for mode in modes:
        rs = [r for r in results if r.mode == mode]
        if not rs:
            continue
        n = len(rs)
        t = {
            "episodes": n,
            "success_rate": sum(r.success for r in rs) / n,
            "correct_mug_rate": sum(r.correct_mug for r in rs) / n,
            "chance_rate": float(np.mean([1.0 / r.mugs for r in rs])),
            "mean_duration_s": float(np.mean([r.duration_s for r in rs if r.success])) if any(r.success for r in rs) else None,
        }
        totals[mode] = t
        print(f"total {mode}: success {sum(r.success for r in rs)}/{n} ({100 * t['success_rate']:.0f} %), correct mug "
              f"{sum(r.correct_mug for r in rs)}/{n} ({100 * t['correct_mug_rate']:.0f} %; chance {100 * t['chance_rate']:.0f} %)")
    summary = {
        "instruction": INSTRUCTION, "date": time.strftime("%Y-%m-%d %H:%M"), "seed": args.seed, "mugs": args.mugs,
        "objects": str(args.objects) if args.objects else getattr(args, "family", "procedural"),
        "family": None if args.objects else getattr(args, "family", "procedural"), "totals": totals,
        "episodes": [asdict(r) for r in results],
        "video": str(video.path) if video is not None else None,
        "recording": str(recording.path) if recording is not None else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=lambda o: None if o != o else o))
    if video is not None:
        print(f"video: {video.path}")
    if recording is not None:
        print(f"recording: {recording.path} (open in Foxglove)")
    print(f"summary: {out / 'summary.json'}")
    personal = [r for r in results if r.mode == modes[0]]
    return 0 if personal and all(r.success for r in personal) else 1
