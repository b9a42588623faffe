"""The one `main()` of a node: init, spin, clean shutdown on Ctrl-C / SIGTERM / external shutdown."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from vla_stack.realtime import apply_realtime_priority


def spin_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Create the node with `factory`, spin it until shutdown, then stop and destroy it.

    Calls the node's `stop()` first when it has one (threads, devices). Uses try/finally with
    `rclpy.try_shutdown()` (the `with rclpy.init()` form fails on Jazzy). Returns 0.
    Real-time priority asked for by the profile (`VLA_STACK_RT_PRIORITY`) is applied first, before
    rclpy starts its threads, or a warning says why not.
    """
    apply_realtime_priority(argv=args)
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            try:
                stop = getattr(node, "stop", None)
                if callable(stop):
                    stop()
                node.destroy_node()
            except KeyboardInterrupt:  # a second Ctrl-C while stopping: just leave
                pass
        rclpy.try_shutdown()
    return 0
