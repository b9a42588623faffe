"""A scripted pick-and-place expert: IK waypoints turned into smooth joint trajectories.

Used by the simulated "bring my cup" demo before the learned expert exists, and as the
demonstrator that generates training data for it. It is given a grasp point (from grounding,
or ground truth in evaluation) and optionally a place point, and produces a sequence of
`Segment`s: approach above the object, descend, close the gripper, lift, carry above the place
point, lower, open, retreat. Each segment is an `ActionChunk` of the arm joints, Cartesian
straight-line motion with minimum-jerk timing, so it can go to a joint_trajectory_controller (or
the safety controller) as one JointTrajectory.

Frames: all positions in the robot base frame (m). The grasp is top-down (TCP z pointing
down) with the fingers closing across the object's `grasp_yaw` axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.core.types import ActionChunk


@dataclass(frozen=True)
class PickPlaceConfig:
    """Geometry and timing of the scripted pick-and-place. Lengths in m, speeds in m/s."""

    approach_height: float = field(default=0.12, metadata={"help": "height above the grasp point to approach from, m"})
    lift_height: float = field(default=0.15, metadata={"help": "how high to lift the object above the grasp point, m"})
    place_clearance: float = field(default=0.02, metadata={"help": "release height above the place point, m"})
    cartesian_speed: float = field(default=0.20, metadata={"help": "mean TCP speed along a segment, m/s"})
    joint_speed_fraction: float = field(default=0.4, metadata={"help": "fraction of the URDF joint velocity limit a segment may use"})
    min_segment_time: float = field(default=0.6, metadata={"help": "shortest segment duration, s"})
    points_per_segment: int = field(default=12, metadata={"help": "trajectory points per segment"})
    gripper_open: float = field(default=0.08, metadata={"help": "opening width when open, m"})
    gripper_closed: float = field(default=0.0, metadata={"help": "commanded width when grasping, m (the force limit stops the fingers on the object)"})
    grasp_force: float = field(default=60.0, metadata={"help": "gripper force limit while grasping, N"})
    gripper_time: float = field(default=0.6, metadata={"help": "time allowed for the gripper to open/close, s"})

    def __post_init__(self) -> None:
        for name in ("approach_height", "lift_height", "cartesian_speed", "joint_speed_fraction", "min_segment_time"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.points_per_segment < 2:
            raise ValueError(f"points_per_segment must be >= 2, got {self.points_per_segment}")
        if not 0 <= self.gripper_closed < self.gripper_open:
            raise ValueError("need 0 <= gripper_closed < gripper_open")


@dataclass(frozen=True)
class Segment:
    """One step of the script.

    Args:
        name: phase name ("approach", "descend", "grasp", ...).
        chunk: arm motion (times relative to the segment start, s), or None for a gripper-only step.
        gripper_width: opening width to command at the segment start (m), or None to leave it.
        gripper_force: force limit for that command, N (None = default).
        duration: time the segment takes, s (motion end, or gripper_time for gripper-only steps).
    """

    name: str
    chunk: ActionChunk | None
    gripper_width: float | None
    gripper_force: float | None
    duration: float


def top_down_pose(position: np.ndarray, yaw: float) -> np.ndarray:
    """4x4 TCP pose at `position` with z pointing down and the finger axis (y) at `yaw` + 90°."""
    c, s = np.cos(yaw), np.sin(yaw)
    # x axis along yaw, z down, y = z × x
    x = np.array([c, s, 0.0])
    z = np.array([0.0, 0.0, -1.0])
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([x, y, z])
    pose[:3, 3] = position
    return pose


def minimum_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk time scaling 10s³ - 15s⁴ + 6s⁵ of s in [0, 1]."""
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def minimum_jerk_rate(s: np.ndarray) -> np.ndarray:
    """d/ds of `minimum_jerk`."""
    return 30 * s**2 - 60 * s**3 + 30 * s**4


class PlanningError(RuntimeError):
    """The script cannot be planned (target unreachable); the message says which waypoint."""


