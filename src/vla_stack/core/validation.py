"""Validation of commands that arrive from outside (policies, users, other nodes).

Shared by the simulated robot (which rejects bad commands like ros2_control does) and the
safety controller (which rejects them before anything moves). Every check raises
`InvalidCommand` with a reason string a lab operator can act on and a short `code` that
counters and status messages use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_stack.core.types import ActionChunk


class InvalidCommand(ValueError):
    """A command was rejected. `code` is a stable short key ("nan", "unknown_joint", ...)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def check_finite(name: str, values: np.ndarray) -> None:
    """Raise InvalidCommand("nan") if `values` holds NaN or inf."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise InvalidCommand("nan", f"{name} contains {bad} non-finite value(s) (NaN/inf)")


def reorder_columns(
    names: Sequence[str], values: np.ndarray, expected: Sequence[str], allow_subset: bool = False
) -> tuple[list[str], np.ndarray]:
    """Reorder the last axis of `values` from `names` order to `expected` order.

    Args:
        names: joint names of the columns of `values`.
        values: (..., len(names)).
        expected: the joint order the caller works in.
        allow_subset: accept a subset of `expected` (returns only those, in `expected` order).

    Raises InvalidCommand for unknown, duplicate or (unless allow_subset) missing names.
    """
    names = list(names)
    if len(set(names)) != len(names):
        raise InvalidCommand("duplicate_joint", f"duplicate joint names in {names}")
    unknown = [n for n in names if n not in expected]
    if unknown:
        raise InvalidCommand("unknown_joint", f"unknown joint(s) {unknown}; this robot has {list(expected)}")
    missing = [n for n in expected if n not in names]
    if missing and not allow_subset:
        raise InvalidCommand("missing_joint", f"missing joint(s) {missing}")
    order = [n for n in expected if n in names]
    idx = [names.index(n) for n in order]
    return order, np.asarray(values)[..., idx]


def validate_chunk(
    chunk_names: Sequence[str],
    times: Sequence[float],
    positions: Sequence[Sequence[float]],
    expected: Sequence[str],
    allow_subset: bool = False,
    velocities: Sequence[Sequence[float]] | None = None,
) -> ActionChunk:
    """Validate a joint trajectory and return it as an ActionChunk in `expected` joint order.

    Checks, in order: at least one point; every point has one position per joint (and
    velocities, when given, likewise); finite values; strictly increasing non-negative times;
    known, non-duplicate and (unless allow_subset) complete joint names.
    """
    if len(times) == 0:
        raise InvalidCommand("empty", "trajectory has no points")
    n = len(chunk_names)
    if n == 0:
        raise InvalidCommand("no_joints", "trajectory names no joints")
    for i, p in enumerate(positions):
        if len(p) != n:
            raise InvalidCommand("length_mismatch", f"point {i} has {len(p)} positions for {n} joint names")
    if velocities is not None:
        for i, v in enumerate(velocities):
            if len(v) not in (0, n):
                raise InvalidCommand("length_mismatch", f"point {i} has {len(v)} velocities for {n} joint names")
        if any(len(v) == 0 for v in velocities):
            velocities = None
    t = np.asarray(times, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64).reshape(len(t), n)
    check_finite("time_from_start", t)
    check_finite("positions", pos)
    vel = None
    if velocities is not None:
        vel = np.asarray(velocities, dtype=np.float64).reshape(len(t), n)
        check_finite("velocities", vel)
    if t[0] < 0:
        raise InvalidCommand("negative_time", f"time_from_start of point 0 is negative ({t[0]:.3f} s)")
    if np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0))
        raise InvalidCommand(
            "non_increasing_time",
            f"time_from_start not strictly increasing at point {i + 1} ({t[i]:.4f} s -> {t[i + 1]:.4f} s)",
        )
    order, pos = reorder_columns(chunk_names, pos, expected, allow_subset)
    if vel is not None:
        _, vel = reorder_columns(chunk_names, vel, expected, allow_subset)
    return ActionChunk(tuple(order), t, pos, velocities=vel)
