"""`vla-stack serve-policy`: serve the built-in action expert over the openpi websocket protocol.

    vla-stack serve-policy --port 8000

`add_serve_arguments(parser)` / `serve_policy_main(args)` are wired into `vla-stack` by
`vla_stack.cli`; the main returns a process exit code. (Training is the lab's:
`vla_stack.lab.policy.cli`.)
"""

from __future__ import annotations

import argparse
import sys


def add_serve_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of `vla-stack serve-policy`."""
    parser.description = (
        "Serve the built-in action expert over the openpi policy-server websocket protocol (msgpack-numpy), "
        "so openpi clients and this stack's `openpi` backend on another machine can use it."
    )
    parser.add_argument("--host", default="0.0.0.0", help="interface to listen on (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--checkpoint", default="", help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    parser.add_argument("--flow-steps", type=int, default=0, help="flow sampler steps (default: the checkpoint's)")
    parser.add_argument("--state-key", default="observation/state", help="observation key of arm joints + gripper")
    parser.add_argument("--prompt-key", default="prompt", help="observation key of the instruction")
    return parser


def serve_policy_main(args: argparse.Namespace) -> int:
    """`vla-stack serve-policy`: run the server until Ctrl-C. Exit code 0, 2 on a bad checkpoint."""
    import logging

    from vla_stack.core.policy.backends.builtin import BuiltinExpertConfig, BuiltinExpertPolicy
    from vla_stack.core.policy.backends.openpi_protocol import KeyMap
    from vla_stack.core.policy.backends.server import PolicyServer, ServerConfig
    from vla_stack.core.policy.checkpoint import CheckpointError

    logging.basicConfig(level=logging.INFO, format="[serve-policy] %(message)s")
    try:
        policy = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=args.checkpoint, seed=args.seed, flow_steps=args.flow_steps))
    except CheckpointError as exc:
        print(f"serve-policy: {exc}", file=sys.stderr)
        return 2
    server = PolicyServer(policy, ServerConfig(host=args.host, port=args.port,
                                               keys=KeyMap(state=args.state_key, prompt=args.prompt_key)))
    meta = policy.metadata
    print(f"[serve-policy] built-in expert (H={meta.horizon}, {meta.control_period * 1000:.0f} ms steps) on "
          f"ws://{args.host}:{args.port} (health: http://{args.host}:{args.port}/healthz); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
