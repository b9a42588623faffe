"""`vla-stack`: one command for the things a lab does with the stack.

    vla-stack demo                 # "bring my cup to the tray", whole stack in simulation: table, video, MCAP
    vla-stack up sim               # start a profile's nodes (Ctrl-C stops them all)
    vla-stack up --list            # profiles and their nodes

Every subcommand has `--help`. Heavy modules (rclpy, MuJoCo, torch) load only in the
subcommand that needs them, so `vla-stack --help` is instant.

This module is the one place where runtime (`core/`, `ros/`) and lab (`lab/`: demo, evaluation,
training, data generation) meet: the lab modules it imports define their arguments only; the
simulator, torch and rclpy load inside the subcommand that runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _cmd_up(args: argparse.Namespace) -> int:
    from vla_stack.bringup import load_profile, profile_names, run_profile

    if args.list or not args.profile:
        for name in profile_names():
            prof = load_profile(name)
            print(f"{name:<16} {prof.description}")
            for node in prof.nodes:
                print(f"{'':<16}   - {node.name} ({node.executable})")
        return 0 if args.list else 2
    try:
        profile = load_profile(args.profile)
    except (FileNotFoundError, ValueError) as exc:
        print(f"vla-stack up: {exc}", file=sys.stderr)
        return 2
    use_sim_time = True if args.use_sim_time else None
    return run_profile(profile, args.namespace, use_sim_time, args.duration, args.exit_on_failure)


def _cmd_demo(args: argparse.Namespace) -> int:
    from vla_stack.lab.demo_runner import run_demo

    return run_demo(args)


def _cmd_enroll(args: argparse.Namespace) -> int:
    """`vla-stack enroll`: from the user's photos (runtime), or `--from-sim SEED` (the lab's rendered references)."""
    if args.from_sim is not None:
        from vla_stack.lab.grounding.sim_scenes import enroll_from_sim_main

        return enroll_from_sim_main(args)
    from vla_stack.core.grounding.cli import enroll_main

    return enroll_main(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `vla-stack` (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="vla-stack",
        description="Run vision-language-action policies safely on ROS 2 robots (simulation included).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Docs: README.md. Every node is also runnable with `ros2 run vla_stack <node>` on a ROS 2 install.",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, metavar="DIR",
        help="user data directory: enrolled personal objects, model cache (default: $VLA_STACK_HOME or ~/.vla_stack); "
        "passed on to the nodes `up` and `demo` start",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser(
        "up", help="start the nodes of a profile (config/profiles/*.yaml) as separate processes",
        description="Start every node of PROFILE as its own OS process, exactly as `ros2 run` would, "
        "with the profile's parameter files and remaps. Ctrl-C stops all of them cleanly; a node that "
        "dies is reported (and respawned if the profile says so).",
    )
    up.add_argument("profile", nargs="?", help="profile name (see --list) or path to a profile YAML")
    up.add_argument("--list", action="store_true", help="list the profiles and their nodes, then exit")
    up.add_argument("--namespace", default="", help="ROS namespace for every node (default: none)")
    up.add_argument("--use-sim-time", action="store_true", help="set use_sim_time:=true on every node")
    up.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")
    up.add_argument("--exit-on-failure", action="store_true", help="stop everything when a node dies (exit code 1)")
    up.set_defaults(func=_cmd_up)

    demo = sub.add_parser(
        "demo", help='"bring my cup to the tray" with the whole stack in simulation, headless: table, video, MCAP',
        description="Runs K episodes of 'bring my cup to the tray' with 2-4 look-alike mugs: enrols the user's mug "
        "from rendered reference views, starts the whole stack (sim_node, safety_controller, grounding_node, "
        "planner_node, action_expert) as separate ROS 2 processes on a private domain, publishes the instruction "
        "and judges each episode from the simulator's ground truth. Prints a per-episode table (correct mug, "
        "success, time, safety interventions, grounding and inference latencies) and totals; writes demo.mp4 "
        "(highlighted camera image with subtask and grounding status), demo.mcap (stack topics, open in Foxglove) "
        "and summary.json.",
    )
    demo.add_argument("--episodes", type=int, default=5, help="number of episodes (default: 5)")
    demo.add_argument("--seed", type=int, default=0, help="scene seed of the first episode; episode k uses seed+k (default: 0)")
    demo.add_argument("--mugs", type=int, default=3, choices=[2, 3, 4], help="look-alike mugs on the table (default: 3)")
    demo.add_argument("--objects", type=Path, default=None, help="directory of mug texture images (one per mug) instead of generated ones")
    demo.add_argument("--family", default="procedural", metavar="NAME",
                      help="family of generated mug textures: procedural (default), photo, hue, mirror, text, plain "
                      "(core/sim/mug_families.py; `vla-stack textures --list` describes them)")
    demo.add_argument("--no-grounding", action="store_true",
                      help="generic baseline: grounding picks the best 'cup' proposal, no personal memory")
    demo.add_argument("--baseline", action="store_true",
                      help="run every seed twice, with personal grounding and with the generic baseline, and report both")
    demo.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output directory (default: outputs/demo)")
    demo.add_argument("--no-video", action="store_true", help="do not write the mp4")
    demo.add_argument("--no-record", action="store_true", help="do not write the MCAP recording")
    demo.add_argument("--viewer", action="store_true", help="also show the video in a window when a display exists")
    demo.add_argument("--timeout", type=float, default=60.0,
                      help="seconds of sim time per episode after the instruction (default: 60)")
    demo.add_argument("--startup-timeout", type=float, default=120.0, help="seconds for the stack to come up (default: 120)")
    demo.add_argument("--camera-rate", type=float, default=10.0, help="scene camera rate, Hz of sim time (default: 10)")
    demo.add_argument("--real-time-factor", type=float, default=0.5,
                      help="simulation speed vs wall clock; every node runs on sim time, so a slower sim gives the whole "
                      "stack (5 processes) room on a small CPU (default: 0.5 for 2-core machines; 1.0 = real time)")
    demo.add_argument("--verbose", action="store_true", help="also print every node's log lines (always written to OUT/logs/stack_MODE.log)")
    demo.set_defaults(func=_cmd_demo)

    from vla_stack.core.grounding import cli as grounding_cli
    from vla_stack.core.policy import serve_cli
    from vla_stack.lab.grounding import eval_grounding, sim_scenes, textures, train_metric
    from vla_stack.lab.policy import cli as policy_cli
    from vla_stack.ros import record_cli

    enroll = sub.add_parser(
        "enroll", help="enrol a personal object (reference images -> visual memory), or from the simulator with --from-sim SEED",
        description=grounding_cli.__doc__.strip().splitlines()[0] if grounding_cli.__doc__ else None,
    )
    grounding_cli.add_enroll_arguments(enroll)
    sim_scenes.add_sim_enroll_arguments(enroll)
    enroll.set_defaults(func=_cmd_enroll)

    evalg = sub.add_parser(
        "eval-grounding", help="evaluate personal-object grounding on simulated look-alike scenes (writes bench/results/grounding.json)",
    )
    eval_grounding.add_eval_arguments(evalg)
    evalg.set_defaults(func=eval_grounding.eval_main)

    tex = sub.add_parser(
        "textures", help="write a mug texture family's textures as PNGs (for --objects DIR), or --list the families",
        description=textures.__doc__.strip().splitlines()[0] if textures.__doc__ else None,
    )
    textures.add_textures_arguments(tex)
    tex.set_defaults(func=textures.textures_main)

    trainm = sub.add_parser(
        "train-grounding-metric", help="fit the offline appearance descriptor's metric on simulated look-alike scenes (~10 min)",
        description=train_metric.__doc__.strip().splitlines()[0] if train_metric.__doc__ else None,
    )
    train_metric.add_train_arguments(trainm)
    trainm.set_defaults(func=train_metric.train_main)

    train = sub.add_parser("train-expert", help="generate scripted demonstrations in simulation and train the flow-matching action expert")
    policy_cli.add_train_arguments(train)
    train.set_defaults(func=policy_cli.train_expert_main)

    serve = sub.add_parser("serve-policy", help="serve the built-in action expert over the openpi websocket protocol")
    serve_cli.add_serve_arguments(serve)
    serve.set_defaults(func=serve_cli.serve_policy_main)

    record = sub.add_parser("record", help="record ROS 2 topics to an MCAP file (Foxglove opens it)", description=record_cli.DESCRIPTION)
    record_cli.add_record_arguments(record)
    record.set_defaults(func=record_cli.record_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vla-stack` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data_dir is not None:  # one place for every command and every node process it starts
        os.environ["VLA_STACK_HOME"] = str(args.data_dir.expanduser().resolve())
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
