"""Mobile base gate: `cmd_vel` in, limited `cmd_vel` out.

Velocity limits, acceleration limits (also when stopping), a watchdog, and
speed-and-separation scaling from a LaserScan: the linear speed is scaled by
clip((d - stop_distance) / (slow_distance - stop_distance), 0, 1), where d is the nearest
valid return within `sector_half_angle` of the direction of travel (so the base can always
back away from an obstacle); near any obstacle (closer than `slow_distance`) rotation is
capped at `near_angular_speed`. The scan frame is taken as the base frame (x forward).
Without a fresh scan the base does not move when `require_scan` is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class BaseGateConfig:
    """Limits of the base gate (SI units)."""

    max_linear_speed: float = field(default=0.5, metadata={"help": "Largest |(vx, vy)| sent to the base, m/s."})
    max_angular_speed: float = field(default=1.0, metadata={"help": "Largest |wz| sent to the base, rad/s."})
    max_linear_acceleration: float = field(default=0.5, metadata={"help": "Largest change of (vx, vy), m/s²."})
    max_angular_acceleration: float = field(default=1.5, metadata={"help": "Largest change of wz, rad/s²."})
    timeout: float = field(default=0.5, metadata={"help": "No cmd_vel_in for this long -> ramp down to zero, s."})
    stop_distance: float = field(default=0.3, metadata={"help": "Obstacle closer than this in the direction of travel -> no linear motion, m."})
    slow_distance: float = field(default=1.0, metadata={"help": "Linear speed scales down from here to stop_distance, m."})
    sector_half_angle: float = field(default=0.8, metadata={"help": "Half-width of the travel-direction sector the scan is checked in, rad."})
    near_angular_speed: float = field(default=0.3, metadata={"help": "Rotation cap when any return is closer than slow_distance, rad/s."})
    scan_timeout: float = field(default=0.5, metadata={"help": "A scan older than this counts as missing, s."})
    require_scan: bool = field(default=True, metadata={"help": "Refuse to move without a fresh scan."})

    def __post_init__(self) -> None:
        for name in ("max_linear_speed", "max_angular_speed", "max_linear_acceleration", "max_angular_acceleration",
                     "timeout", "scan_timeout"):
            if not (getattr(self, name) > 0):
                raise ValueError(f"base.{name} must be > 0, got {getattr(self, name)}")
        if not (0 <= self.stop_distance < self.slow_distance):
            raise ValueError(f"need 0 <= base.stop_distance < base.slow_distance, got {self.stop_distance}, {self.slow_distance}")
        if not (0 < self.sector_half_angle <= math.pi):
            raise ValueError(f"base.sector_half_angle must be in (0, pi], got {self.sector_half_angle}")
        if self.near_angular_speed < 0:
            raise ValueError("base.near_angular_speed must be >= 0")


@dataclass(frozen=True)
class BaseCommand:
    """Limited base velocity: vx, vy m/s and wz rad/s in the base frame; `reason` when limited."""

    vx: float
    vy: float
    wz: float
    stamp: float
    reason: str = ""


class BaseGate:
    """The base velocity limiter. Call `update(now)` at a fixed rate."""

    def __init__(self, config: BaseGateConfig) -> None:
        self.config = config
        self._request = np.zeros(3)
        self._request_time: float | None = None
        self._out = np.zeros(3)
        self._last: float | None = None
        self._scan_xy: np.ndarray | None = None  # (k, 2) return points, m
        self._scan_time: float | None = None

    def on_command(self, vx: float, vy: float, wz: float, now: float) -> None:
        """New requested velocity; raises ValueError on NaN/inf (the request is then ignored)."""
        req = np.array([vx, vy, wz], dtype=np.float64)
        if not np.all(np.isfinite(req)):
            raise ValueError(f"cmd_vel_in contains NaN/inf: {req.tolist()}")
        self._request = req
        self._request_time = now

    def on_scan(
        self, ranges: np.ndarray, angle_min: float, angle_increment: float, range_min: float, range_max: float, now: float
    ) -> None:
        """New laser scan (ranges m, angles rad in the base frame). Invalid returns are ignored."""
        r = np.asarray(ranges, dtype=np.float64)
        ang = angle_min + angle_increment * np.arange(r.shape[0])
        ok = np.isfinite(r) & (r >= range_min) & (r <= range_max)
        self._scan_xy = np.stack([r[ok] * np.cos(ang[ok]), r[ok] * np.sin(ang[ok])], axis=1)
        self._scan_time = now

    def _scan_fresh(self, now: float) -> bool:
        return self._scan_time is not None and now - self._scan_time <= self.config.scan_timeout

    def _nearest(self, direction: np.ndarray | None) -> float:
        pts = self._scan_xy
        if pts is None or len(pts) == 0:
            return math.inf
        d = np.linalg.norm(pts, axis=1)
        if direction is not None:
            cosang = (pts @ direction) / np.maximum(d, 1e-9)
            d = d[cosang >= math.cos(self.config.sector_half_angle)]
        return float(np.min(d)) if len(d) else math.inf

    def update(self, now: float, stop: bool = False) -> BaseCommand:
        """Limited velocity at `now`; `stop` (e-stop, fault) ramps to zero at the acceleration limits."""
        c = self.config
        dt = 0.0 if self._last is None else max(now - self._last, 0.0)
        self._last = now
        target = self._request.copy()
        reason = ""
        if stop:
            target[:] = 0.0
            reason = "stopped by the safety controller"
        elif self._request_time is None or now - self._request_time > c.timeout:
            target[:] = 0.0
            reason = "no cmd_vel_in (watchdog)" if self._request_time is not None else ""
        elif c.require_scan and not self._scan_fresh(now):
            target[:] = 0.0
            reason = "no fresh laser scan"
        lin = float(np.linalg.norm(target[:2]))
        if lin > c.max_linear_speed:
            target[:2] *= c.max_linear_speed / lin
            lin = c.max_linear_speed
        target[2] = float(np.clip(target[2], -c.max_angular_speed, c.max_angular_speed))
        if self._scan_fresh(now):
            if lin > 1e-9:
                d = self._nearest(target[:2] / lin)
                scale = float(np.clip((d - c.stop_distance) / (c.slow_distance - c.stop_distance), 0.0, 1.0))
                if scale < 1.0:
                    target[:2] *= scale
                    reason = f"obstacle at {d:.2f} m: speed x{scale:.2f}"
            if abs(target[2]) > c.near_angular_speed and self._nearest(None) < c.slow_distance:
                target[2] = math.copysign(c.near_angular_speed, target[2])
                reason = reason or "obstacle nearby: rotation capped"
        # acceleration limits
        dv = target[:2] - self._out[:2]
        step = c.max_linear_acceleration * dt
        n = float(np.linalg.norm(dv))
        if n > step:
            dv *= step / n
        self._out[:2] += dv
        dw = float(np.clip(target[2] - self._out[2], -c.max_angular_acceleration * dt, c.max_angular_acceleration * dt))
        self._out[2] += dw
        return BaseCommand(float(self._out[0]), float(self._out[1]), float(self._out[2]), now, reason)
