"""Which topics to record: explicit names/patterns, "all stack topics", or everything.

"All stack topics" are the topics of the contract in DESIGN.md (sensors, task input, grounding,
planner, action expert, safety, command and status topics), matched by glob patterns relative
to the namespace. Evaluation-only simulator topics are not part of the stack and are not
recorded by default (pass them explicitly, or use `all_topics`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence

DEFAULT_STACK_TOPIC_PATTERNS: tuple[str, ...] = (
    "camera/*", "wrist_camera/*", "joint_states", "wrench", "wrench_raw", "tactile/*", "scan",
    "task/*", "grounding/*", "planner/*", "action_expert/*", "safety/*",
    "*_controller/joint_trajectory", "*_controller/commands", "cmd_vel", "cmd_vel_in",
    "*/status", "diagnostics", "tf", "tf_static",
)
"""Glob patterns (relative to the namespace) of the stack's topics."""


def _relative(name: str, namespace: str) -> str | None:
    """`name` relative to `namespace` ("/ns/joint_states" -> "joint_states"), None when outside it."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if ns:
        if not name.startswith(ns + "/"):
            return None
        return name[len(ns) + 1:]
    return name.lstrip("/")


def select_topics(
    available: Mapping[str, Sequence[str]],
    topics: Sequence[str] = (),
    all_topics: bool = False,
    exclude: Sequence[str] = (),
    namespace: str = "",
    stack_patterns: Sequence[str] = DEFAULT_STACK_TOPIC_PATTERNS,
) -> tuple[dict[str, str], list[str]]:
    """Pick topics to record from the graph.

    Args:
        available: {absolute topic name: [type names]} as the ROS graph reports it.
        topics: names or glob patterns (relative to `namespace`, or absolute with a leading
            "/"); empty = the stack topics (`stack_patterns`), unless `all_topics`.
        all_topics: record every available topic (exclusions still apply).
        exclude: glob patterns (same form as `topics`) to leave out.
        namespace: namespace of the stack.
        stack_patterns: what "the stack topics" means.

    Returns:
        ({topic: type name}, [notes]) — notes say why a matching topic was skipped
        (several types on one topic).
    """
    def matches(name: str, patterns: Sequence[str]) -> bool:
        rel = _relative(name, namespace)
        for p in patterns:
            if p.startswith("/"):
                if fnmatch.fnmatchcase(name, p):
                    return True
            elif rel is not None and fnmatch.fnmatchcase(rel, p):
                return True
        return False

    chosen: dict[str, str] = {}
    notes: list[str] = []
    for name in sorted(available):
        if all_topics:
            wanted = True
        elif topics:
            wanted = matches(name, topics)
        else:
            wanted = matches(name, stack_patterns)
        if not wanted or matches(name, exclude):
            continue
        types = list(available[name])
        if len(types) != 1:
            notes.append(f"{name}: skipped, {len(types)} message types on one topic ({types})")
            continue
        chosen[name] = types[0]
    return chosen, notes
