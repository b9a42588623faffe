#!/usr/bin/env python3
"""Simulated robot performance: physics real-time factor while rendering, camera fps, joint_states rate.

Two parts, one run:

1. In-process (`vla_stack.core.sim.SimRobot`, no ROS): free-running physics steps/s alone; the
   render rate of the scene camera alone (640x480 RGB + depth from one draw); and the physics
   real-time factor it can sustain while a second thread renders the camera at the target rate.
2. Over DDS (the real `sim_node` process, started like `vla-stack up sim`, with the DDS settings
   of the sim profile): this process subscribes to joint_states, the colour and depth images and
   /clock and counts them for `--seconds`. Real-time factor = sim-time advance of /clock per
   wall second; camera fps = colour frames received per wall second; joint_states rate and
   inter-arrival p99.

    python bench/sim.py                      # 10 s over DDS, camera at 15 Hz, 640x480
    python bench/sim.py --seconds 20 --camera-rate 10 --width 1280 --height 720
    python bench/sim.py --skip-ros           # only the in-process part

Writes bench/results/sim.json. Target (issue 2): real-time factor >= 1.0 with the scene camera at
>= 10 Hz at 640x480 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
os.environ.setdefault("MUJOCO_GL", "egl")


def in_process(args) -> dict:
    """Physics and rendering measured inside one process (no ROS)."""
    import numpy as np

    from vla_stack.core.sim.config import SceneConfig
    from vla_stack.core.sim.robot import SimRobot

    robot = SimRobot(SceneConfig(seed=0, camera_width=args.width, camera_height=args.height))
    # Keep the arm moving so contacts/controllers do real work.
    from vla_stack.core.types import ActionChunk

    q0 = robot.joint_state().positions[:7]
    ts = np.linspace(0.5, 60.0, 120)
    pos = q0 + 0.3 * np.sin(ts[:, None] * np.linspace(0.5, 1.2, 7)[None, :])
    robot.command_trajectory(ActionChunk(robot.arm_joint_names, ts, pos))

    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < args.phase_seconds:
        robot.step(50)
        n += 50
    physics_alone = n / (time.perf_counter() - t0)

    robot.render()  # warm-up (GL context, textures)
    t0 = time.perf_counter()
    frames = 0
    while time.perf_counter() - t0 < args.phase_seconds:
        robot.render()
        frames += 1
    render_alone = frames / (time.perf_counter() - t0)

    # Physics paced to real time (as sim_node does) while another thread renders at the target rate.
    stop = threading.Event()
    ready = threading.Event()
    rendered = [0]

    def render_loop() -> None:
        robot.render()  # this thread's GL context and texture upload, before the clock starts
        ready.set()
        period = 1.0 / args.camera_rate
        nxt = time.perf_counter()
        while not stop.is_set():
            robot.render()
            rendered[0] += 1
            nxt += period
            stop.wait(max(0.0, nxt - time.perf_counter()))
        robot.close()

    th = threading.Thread(target=render_loop)
    th.start()
    ready.wait()
    sim0, wall0 = robot.time, time.perf_counter()
    dt = robot.physics_dt
    lag_max = 0.0
    while time.perf_counter() - wall0 < args.phase_seconds:
        target = sim0 + (time.perf_counter() - wall0)
        lag_max = max(lag_max, target - robot.time)
        k = int((target - robot.time) / dt)
        if k > 0:
            robot.step(k)
        else:
            time.sleep(0.001)
    wall = time.perf_counter() - wall0
    stop.set()
    th.join()
    return {
        "physics_steps_per_s_alone": round(physics_alone),
        "physics_rtf_max_alone": round(physics_alone * dt, 2),
        "render_fps_alone": round(render_alone, 1),
        "paced_rtf_while_rendering": round((robot.time - sim0) / wall, 3),
        "render_fps_while_paced": round(rendered[0] / wall, 1),
        "max_physics_lag_s": round(lag_max, 4),
    }


def over_dds(args) -> dict:
    """Start sim_node as its own process and measure what arrives over DDS."""
    from vla_stack.bringup import (
        ManagedProcess,
        NodeSpec,
        localhost_dds_environment,
        node_command,
        stack_environment,
    )
    from vla_stack.paths import config_path

    env = stack_environment(localhost_dds_environment())
    env.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 50))
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    os.environ.setdefault("HOME", env.get("HOME", "/tmp"))
    os.environ.setdefault("ROS_LOG_DIR", env.get("ROS_LOG_DIR", "/tmp"))

    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, JointState

    from vla_stack.ros.interfaces import SENSOR_QOS

    spec = NodeSpec(
        "sim_node", "sim_node", (config_path("sim_node.yaml"),),
        {"camera_rate": float(args.camera_rate), "camera_width": args.width, "camera_height": args.height,
         "real_time_factor": 1.0},
    )
    lines: list[str] = []
    proc = ManagedProcess(spec, node_command(spec), env, lines.append)
    proc.start()
    rclpy.init()
    node = rclpy.create_node("bench_sim_listener")
    js_times: list[float] = []
    colors: list[float] = []
    depths: list[float] = []
    clocks: list[tuple[float, float]] = []
    node.create_subscription(JointState, "joint_states", lambda m: js_times.append(time.monotonic()), SENSOR_QOS)
    node.create_subscription(Image, "camera/color/image_raw", lambda m: colors.append(time.monotonic()), SENSOR_QOS)
    node.create_subscription(Image, "camera/aligned_depth_to_color/image_raw",
                             lambda m: depths.append(time.monotonic()), SENSOR_QOS)
    node.create_subscription(
        Clock, "/clock", lambda m: clocks.append((time.monotonic(), m.clock.sec + 1e-9 * m.clock.nanosec)), SENSOR_QOS
    )
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        deadline = time.monotonic() + 60
        while (len(colors) < 3 or len(js_times) < 50) and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.05)
        if len(colors) < 3:
            raise RuntimeError("sim_node published no images within 60 s:\n" + "\n".join(lines[-20:]))
        time.sleep(1.0)  # let start-up transients pass
        for store in (js_times, colors, depths, clocks):
            store.clear()
        t_end = time.monotonic() + args.seconds
        while time.monotonic() < t_end:
            ex.spin_once(timeout_sec=0.05)
        wall = clocks[-1][0] - clocks[0][0]
        sim = clocks[-1][1] - clocks[0][1]
        gaps = np.diff(js_times) * 1000.0
        return {
            "seconds": args.seconds,
            "real_time_factor": round(sim / wall, 3),
            "camera_fps": round(len(colors) / args.seconds, 2),
            "depth_fps": round(len(depths) / args.seconds, 2),
            "camera_rate_requested": args.camera_rate,
            "joint_states_hz": round(len(js_times) / args.seconds, 1),
            "joint_states_gap_ms_p50": round(float(np.percentile(gaps, 50)), 2),
            "joint_states_gap_ms_p99": round(float(np.percentile(gaps, 99)), 2),
            "joint_states_gap_ms_max": round(float(gaps.max()), 2),
        }
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        proc.stop(10.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement time over DDS, s (default 10)")
    parser.add_argument("--phase-seconds", type=float, default=3.0,
                        help="duration of each in-process phase, s (default 3)")
    parser.add_argument("--camera-rate", type=float, default=15.0, help="scene camera rate asked for, Hz (default 15)")
    parser.add_argument("--width", type=int, default=640, help="scene camera width, px (default 640)")
    parser.add_argument("--height", type=int, default=480, help="scene camera height, px (default 480)")
    parser.add_argument("--skip-ros", action="store_true", help="only the in-process part (no sim_node process)")
    parser.add_argument("--output", type=Path, default=RESULTS / "sim.json", help="result file (JSON)")
    args = parser.parse_args()

    result = {
        "benchmark": "sim",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "mujoco_gl": os.environ.get("MUJOCO_GL"),
                    "load_average_1min_at_start": round(os.getloadavg()[0], 2)},
        "camera": f"{args.width}x{args.height}",
        "target": "real_time_factor >= 1.0 with the scene camera >= 10 Hz at 640x480",
    }
    print(f"in-process: physics alone, render alone, paced physics + render at {args.camera_rate} Hz ...", flush=True)
    result["in_process"] = in_process(args)
    for k, v in result["in_process"].items():
        print(f"  {k:32s} {v}")
    if not args.skip_ros:
        print(f"over DDS: sim_node process, {args.seconds:.0f} s ...", flush=True)
        result["over_dds"] = over_dds(args)
        for k, v in result["over_dds"].items():
            print(f"  {k:32s} {v}")
        dds = result["over_dds"]
        result["target_met"] = bool(dds["real_time_factor"] >= 0.99 and dds["camera_fps"] >= 10.0
                                    and dds["joint_states_hz"] >= 100.0)
        print(f"target met: {result['target_met']}  (RTF {dds['real_time_factor']}, camera {dds['camera_fps']} fps, "
              f"joint_states {dds['joint_states_hz']} Hz)")
    result["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
