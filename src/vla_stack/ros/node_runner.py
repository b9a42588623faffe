"""The one `main()` of a node: init, spin, clean shutdown on Ctrl-C / SIGTERM / external shutdown.

Every node process ends the same way, with exit code 0 (ros2 launch and systemd treat anything
else as a crash):

1. SIGINT / SIGTERM only set a flag (own handlers instead of rclpy's: rclpy's raise
   KeyboardInterrupt wherever the main thread happens to be, e.g. inside the EventsExecutor's
   C++ dispatch, which turned it into `RuntimeError: Unable to convert call argument '0' to
   Python object`; and they shut the context down while worker threads still publish,
   `RCLError: publisher's context is invalid`). A second signal while stopping is logged and
   otherwise ignored: stopping is already under way and bounded.
2. The spin loop (`spin_once` with a short timeout) sees the flag and returns.
3. The node's `stop()` ends and joins its threads while the context is still valid.
4. Threads the node started (running vla_stack code) that are still alive get a short grace period; if one is stuck
   (e.g. inside a long model call), the process leaves at once with the exit code instead of
   destroying the node under it (a late publish would fail with a traceback).
5. The node is destroyed, then the context is shut down.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from vla_stack.realtime import apply_realtime_priority

SPIN_PERIOD = 0.1
"""Longest time (s) the spin loop blocks before it looks at the stop flag again."""
THREAD_GRACE = 2.0
"""How long (s, wall clock) threads the node started may still run after its `stop()` returned."""


class StopSignal:
    """SIGINT / SIGTERM handlers that only record the request (see the module docstring)."""

    def __init__(self, node_name: str = "node_runner") -> None:
        self.event = threading.Event()
        self.signal_name = ""
        self.node_name = node_name  # shown in the "already stopping" line

    def install(self) -> None:
        """Replace the handlers of SIGINT and SIGTERM (main thread only); they stay until the process ends."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if self.event.is_set():
            # runs in the main thread between bytecodes: print, don't touch rclpy's logging locks
            print(f"[{self.node_name}] {name} received while already stopping ({self.signal_name}); "
                  "still stopping", file=sys.stderr, flush=True)
            return
        self.signal_name = name
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


def spin_node(
    factory: Callable[[], Node],
    args: list[str] | None = None,
    *,
    executor_factory: Callable[[], Executor] | None = None,
    until: Callable[[Node], bool] | None = None,
    fatal_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Create the node with `factory`, spin it until a signal / shutdown / `until(node)`, then stop it.

    Args:
        factory: builds the node (after `rclpy.init`).
        args: command-line arguments for `rclpy.init` (ROS arguments).
        executor_factory: executor to spin with (default SingleThreadedExecutor); created after the node.
        until: optional predicate checked every `SPIN_PERIOD` s; True ends the node normally
            (e.g. the recorder's `duration`).
        fatal_errors: exceptions of `factory` that mean "cannot start with this configuration":
            logged as fatal, exit code 2.

    Calls the node's `stop()` first when it has one (threads, devices, files), with the context
    still valid, then destroys the node and shuts the context down (`rclpy.try_shutdown()`; the
    `with rclpy.init()` form fails on Jazzy). Returns the process exit code: 0 on a signal,
    an external shutdown or `until`; 2 on a `fatal_errors` exception. Real-time priority asked
    for by the profile (`VLA_STACK_RT_PRIORITY`) is applied first, or a warning says why not.
    """
    apply_realtime_priority(argv=args)  # SCHED_FIFO when the profile asks (before rclpy starts threads), or a warning
    stop_signal = StopSignal()
    stop_signal.install()  # before rclpy.init: a signal during start-up is a request like any other
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    log = rclpy.logging.get_logger("node_runner")
    threads_before = set(threading.enumerate())
    node: Node | None = None
    executor: Executor | None = None
    code = 0
    try:
        try:
            node = factory()
        except fatal_errors as exc:
            log.fatal(f"cannot start: {exc}")
            return 2
        log = node.get_logger()
        stop_signal.node_name = node.get_name()
        executor = executor_factory() if executor_factory is not None else SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not stop_signal.is_set():
            executor.spin_once(timeout_sec=SPIN_PERIOD)
            if until is not None and until(node):
                break
    except ExternalShutdownException:
        pass
    except KeyboardInterrupt:  # SIGINT reached us before our handler was installed (not expected)
        pass
    finally:
        stopping = f"{stop_signal.signal_name} received" if stop_signal.is_set() else "shutting down"
        if node is not None:
            log.info(f"{stopping}: stopping the node")
            stop = getattr(node, "stop", None)
            if callable(stop):
                stop()
            stuck = _wait_for_threads(threads_before, THREAD_GRACE)
            if stuck:
                log.warning(f"threads {stuck} still running {THREAD_GRACE:g} s after stop(); leaving without "
                            "destroying the node (their publishes would fail on a shut-down context)")
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        # the handlers stay: a SIGTERM while the interpreter finalizes (ros2 launch escalates after
        # 5 s) must not turn a clean exit into -15
    return code


def _wait_for_threads(before: set[threading.Thread], timeout: float) -> list[str]:
    """Join the stack's threads started since `before` (bounded by `timeout` s in total); names of those still alive.

    Only threads running vla_stack code count: libraries keep helper threads of their own that never
    end (e.g. tqdm's monitor) and die with the process.
    """
    def ours(t: threading.Thread) -> bool:
        code = getattr(t, "_target", None) or type(t).run
        return (t not in before and t is not threading.current_thread() and t.is_alive()
                and str(getattr(code, "__module__", "")).startswith("vla_stack"))

    deadline = time.monotonic() + timeout
    for thread in [t for t in threading.enumerate() if ours(t)]:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threading.enumerate() if ours(t)]
