"""Force/torque pass-through with bias removal.

Six-axis F/T sensors (ATI, Robotiq FT 300, Bota, an arm's estimated external wrench ...) read a
non-zero wrench with nothing in contact: offset drift, the weight of the tool. The bias is the
mean of the first `bias_samples` valid samples (taken at start-up, when the arm is still and
nothing is gripped) or of the samples after a `rezero()` request; every output is the raw
sample minus the bias, in the sensor frame, same stamp.

Rules:
- Samples with NaN/inf (or beyond `max_force` / `max_torque` when set) are rejected with a
  reason that names the component; they never enter the bias or the output.
- Until the first bias is complete nothing is output (a raw, biased wrench would look like a
  collision to a safety monitor).
- During a re-zero the previous bias keeps being applied, so the output has no gap; the new
  bias takes over once complete.

ROS-free: numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.types import Wrench

_AXES = ("x", "y", "z")


@dataclass
class WrenchBiasConfig:
    """Parameters of the bias removal; see the field help."""

    bias_samples: int = field(
        default=100, metadata={"help": "valid samples averaged into the bias (at start-up and on re-zero)"}
    )
    max_force: float = field(
        default=0.0,
        metadata={"help": "reject samples whose force component magnitude exceeds this, N (0 = no limit)"},
    )
    max_torque: float = field(
        default=0.0,
        metadata={"help": "reject samples whose torque component magnitude exceeds this, N·m (0 = no limit)"},
    )

    def __post_init__(self) -> None:
        if self.bias_samples < 1:
            raise ValueError(f"bias_samples must be >= 1, got {self.bias_samples}")
        for name in ("max_force", "max_torque"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be >= 0 (0 = no limit), got {v}")


@dataclass(frozen=True)
class WrenchUpdate:
    """Result of one sample.

    Args:
        status: "ok" (bias removed, `wrench` set), "collecting" (first bias not complete yet,
            no output) or "rejected" (`reason` says why, no output).
        wrench: the bias-removed wrench (sensor frame, N / N·m, the sample's stamp) or None.
        reason: why a sample was rejected ("" otherwise).
    """

    status: str
    wrench: Wrench | None = None
    reason: str = ""


def check_wrench_sample(sample: Wrench, max_force: float = 0.0, max_torque: float = 0.0) -> str:
    """Reason a raw F/T sample is unusable ("" when it is fine): NaN/inf or out of range components."""
    for name, values, limit, unit in (
        ("force", sample.force, max_force, "N"),
        ("torque", sample.torque, max_torque, "N·m"),
    ):
        bad = [f"{name}.{a}={v}" for a, v in zip(_AXES, values, strict=False) if not math.isfinite(float(v))]
        if bad:
            return "non-finite " + ", ".join(bad)
        if limit > 0:
            over = [
                f"{name}.{a}={float(v):.3g}"
                for a, v in zip(_AXES, values, strict=False)
                if abs(float(v)) > limit
            ]
            if over:
                return f"{', '.join(over)} beyond the {limit:g} {unit} limit (sensor saturated or a glitch)"
    return ""


class WrenchBiasRemover:
    """Removes the no-load bias of a 6-axis F/T sensor; see the module docstring.

    Args:
        config: number of bias samples and optional range limits.
    """

    def __init__(self, config: WrenchBiasConfig | None = None) -> None:
        self.config = config or WrenchBiasConfig()
        self.bias_force: np.ndarray | None = None
        """Current force bias (3,), N; None until the first bias is complete."""
        self.bias_torque: np.ndarray | None = None
        """Current torque bias (3,), N·m."""
        self.accepted = 0
        self.rejected = 0
        self.last_reason = ""
        self._target = self.config.bias_samples
        self._collecting = True
        self._sum_f = np.zeros(3)
        self._sum_t = np.zeros(3)
        self._n = 0

    @property
    def collecting(self) -> bool:
        """True while a bias (first one or a re-zero) is being collected."""
        return self._collecting

    @property
    def bias_ready(self) -> bool:
        """True once a bias exists (outputs are produced)."""
        return self.bias_force is not None

    @property
    def progress(self) -> tuple[int, int]:
        """(samples collected, samples needed) of the bias being collected."""
        return (self._n, self._target) if self._collecting else (self._target, self._target)

    def rezero(self, samples: int | None = None) -> None:
        """Collect a new bias from the next `samples` valid samples (default `bias_samples`).

        The old bias stays in use until the new one is complete.
        """
        n = self.config.bias_samples if samples is None else int(samples)
        if n < 1:
            raise ValueError(f"re-zero needs >= 1 sample, got {n}")
        self._target = n
        self._collecting = True
        self._sum_f[:] = 0.0
        self._sum_t[:] = 0.0
        self._n = 0

    def set_bias(self, force, torque) -> None:
        """Use a known bias (force (3,) N, torque (3,) N·m), e.g. from a previous session; stops collecting."""
        f, t = np.asarray(force, dtype=np.float64), np.asarray(torque, dtype=np.float64)
        if f.shape != (3,) or t.shape != (3,) or not (np.all(np.isfinite(f)) and np.all(np.isfinite(t))):
            raise ValueError(f"bias needs finite force (3,) and torque (3,), got {f} and {t}")
        self.bias_force, self.bias_torque = f.copy(), t.copy()
        self._collecting = False

    def update(self, sample: Wrench) -> WrenchUpdate:
        """Take one raw sample (sensor frame, N / N·m); return the bias-removed wrench or why not."""
        reason = check_wrench_sample(sample, self.config.max_force, self.config.max_torque)
        if reason:
            self.rejected += 1
            self.last_reason = reason
            return WrenchUpdate("rejected", None, reason)
        if self._collecting:
            self._sum_f += sample.force
            self._sum_t += sample.torque
            self._n += 1
            if self._n >= self._target:
                self.bias_force, self.bias_torque = self._sum_f / self._n, self._sum_t / self._n
                self._collecting = False
        if self.bias_force is None or self.bias_torque is None:
            return WrenchUpdate("collecting")
        self.accepted += 1
        out = Wrench(
            sample.force - self.bias_force, sample.torque - self.bias_torque, sample.stamp, sample.frame_id
        )
        return WrenchUpdate("ok", out)
