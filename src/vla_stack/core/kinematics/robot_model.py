"""Kinematic model of a robot arm from its URDF (Pinocchio): FK, Jacobians, IK, joint limits.

Frames: every pose is expressed in the robot base frame (the URDF root link, the profile's
`base_frame`), which is also the world frame of the simulation. Poses are 4x4 homogeneous
matrices (rotation + translation in m). Joint values are rad (m for prismatic joints), in the
order of `RobotModel.joint_names`.

`RobotModel` is generic: any URDF, a list of controlled joints (single-DOF revolute or
prismatic), and a TCP frame. Joints of the URDF that are not controlled (e.g. the
fingers of a hand) stay at fixed positions that `set_fixed_positions` changes (e.g. the current gripper
opening before a collision check).

Not thread-safe: one instance owns one `pinocchio.Data` workspace. Use `copy()` per thread.

Extension point: collision checking (pinocchio + coal) is added to this class later; it can
use `self.model`, `self.full_configuration(q)` and `self.urdf_path`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pinocchio as pin

if TYPE_CHECKING:
    from vla_stack.core.robot_profile import RobotProfile


class IKResult(NamedTuple):
    """Result of `RobotModel.ik`; unpacks as `(q, converged, error)`.

    Args:
        q: (n,) joint positions, rad/m, within limits (the best found if not converged).
        converged: True if the residual is within the tolerances.
        error: (6,) residual in the base frame: position target - reached (m, 3) then rotation
            vector log(R_target · R_reachedᵀ) (rad, 3). The rotation part is zero for
            position-only IK.
    """

    q: np.ndarray
    converged: bool
    error: np.ndarray

    @property
    def position_error(self) -> float:
        """Distance between target and reached TCP position, m."""
        return float(np.linalg.norm(self.error[:3]))

    @property
    def rotation_error(self) -> float:
        """Angle between target and reached orientation, rad (0 for position-only IK)."""
        return float(np.linalg.norm(self.error[3:]))


class RobotModel:
    """Kinematics of one robot (Pinocchio model + controlled joints + TCP frame).

    Build with `RobotModel.from_urdf(...)`, `RobotModel.from_profile(profile)` or
    `RobotModel.for_robot(name)` (a profile under config/robots).

    Args:
        model: Pinocchio model of the whole URDF (fixed base).
        joints: names of the controlled joints, in the order `q` uses. Each must be a
            single-DOF (revolute or prismatic) joint.
        tcp_frame: default frame of `fk`, `jacobian` and `ik` (a link or frame of the URDF).
        urdf_path: the URDF the model came from (used by collision checking), if any.
        fixed_positions: positions of the joints that are not controlled (default: their
            neutral position, clipped into their limits).
    """

    def __init__(
        self,
        model: pin.Model,
        joints: Sequence[str],
        tcp_frame: str,
        urdf_path: str | Path | None = None,
        fixed_positions: Mapping[str, float] | None = None,
    ) -> None:
        self.model = model
        self.data = model.createData()
        self.urdf_path = Path(urdf_path) if urdf_path is not None else None
        joints = tuple(joints)
        if not joints:
            raise ValueError("at least one controlled joint is needed")
        if len(set(joints)) != len(joints):
            raise ValueError(f"duplicate joint names in {joints}")
        known = [model.names[i] for i in range(1, model.njoints)]
        self._idx_q: list[int] = []
        self._idx_v: list[int] = []
        for name in joints:
            if not model.existJointName(name):
                raise ValueError(f"joint '{name}' is not in the model (joints: {known})")
            jid = model.getJointId(name)
            jm = model.joints[jid]
            if jm.nq != 1 or jm.nv != 1:
                raise ValueError(f"joint '{name}' has {jm.nq} position coordinates; only 1-DOF joints are supported")
            self._idx_q.append(jm.idx_q)
            self._idx_v.append(jm.idx_v)
        self.joint_names: tuple[str, ...] = joints
        self.lower: np.ndarray = np.array(model.lowerPositionLimit[self._idx_q], dtype=np.float64)
        """(n,) lower position limits, rad/m (from the URDF)."""
        self.upper: np.ndarray = np.array(model.upperPositionLimit[self._idx_q], dtype=np.float64)
        """(n,) upper position limits, rad/m (from the URDF)."""
        self.velocity_limits: np.ndarray = np.array(model.velocityLimit[self._idx_v], dtype=np.float64)
        """(n,) velocity limits, rad/s or m/s (from the URDF)."""
        self.effort_limits: np.ndarray = np.array(model.effortLimit[self._idx_v], dtype=np.float64)
        """(n,) effort limits, N·m or N (from the URDF)."""
        if np.any(self.lower > self.upper):
            raise ValueError(f"lower limit above upper limit for joints {joints}")
        self._q_full = np.array(pin.neutral(model), dtype=np.float64)
        finite = np.isfinite(model.lowerPositionLimit) & np.isfinite(model.upperPositionLimit)
        self._q_full[finite] = np.clip(
            self._q_full[finite], model.lowerPositionLimit[finite], model.upperPositionLimit[finite]
        )
        if fixed_positions:
            self.set_fixed_positions(fixed_positions)
        self.tcp_frame = tcp_frame
        self._tcp_id = self.frame_id(tcp_frame)

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def from_urdf(
        cls,
        path: str | Path,
        joints: Sequence[str],
        tcp_frame: str,
        fixed_positions: Mapping[str, float] | None = None,
    ) -> RobotModel:
        """Model of the URDF at `path` (fixed base at the root link).

        Args:
            path: URDF file. Meshes are not loaded here (only kinematics).
            joints: controlled joints, in `q` order.
            tcp_frame: default frame for `fk`/`jacobian`/`ik`.
            fixed_positions: positions of the other joints, rad/m.
        """
        model = pin.buildModelFromUrdf(str(path))
        return cls(model, joints, tcp_frame, urdf_path=path, fixed_positions=fixed_positions)

    @classmethod
    def from_profile(cls, profile: RobotProfile, finger_opening_m: float | None = None) -> RobotModel:
        """The robot of a profile: its URDF, arm joints and TCP frame; fingers fixed.

        Args:
            profile: robot profile (must have a URDF).
            finger_opening_m: gripper opening the finger joints are set to, m, clipped to the
                gripper's width range (each of n fingers at opening / n); None = the
                profile's `fixed_joints`.

        Raises:
            ValueError: the profile has no URDF (the message names the profile).
        """
        if profile.urdf is None:
            raise ValueError(f"robot profile '{profile.name}' ({profile.source}) has no urdf: kinematics need one")
        fixed = dict(profile.fixed_joints)
        if finger_opening_m is not None and profile.gripper is not None:
            g = profile.gripper
            opening = float(np.clip(finger_opening_m, g.min_width, g.max_width))
            fixed.update({j: opening / len(g.joints) for j in g.joints})
        return cls.from_urdf(profile.urdf, profile.joints, profile.tcp_frame, fixed_positions=fixed)

    @classmethod
    def for_robot(cls, robot: str | Path | None = None, finger_opening_m: float | None = None) -> RobotModel:
        """`from_profile` of the profile `robot` (a name under config/robots or a YAML path; None = default)."""
        from vla_stack.core.robot_profile import DEFAULT_ROBOT, load_robot_profile

        return cls.from_profile(load_robot_profile(robot or DEFAULT_ROBOT), finger_opening_m)

    def copy(self) -> RobotModel:
        """An independent instance (own Pinocchio data), e.g. for another thread."""
        other = RobotModel(self.model, self.joint_names, self.tcp_frame, self.urdf_path)
        other._q_full = self._q_full.copy()
        return other

    # ---- configuration helpers ----------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of controlled joints."""
        return len(self.joint_names)

    @property
    def frame_names(self) -> tuple[str, ...]:
        """All frame (link/joint) names of the model."""
        return tuple(f.name for f in self.model.frames)

    def frame_id(self, frame: str) -> int:
        """Pinocchio id of `frame`; ValueError naming the known frames otherwise."""
        if not self.model.existFrame(frame):
            links = sorted({f.name for f in self.model.frames if f.type == pin.FrameType.BODY})
            raise ValueError(f"frame '{frame}' is not in the model (links: {links})")
        return int(self.model.getFrameId(frame))

    def set_fixed_positions(self, positions: Mapping[str, float]) -> None:
        """Set the positions of joints that are not controlled (e.g. fingers), rad/m, clipped to limits."""
        for name, value in positions.items():
            if name in self.joint_names:
                raise ValueError(f"'{name}' is a controlled joint; pass it in q instead")
            if not self.model.existJointName(name):
                raise ValueError(f"joint '{name}' is not in the model")
            jm = self.model.joints[self.model.getJointId(name)]
            if jm.nq != 1:
                raise ValueError(f"joint '{name}' is not single-DOF")
            i = jm.idx_q
            lo, hi = self.model.lowerPositionLimit[i], self.model.upperPositionLimit[i]
            self._q_full[i] = float(np.clip(value, lo, hi))

    def full_configuration(self, q: Sequence[float] | np.ndarray) -> np.ndarray:
        """The Pinocchio configuration (nq,) with the controlled joints set to `q` (n,)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.n,):
            raise ValueError(f"q must have shape ({self.n},) for joints {self.joint_names}, got {q.shape}")
        full = self._q_full.copy()
        full[self._idx_q] = q
        return full

    def clip(self, q: Sequence[float] | np.ndarray) -> np.ndarray:
        """`q` clipped into the position limits."""
        return np.clip(np.asarray(q, dtype=np.float64), self.lower, self.upper)

    def within_limits(self, q: Sequence[float] | np.ndarray, margin: float = 0.0) -> bool:
        """True if every joint is within [lower + margin, upper - margin]."""
        q = np.asarray(q, dtype=np.float64)
        return bool(np.all(q >= self.lower + margin) and np.all(q <= self.upper - margin))

    def random_configuration(self, rng: np.random.Generator | None = None, margin: float = 0.0) -> np.ndarray:
        """Uniform random configuration within the limits shrunk by `margin`."""
        rng = rng if rng is not None else np.random.default_rng()
        return rng.uniform(self.lower + margin, self.upper - margin)

    # ---- kinematics -----------------------------------------------------------------------
    def _forward(self, q: Sequence[float] | np.ndarray) -> None:
        pin.forwardKinematics(self.model, self.data, self.full_configuration(q))

    def fk(self, q: Sequence[float] | np.ndarray, frame: str | None = None) -> np.ndarray:
        """Pose of `frame` (default: the TCP) in the base frame, 4x4 homogeneous matrix (m)."""
        fid = self._tcp_id if frame is None else self.frame_id(frame)
        self._forward(q)
        return pin.updateFramePlacement(self.model, self.data, fid).homogeneous.copy()

    def frame_positions(self, q: Sequence[float] | np.ndarray, frames: Sequence[str]) -> np.ndarray:
        """(k, 3) positions of `frames` in the base frame, m."""
        ids = [self.frame_id(f) for f in frames]
        self._forward(q)
        out = np.empty((len(ids), 3))
        for k, fid in enumerate(ids):
            out[k] = pin.updateFramePlacement(self.model, self.data, fid).translation
        return out

    def jacobian(self, q: Sequence[float] | np.ndarray, frame: str | None = None) -> np.ndarray:
        """(6, n) Jacobian of `frame` (default TCP) in LOCAL_WORLD_ALIGNED convention.

        Rows 0-2: linear velocity of the frame origin in base-frame axes (m/s per rad/s);
        rows 3-5: angular velocity in base-frame axes. Columns: `joint_names` order.
        """
        fid = self._tcp_id if frame is None else self.frame_id(frame)
        full = pin.computeFrameJacobian(
            self.model, self.data, self.full_configuration(q), fid, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
        )
        return np.array(full[:, self._idx_v])

    @staticmethod
    def pose_error(target: np.ndarray, reached: np.ndarray) -> np.ndarray:
        """(6,) error between two 4x4 poses in base axes: [p_t - p (m), log(R_t R^T) (rad)]."""
        err = np.empty(6)
        err[:3] = target[:3, 3] - reached[:3, 3]
        err[3:] = pin.log3(target[:3, :3] @ reached[:3, :3].T)
        return err

    def ik(
        self,
        target: np.ndarray,
        q0: Sequence[float] | np.ndarray | None = None,
        position_only: bool = False,
        max_iters: int = 200,
        tol: float = 1e-4,
        rot_tol: float = 1e-3,
        frame: str | None = None,
        restarts: int = 5,
        damping: float = 1e-3,
        seed: int = 0,
    ) -> IKResult:
        """Joint positions that put `frame` (default TCP) at `target`, within the joint limits.

        Damped least squares on the base-frame pose error, each step clipped to the joint
        limits and to 0.4 rad per joint. If an attempt does not converge within `max_iters`,
        it restarts from a random configuration (deterministic: `seed`), up to `restarts` times,
        and returns the best attempt.

        Args:
            target: 4x4 desired pose in the base frame (m). Only the translation is used when
                `position_only`.
            q0: (n,) start configuration, rad/m (default: middle of the limits).
            position_only: ignore orientation.
            max_iters: iterations per attempt.
            tol: position tolerance, m.
            rot_tol: orientation tolerance, rad.
            frame: frame to place (default: the TCP frame).
            restarts: extra attempts from random configurations.
            damping: damping λ of the least squares step.
            seed: seed of the restart configurations.

        Returns:
            IKResult(q, converged, error).
        """
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (4, 4) or not np.all(np.isfinite(target)):
            raise ValueError(f"target must be a finite 4x4 homogeneous matrix, got shape {target.shape}")
        fid = self._tcp_id if frame is None else self.frame_id(frame)
        start = 0.5 * (self.lower + self.upper) if q0 is None else self.clip(q0)
        rng = np.random.default_rng(seed)
        rows = slice(0, 3) if position_only else slice(0, 6)
        lam2 = damping**2
        best: IKResult | None = None
        best_cost = np.inf
        for attempt in range(restarts + 1):
            q = start.copy() if attempt == 0 else self.random_configuration(rng, margin=0.05)
            for _ in range(max_iters):
                full = self.full_configuration(q)
                pin.forwardKinematics(self.model, self.data, full)
                reached = pin.updateFramePlacement(self.model, self.data, fid).homogeneous
                err = self.pose_error(target, reached)
                if position_only:
                    err[3:] = 0.0
                pos_err, rot_err = np.linalg.norm(err[:3]), np.linalg.norm(err[3:])
                ok = pos_err <= tol and (position_only or rot_err <= rot_tol)
                cost = pos_err + 0.1 * rot_err
                if cost < best_cost or ok:
                    best, best_cost = IKResult(q.copy(), bool(ok), err.copy()), cost
                if ok:
                    return best
                jac = pin.computeFrameJacobian(
                    self.model, self.data, full, fid, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
                )[rows][:, self._idx_v]
                e = err[rows]
                dq = jac.T @ np.linalg.solve(jac @ jac.T + lam2 * np.eye(jac.shape[0]), e)
                step = np.max(np.abs(dq))
                if step > 0.4:
                    dq *= 0.4 / step
                q = np.clip(q + dq, self.lower, self.upper)
        assert best is not None
        return best
