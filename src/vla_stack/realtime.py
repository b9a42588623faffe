"""Real-time scheduling a node process applies to itself at start (no `chrt` prefix needed).

A profile node with `rt_priority: N` (config/profiles/*.yaml) gets the environment variable
`VLA_STACK_RT_PRIORITY=N`, from `vla-stack up` and from `ros2 launch` alike
(`NodeSpec.process_environment()`). The node's `main()` calls `apply_realtime_priority()` before
`rclpy.init()`, so the process, its threads and every thread it starts later (DDS, executor, workers) run
with SCHED_FIFO at priority N, as `chrt -f N` would give them. Without root or CAP_SYS_NICE
(most lab PCs by default) the node prints a warning and keeps running with normal scheduling,
under its own name, on both paths.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence

RT_PRIORITY_ENV = "VLA_STACK_RT_PRIORITY"
"""Environment variable holding the SCHED_FIFO priority (1..99) a node asks for; unset or 0 = none."""


def _node_name(argv: Sequence[str]) -> str:
    """The node name from `-r __node:=NAME` in `argv`, else the executable's name."""
    for arg in argv:
        if arg.startswith("__node:="):
            return arg.split(":=", 1)[1]
    return os.path.basename(argv[0]) if argv else "node"


def _other_threads() -> list[int]:
    """Thread ids of this process other than the calling thread (Linux /proc; [] elsewhere)."""
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return []
    return [t for t in tids if t != threading.get_native_id()]


def requested_priority(environ: dict[str, str] | os._Environ | None = None) -> int:
    """SCHED_FIFO priority asked for by `VLA_STACK_RT_PRIORITY` (0 = none); ValueError when malformed."""
    text = (os.environ if environ is None else environ).get(RT_PRIORITY_ENV, "").strip()
    if not text:
        return 0
    try:
        priority = int(text)
    except ValueError as exc:
        raise ValueError(f"{RT_PRIORITY_ENV} must be an integer priority 0..99, got {text!r}") from exc
    if not 0 <= priority <= 99:
        raise ValueError(f"{RT_PRIORITY_ENV} must be 0..99, got {priority}")
    return priority


def apply_realtime_priority(
    priority: int | None = None,
    argv: Sequence[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> bool:
    """Switch the calling process to SCHED_FIFO at `priority` (default: from `VLA_STACK_RT_PRIORITY`).

    Call it first thing in a node's `main()`, before `rclpy.init()`: Linux sets the policy per
    thread, and threads started afterwards inherit it. On PermissionError (no root or
    CAP_SYS_NICE) or an unsupported platform it reports a warning through `warn` (default: a
    ROS-style line on stderr naming the node) and leaves normal scheduling in place.

    Returns True when SCHED_FIFO is now in effect, False otherwise (including priority 0).
    """
    argv = sys.argv if argv is None else argv
    name = _node_name(argv)

    def report(message: str) -> None:
        if warn is not None:
            warn(message)
        else:
            print(f"[WARN] [{name}]: {message}", file=sys.stderr, flush=True)

    try:
        priority = requested_priority() if priority is None else int(priority)
    except ValueError as exc:
        report(f"{exc}; running with normal scheduling")
        return False
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        # threads started before this call (e.g. by an imported BLAS) keep their policy: move them too
        for tid in _other_threads():
            try:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
            except ProcessLookupError:  # the thread ended meanwhile
                pass
    except PermissionError:
        report(f"cannot use real-time priority {priority} (SCHED_FIFO needs root or CAP_SYS_NICE, or an "
               f"rtprio limit >= {priority} in /etc/security/limits.conf); running with normal scheduling: "
               "expect more control-loop jitter")
        return False
    except (AttributeError, OSError) as exc:  # not Linux, or the kernel refused for another reason
        report(f"cannot use real-time priority {priority} ({exc}); running with normal scheduling")
        return False
    print(f"[INFO] [{name}]: running with real-time priority SCHED_FIFO {priority}", file=sys.stderr, flush=True)
    return True
