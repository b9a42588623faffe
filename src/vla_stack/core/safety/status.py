"""State, reasons and counters of the safety controller (what `safety/status` reports).

Every guard reports through `ReasonLog.record(code, reason)`: `code` is a short stable key
(counters and tests use it), `reason` a sentence a lab operator can act on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class SafetyState(StrEnum):
    """What the controller is doing with the arm.

    ACTIVE: following a chunk or teleop input. HOLDING: at rest, holding position (no input,
    or a guard stopped the motion). STOPPING: decelerating to rest within the limits.
    ESTOP: e-stop latched (stopping or stopped); needs `safety/reset` with the e-stop released.
    FAULT: something the controller cannot fix itself (stale joint_states, tracking error);
    motion stopped, needs `safety/reset`.
    """

    ACTIVE = "ACTIVE"
    HOLDING = "HOLDING"
    STOPPING = "STOPPING"
    ESTOP = "ESTOP"
    FAULT = "FAULT"


@dataclass
class ReasonLog:
    """Counters per reason code plus the last reason.

    Args:
        counts: events per code since start.
        last_code, last_reason, last_time: the most recent event (time in s, controller clock).
    """

    counts: Counter = field(default_factory=Counter)
    last_code: str = ""
    last_reason: str = ""
    last_time: float = float("nan")

    def record(self, code: str, reason: str, now: float) -> None:
        """Count one event of `code` and remember it as the last reason."""
        self.counts[code] += 1
        self.last_code, self.last_reason, self.last_time = code, reason, now


@dataclass(frozen=True)
class SafetyStatus:
    """Snapshot of the controller for `safety/status`.

    Args:
        state: SafetyState.
        message: one line for the operator (what happens and why).
        mode: current input source: "chunk", "teleop_twist", "teleop_jog" or "none".
        last_code, last_reason: most recent rejection / guard event.
        counters: events per reason code since start.
        estop_pressed: last value received on `safety/estop`.
        stamp: controller time of the snapshot, s.
        values: extra key/values (commanded speed, chunk age, singularity condition number...).
    """

    state: SafetyState
    message: str
    mode: str
    last_code: str
    last_reason: str
    counters: dict[str, int]
    estop_pressed: bool
    stamp: float
    values: dict[str, float | str] = field(default_factory=dict)

    @property
    def level(self) -> str:
        """Diagnostic level: OK (ACTIVE/HOLDING), WARN (STOPPING), ERROR (ESTOP/FAULT)."""
        if self.state in (SafetyState.ESTOP, SafetyState.FAULT):
            return "ERROR"
        if self.state is SafetyState.STOPPING:
            return "WARN"
        return "OK"

    def key_values(self) -> dict[str, str]:
        """Flat string key/values for a DiagnosticStatus."""
        kv: dict[str, str] = {
            "state": self.state.value,
            "mode": self.mode,
            "last_code": self.last_code,
            "last_reason": self.last_reason,
            "estop_pressed": str(self.estop_pressed).lower(),
        }
        for code, n in sorted(self.counters.items()):
            kv[f"count.{code}"] = str(n)
        for k, v in self.values.items():
            kv[k] = f"{v:.6g}" if isinstance(v, float) else str(v)
        return kv