class ScriptedPickPlace:
    """Plans pick(-and-place) segments with IK on `model`.

    Args:
        model: kinematics of the arm (TCP frame = grasp point between the fingertips).
        config: geometry and timing.
    """

    def __init__(self, model: RobotModel, config: PickPlaceConfig | None = None) -> None:
        self.model = model
        self.config = config or PickPlaceConfig()

    def solve_ik(self, pose: np.ndarray, q_seed: np.ndarray, what: str) -> np.ndarray:
        result = self.model.ik(pose, q0=q_seed, tol=1e-3, rot_tol=1e-2, restarts=3)
        if not result.converged:
            raise PlanningError(
                f"no IK solution for the {what} pose at {np.round(pose[:3, 3], 3).tolist()} m "
                f"(residual {result.position_error * 1000:.1f} mm, {np.degrees(result.rotation_error):.1f} deg)"
            )
        return result.q

    def line(self, name: str, q_start: np.ndarray, start: np.ndarray, goal: np.ndarray) -> Segment:
        """Straight Cartesian line from pose `start` to pose `goal` (4x4), minimum-jerk timed.

        Position moves along the line; orientation is taken from `goal` throughout (the script
        keeps the TCP pointing down, so only yaw changes, on the first segment).
        """
        cfg = self.config
        n = cfg.points_per_segment
        s = np.linspace(0.0, 1.0, n + 1)[1:]
        path = [start[:3, 3] + minimum_jerk(si) * (goal[:3, 3] - start[:3, 3]) for si in s]
        qs, q = [], q_start
        for i, p in enumerate(path):
            pose = goal.copy()
            pose[:3, 3] = p
            q = self.solve_ik(pose, q, f"{name} (point {i + 1}/{n})")
            qs.append(q)
        positions = np.array(qs)
        distance = float(np.linalg.norm(goal[:3, 3] - start[:3, 3]))
        joint_travel = np.abs(np.diff(np.vstack([q_start, positions]), axis=0)).sum(axis=0)
        vmax = cfg.joint_speed_fraction * self.model.velocity_limits
        # minimum-jerk peaks at 1.875x the mean speed
        duration = max(cfg.min_segment_time, 1.875 * distance / cfg.cartesian_speed,
                       float(np.max(1.875 * joint_travel / vmax)))
        times = s * duration
        # velocities: finite differences of the IK path scaled by the timing law, zero at the end
        dq = np.gradient(np.vstack([q_start, positions]), np.concatenate([[0.0], times]), axis=0)[1:]
        dq[-1] = 0.0
        chunk = ActionChunk(self.model.joint_names, times, positions, velocities=dq)
        return Segment(name, chunk, None, None, duration)

    def plan(
        self,
        q_now: np.ndarray,
        grasp_point: np.ndarray,
        grasp_yaw: float = 0.0,
        place_point: np.ndarray | None = None,
    ) -> list[Segment]:
        """Segments for picking the object at `grasp_point` and (optionally) placing it.

        Args:
            q_now: (n,) current arm joint positions, rad.
            grasp_point: (3,) where the TCP closes on the object, base frame, m.
            grasp_yaw: rotation about base z of the TCP x axis, rad (fingers close along TCP y).
            place_point: (3,) where the object's grasp point should end up, or None to only lift.

        Raises PlanningError naming the unreachable waypoint.
        """
        cfg = self.config
        grasp_point = np.asarray(grasp_point, dtype=np.float64)
        if grasp_point.shape != (3,) or not np.all(np.isfinite(grasp_point)):
            raise PlanningError(f"grasp point must be 3 finite numbers, got {grasp_point}")
        q_now = np.asarray(q_now, dtype=np.float64)
        up = np.array([0.0, 0.0, 1.0])
        above = top_down_pose(grasp_point + cfg.approach_height * up, grasp_yaw)
        at = top_down_pose(grasp_point, grasp_yaw)
        lifted = top_down_pose(grasp_point + cfg.lift_height * up, grasp_yaw)

        segments = []
        # approach: joint-space move to the pre-grasp pose (the start can be anywhere)
        q_above = self.solve_ik(above, q_now, "approach")
        segments.append(self.joint_move("approach", q_now, q_above, gripper_width=cfg.gripper_open))
        seg = self.line("descend", q_above, above, at)
        segments.append(seg)
        q = seg.chunk.positions[-1]
        segments.append(Segment("grasp", None, cfg.gripper_closed, cfg.grasp_force, cfg.gripper_time))
        seg = self.line("lift", q, at, lifted)
        segments.append(seg)
        q = seg.chunk.positions[-1]
        if place_point is None:
            return segments
        place_point = np.asarray(place_point, dtype=np.float64)
        over_place = top_down_pose(place_point + cfg.lift_height * up, grasp_yaw)
        release = top_down_pose(place_point + cfg.place_clearance * up, grasp_yaw)
        seg = self.line("carry", q, lifted, over_place)
        segments.append(seg)
        q = seg.chunk.positions[-1]
        seg = self.line("lower", q, over_place, release)
        segments.append(seg)
        q = seg.chunk.positions[-1]
        segments.append(Segment("release", None, cfg.gripper_open, None, cfg.gripper_time))
        seg = self.line("retreat", q, release, over_place)
        segments.append(seg)
        return segments

    def joint_move(self, name: str, q0: np.ndarray, q1: np.ndarray, gripper_width: float | None = None) -> Segment:
        """Minimum-jerk joint-space move (used where the Cartesian path does not matter)."""
        cfg = self.config
        n = cfg.points_per_segment
        vmax = cfg.joint_speed_fraction * self.model.velocity_limits
        duration = max(cfg.min_segment_time, float(np.max(1.875 * np.abs(q1 - q0) / vmax)))
        s = np.linspace(0.0, 1.0, n + 1)[1:]
        positions = q0 + minimum_jerk(s)[:, None] * (q1 - q0)
        velocities = (minimum_jerk_rate(s) / duration)[:, None] * (q1 - q0)
        chunk = ActionChunk(self.model.joint_names, s * duration, positions, velocities=velocities)
        return Segment(name, chunk, gripper_width, None, duration)


def targets_from_ground_truth(gt: dict, mug: str) -> tuple[np.ndarray, float, np.ndarray]:
    """Grasp point (3,), grasp yaw (rad) and place point (3,) for `mug` from the simulator's ground truth.

    For evaluation and demonstration only (the stack itself gets its target from grounding):
    the grasp is `grasp_depth` below the rim, the fingers close across the body perpendicular
    to the handle (yaw folded into [-pi/2, pi/2): the gripper is symmetric), and the place point
    holds the mug at the same height above the tray floor.
    """
    entry = next(m for m in gt["mugs"] if m["name"] == mug)
    geom = gt["mug_geometry"]
    bottom = np.asarray(entry["position"], dtype=np.float64)
    grasp_height = geom["height"] - geom.get("grasp_depth", 0.03)
    grasp = bottom + np.array([0.0, 0.0, grasp_height])
    yaw = (float(entry["yaw"]) + math.pi / 2) % math.pi - math.pi / 2
    tray = np.asarray(gt["tray"]["position"], dtype=np.float64)
    return grasp, yaw, tray + np.array([0.0, 0.0, grasp_height])
