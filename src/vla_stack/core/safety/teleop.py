"""Servo-style teleop: Cartesian twists and joint jogs -> joint velocity references.

Twists are turned into joint velocities with damped least squares on the TCP Jacobian
(Pinocchio, LOCAL_WORLD_ALIGNED: linear velocity of the TCP origin and angular velocity,
both in base-frame axes). Like MoveIt Servo, the Jacobian's condition number (largest over
smallest singular value) slows the motion down linearly between `slowdown_threshold` (17)
and `stop_threshold` (30) when the motion heads towards the singularity, and stops it at or
beyond the hard threshold; motion away from a singularity is not slowed.

The result is a joint velocity target; the controller's jerk-limited streamer and guards
turn it into commands, so teleop obeys the same limits and workspace as the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_stack.core.safety.limits import JointLimits
from vla_stack.core.validation import InvalidCommand, check_finite, reorder_columns


@dataclass(frozen=True)
class ServoResult:
    """Joint velocity from a twist.

    Args:
        velocity: (n,) joint velocity target, rad/s.
        scale: singularity slowdown factor applied, 0..1.
        condition: Jacobian condition number at the current position.
        reason: why the motion was slowed/stopped ("" when not).
    """

    velocity: np.ndarray
    scale: float
    condition: float
    reason: str = ""


def condition_number(jacobian: np.ndarray) -> float:
    """Largest over smallest singular value of a (6, n) Jacobian (inf when rank-deficient)."""
    s = np.linalg.svd(jacobian, compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 1e-12 else float("inf")


class TeleopServo:
    """Turns teleop commands into joint velocity targets.

    Args:
        robot: RobotModel (Jacobian of its TCP frame), or None (twists then unavailable).
        limits: the (scaled) joint limits; joint velocities are scaled uniformly to respect them.
        base_frame: frame name of twists in base axes ("" also means base).
        tool_frame: frame name of twists in tool axes (the TCP frame).
        max_linear_speed: largest TCP speed a twist may ask for, m/s (longer vectors are shortened).
        max_angular_speed: largest TCP angular speed, rad/s.
        slowdown_threshold, stop_threshold: condition numbers where slowing starts and motion stops.
        damping: damping λ of the least squares, in Jacobian units.
        lookahead: s; the condition number at q + lookahead*q̇ says whether q̇ heads towards a singularity.
    """

    def __init__(
        self,
        robot,
        limits: JointLimits,
        base_frame: str,
        tool_frame: str,
        max_linear_speed: float = 0.25,
        max_angular_speed: float = 0.8,
        slowdown_threshold: float = 17.0,
        stop_threshold: float = 30.0,
        damping: float = 0.02,
        lookahead: float = 0.02,
    ) -> None:
        if not (1.0 <= slowdown_threshold < stop_threshold):
            raise ValueError(f"need 1 <= slowdown_threshold < stop_threshold, got {slowdown_threshold}, {stop_threshold}")
        if max_linear_speed <= 0 or max_angular_speed <= 0 or damping < 0:
            raise ValueError("teleop speeds must be > 0 and damping >= 0")
        self.robot = robot
        self.limits = limits
        self.base_frame = base_frame
        self.tool_frame = tool_frame
        self.max_linear_speed = max_linear_speed
        self.max_angular_speed = max_angular_speed
        self.slowdown_threshold = slowdown_threshold
        self.stop_threshold = stop_threshold
        self.damping = damping
        self.lookahead = lookahead

    def validate_twist(self, linear: Sequence[float], angular: Sequence[float], frame: str) -> np.ndarray:
        """(6,) twist [v (m/s), ω (rad/s)] clipped to the teleop speeds; raises InvalidCommand."""
        if self.robot is None:
            raise InvalidCommand("no_kinematics", "Cartesian teleop needs the robot's URDF (robot profile has none)")
        if frame not in ("", self.base_frame, self.tool_frame):
            raise InvalidCommand(
                "unknown_frame", f"twist frame '{frame}' is neither the base '{self.base_frame}' nor the tool '{self.tool_frame}'"
            )
        tw = np.concatenate([np.asarray(linear, float).reshape(3), np.asarray(angular, float).reshape(3)])
        check_finite("twist", tw)
        lin, ang = np.linalg.norm(tw[:3]), np.linalg.norm(tw[3:])
        if lin > self.max_linear_speed:
            tw[:3] *= self.max_linear_speed / lin
        if ang > self.max_angular_speed:
            tw[3:] *= self.max_angular_speed / ang
        return tw

    def _limit(self, qdot: np.ndarray) -> np.ndarray:
        ratio = float(np.max(np.abs(qdot) / self.limits.velocity))
        return qdot / ratio if ratio > 1.0 else qdot

    def twist_to_joint_velocity(self, q: np.ndarray, twist: np.ndarray, frame: str) -> ServoResult:
        """Joint velocity (rad/s) realising `twist` (6,) given in `frame` at joint positions `q`."""
        tw = np.array(twist, dtype=np.float64)
        if frame == self.tool_frame and frame != self.base_frame:
            rot = self.robot.fk(q)[:3, :3]
            tw = np.concatenate([rot @ tw[:3], rot @ tw[3:]])
        jac = self.robot.jacobian(q)
        jjt = jac @ jac.T + (self.damping**2) * np.eye(6)
        qdot = self._limit(jac.T @ np.linalg.solve(jjt, tw))
        cond = condition_number(jac)
        scale, reason = 1.0, ""
        if cond > self.slowdown_threshold and np.any(qdot != 0):
            step = qdot * (self.lookahead / max(float(np.max(np.abs(qdot) / self.limits.velocity)), 1e-9))
            ahead = condition_number(self.robot.jacobian(self.limits.clip_position(q + step)))
            if ahead > cond:  # heading towards the singularity
                if cond >= self.stop_threshold:
                    scale = 0.0
                    reason = f"stopped near a singularity (Jacobian condition number {cond:.1f} >= {self.stop_threshold:g})"
                else:
                    scale = 1.0 - (cond - self.slowdown_threshold) / (self.stop_threshold - self.slowdown_threshold)
                    reason = f"slowed to {scale:.0%} near a singularity (condition number {cond:.1f})"
        return ServoResult(qdot * scale, scale, cond, reason)

    def jog_to_joint_velocity(self, names: Sequence[str], velocities: Sequence[float]) -> np.ndarray:
        """(n,) joint velocity from a jog command naming some joints (others 0), scaled into limits."""
        vel = np.asarray(velocities, dtype=np.float64).reshape(-1)
        if len(names) == 0:
            raise InvalidCommand("no_joints", "joint jog names no joints")
        if vel.shape[0] != len(names):
            raise InvalidCommand("length_mismatch", f"joint jog has {len(names)} names but {vel.shape[0]} velocities")
        check_finite("joint jog velocities", vel)
        order, vals = reorder_columns(names, vel, self.limits.names, allow_subset=True)
        out = np.zeros(self.limits.n)
        index = {n: i for i, n in enumerate(self.limits.names)}
        for name, v in zip(order, vals, strict=True):
            out[index[name]] = v
        return self._limit(out)
