"""`vla-stack record`: write ROS 2 topics to an MCAP file (Foxglove opens it) without the ros2 CLI.

    vla-stack record                                   # all stack topics until Ctrl-C
    vla-stack record joint_states planner/subtask -o run.mcap --duration 30
    vla-stack record --all --exclude '/camera/*' --profile sim

Hooks for `vla_stack.cli` (this module imports rclpy only inside `record_main`, so building the
parser stays instant)::

    from vla_stack.ros import record_cli
    p = sub.add_parser("record", help="record topics to MCAP", description=record_cli.DESCRIPTION)
    record_cli.add_record_arguments(p)
    p.set_defaults(func=record_cli.record_main)

`run_recording()` is the same thing as a function (used by recorder_node, the demo and tests).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

DESCRIPTION = (
    "Record ROS 2 topics to an MCAP file (ROS 2 message encoding: ros2msg schemas + CDR messages, "
    "readable by Foxglove and mcap-ros2-support). Topics are picked up as they appear; by default all "
    "stack topics (sensors, task, grounding, planner, action expert, safety, commands, status). Prints a "
    "per-topic summary at the end."
)


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vla-stack record` (see `record_main`)."""
    parser.add_argument(
        "topics", nargs="*",
        help="topics to record: names or glob patterns, relative to --namespace or absolute (default: all stack topics)",
    )
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="MCAP file to write (default: recordings/vla_stack_<date>_<time>.mcap)")
    parser.add_argument("--all", dest="all_topics", action="store_true", help="record every topic in the ROS graph")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="glob of topics to leave out, e.g. 'camera/*' (repeatable)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--namespace", default="", help="namespace of the stack (default: none)")
    parser.add_argument("--profile", default=None,
                        help="take DDS environment defaults from this bring-up profile (e.g. sim), to see its nodes")
    parser.add_argument("--discovery-period", type=float, default=0.5, help="how often to look for new topics, s (default: 0.5)")
    parser.add_argument("--compression", choices=["zstd", "lz4", "none"], default="zstd", help="chunk compression (default: zstd)")
    parser.add_argument("--summary-json", type=Path, default=None, help="also write the summary as JSON to this file")


def default_output() -> Path:
    """recordings/vla_stack_<YYYYmmdd_HHMMSS>.mcap in the current directory."""
    return Path("recordings") / f"vla_stack_{datetime.now().strftime('%Y%m%d_%H%M%S')}.mcap"


def run_recording(
    output: str | Path,
    topics: Sequence[str] = (),
    all_topics: bool = False,
    exclude: Sequence[str] = (),
    duration: float | None = None,
    namespace: str = "",
    discovery_period: float = 0.5,
    compression: str = "zstd",
    stop: threading.Event | None = None,
    context=None,
    metadata: dict[str, str] | None = None,
):
    """Record until `duration` s pass (None = until `stop` is set or Ctrl-C); returns the summary.

    rclpy must be initialised (`context`: the context to use, default the global one).

    Returns:
        `vla_stack.core.recording.RecordingSummary`.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from vla_stack.core.recording import McapRecording
    from vla_stack.ros.recorder import Recorder

    recording = McapRecording(output, compression=compression, metadata={
        "recorder": "vla-stack record", "namespace": namespace, "topics": " ".join(topics) or ("all" if all_topics else "stack"),
        **(metadata or {}),
    })
    node = Recorder(recording, topics, all_topics, exclude, namespace, discovery_period, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    stop = stop or threading.Event()
    deadline = None if duration is None else time.monotonic() + max(0.0, duration)
    try:
        while not stop.is_set() and rclpy.ok(context=context):
            if deadline is not None and time.monotonic() >= deadline:
                break
            executor.spin_once(timeout_sec=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        executor.remove_node(node)
        summary = recording.close()
        node.destroy_node()
        executor.shutdown()
    return summary


def record_main(args: argparse.Namespace) -> int:
    """Entry of `vla-stack record`: returns 0 on success, 2 on bad arguments, 1 when nothing was recorded."""
    if args.duration is not None and args.duration <= 0:
        print("vla-stack record: --duration must be > 0", file=sys.stderr)
        return 2
    if args.profile:
        from vla_stack.bringup import load_profile

        try:
            profile = load_profile(args.profile)
        except (FileNotFoundError, ValueError) as exc:
            print(f"vla-stack record: {exc}", file=sys.stderr)
            return 2
        for key, value in profile.environment.items():
            os.environ.setdefault(key, value)
    if "HOME" not in os.environ and "ROS_LOG_DIR" not in os.environ:
        os.environ["ROS_LOG_DIR"] = str(Path.cwd() / ".ros_log")
    output = args.output or default_output()

    import rclpy

    rclpy.init(args=None)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        what = " ".join(args.topics) if args.topics else ("every topic" if args.all_topics else "all stack topics")
        until = f"for {args.duration:g} s" if args.duration else "until Ctrl-C"
        print(f"recording {what} to {output} {until}", flush=True)
        summary = run_recording(
            output, args.topics, args.all_topics, args.exclude, args.duration, args.namespace,
            args.discovery_period, args.compression, stop,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        rclpy.try_shutdown()
    print(summary.table(), flush=True)
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(json.dumps(summary.to_dict(), indent=2))
    if summary.total_messages == 0:
        print("vla-stack record: no messages were recorded (are the nodes running, with the same ROS_DOMAIN_ID "
              "and DDS settings? try --profile sim)", file=sys.stderr)
        return 1
    return 0
