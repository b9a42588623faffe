"""The pick-and-place task in the MuJoCo simulation, seen the way the action expert sees it.

Used by data generation (`datagen.py`), evaluation (`evaluation.py`, `bench/chunking.py`) and
tests. `SimPickPlace` wraps a `SimRobot` and one target mug:

- `observe()` builds the expert's `Observation` from the simulated sensors (joint state,
  gripper opening, wrist wrench, fingertip pads) plus *ground-truth* targets: the mug's current
  grasp point and yaw (what a perfect grounding node would publish) and the place point on the
  tray floor. Ground truth here stands in for grounding; it is never fed to stack nodes.
- `apply(action)` executes one control step: the arm target as a one-point joint trajectory
  reached at the end of the step (joint_trajectory_controller semantics), the gripper width
  with a grasp force limit, then advances the physics by one control period.
- `done()` judges success from ground truth: the mug upright on the tray floor, released, and
  the TCP clear above it.

Frames: the robot profile's base frame (= MuJoCo world), m, rad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_stack.core.policy.observation_builder import fold_yaw
from vla_stack.core.policy.types import LATENT_DIM, Observation, tactile_features
from vla_stack.core.sim.config import SceneConfig
from vla_stack.core.sim.robot import SimRobot
from vla_stack.core.types import ActionChunk

GRASP_DEPTH_M = 0.025
"""Default depth below the rim of a top-down grasp when the ground truth gives none, m."""


def grasp_and_place(gt: dict, mug: str) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Grasp point (3,), grasp yaw (rad), place point (3,) and object centre (3,) of `mug`.

    From `SimRobot.ground_truth()`: grasp at bottom + height - grasp_depth; yaw = the handle
    yaw folded into [-pi/2, pi/2) (fingers close across the body, perpendicular to the handle);
    place = tray floor centre raised by the same grasp height. Same rule as the scripted demo.
    """
    entry = next(m for m in gt["mugs"] if m["name"] == mug)
    geom = gt["mug_geometry"]
    bottom = np.asarray(entry["position"], dtype=np.float64)
    grasp_height = geom["height"] - geom.get("grasp_depth", GRASP_DEPTH_M)
    grasp = bottom + np.array([0.0, 0.0, grasp_height])
    tray = np.asarray(gt["tray"]["position"], dtype=np.float64)
    place = tray + np.array([0.0, 0.0, grasp_height])
    centre = bottom + np.array([0.0, 0.0, geom["height"] / 2.0])
    return grasp, fold_yaw(entry["yaw"]), place, centre


@dataclass(frozen=True)
class TaskStatus:
    """Ground-truth state of the task.

    Args:
        in_tray: mug bottom over the tray floor, resting low.
        upright: mug within 20 degrees of upright.
        held: mug touched by both fingers.
        clear: TCP at least `clear_height` above the mug's rim.
        success: in_tray and upright and not held and clear.
    """

    in_tray: bool
    upright: bool
    held: bool
    clear: bool
    success: bool


class SimPickPlace:
    """One pick-and-place episode in simulation (see the module docstring).

    Args:
        seed: scene seed (mug placement, tray side, ...).
        num_mugs: look-alike mugs on the table (2..4).
        mug: which mug to move (default: the scene's "mine").
        control_period: control step, s.
        grasp_force: gripper force limit for every gripper command, N.
        initial_joint_positions: arm start configuration (default: the ready pose), rad.
        place_offset: (2,) xy offset of the place point from the tray centre, m.
        with_tactile: include wrench/tactile features in observations.
        clear_height: TCP height above the rim that counts as retreated, m.
        camera_size: (width, height) of the scene camera, px; the default (32, 24) builds fast
            when nothing looks at the images (`GroundedTargets` needs the sim node's 640x480).
    """

    def __init__(
        self,
        seed: int,
        num_mugs: int = 3,
        mug: str | None = None,
        control_period: float = 0.05,
        grasp_force: float = 60.0,
        initial_joint_positions: tuple[float, ...] | None = None,
        place_offset: tuple[float, float] = (0.0, 0.0),
        with_tactile: bool = True,
        clear_height: float = 0.03,
        camera_size: tuple[int, int] = (32, 24),
    ) -> None:
        kwargs = {} if initial_joint_positions is None else {"initial_joint_positions": tuple(initial_joint_positions)}
        self.sim = SimRobot(SceneConfig(seed=int(seed), num_mugs=int(num_mugs), camera_width=int(camera_size[0]),
                                        camera_height=int(camera_size[1]), **kwargs))
        self.mug = mug or self.sim.mine
        self.control_period = float(control_period)
        self.grasp_force = float(grasp_force)
        self.with_tactile = with_tactile
        self.clear_height = clear_height
        self._steps_per_control = max(1, int(round(self.control_period / self.sim.physics_dt)))
        gt = self.sim.ground_truth()
        self.geometry = gt["mug_geometry"]
        self.grasp_height = self.geometry["height"] - self.geometry.get("grasp_depth", GRASP_DEPTH_M)
        _, _, place, _ = grasp_and_place(gt, self.mug)
        self.place = place + np.array([place_offset[0], place_offset[1], 0.0])
        self._gripper_command: float | None = None

    # ---- targets (ground truth standing in for grounding) ----------------------------------------
    def targets(self) -> tuple[np.ndarray, float, np.ndarray]:
        """Current grasp point (3,), folded grasp yaw and object centre (3,) of the mug."""
        pose = self.sim.object_pose(self.mug)
        x, y, z, w = pose.orientation
        yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
        bottom = pose.position
        grasp = bottom + np.array([0.0, 0.0, self.grasp_height])
        centre = bottom + np.array([0.0, 0.0, self.geometry["height"] / 2.0])
        return grasp, fold_yaw(yaw), centre

    def tactile(self) -> np.ndarray:
        """Wrench + fingertip-pad features (`tactile_features`) from the simulated sensors."""
        wrench = self.sim.wrench()
        pads = [self.sim.tactile(p) for p in self.sim.tactile_pads()]
        return tactile_features(wrench.force, wrench.torque, [p.force for p in pads], [p.contact_area for p in pads])

    def observe(self, planner_latent: np.ndarray | None = None, subtask_id: int = 0) -> Observation:
        """The expert's observation now (targets from ground truth)."""
        js = self.sim.joint_state()
        grasp, yaw, centre = self.targets()
        n = len(self.sim.arm_joint_names)
        return Observation(
            arm_positions=js.positions[:n],
            gripper_width=float(np.clip(js.positions[n:].sum(), 0.0, self.sim.profile.max_opening)),
            target_position=centre, grasp_position=grasp, grasp_yaw=yaw, place_position=self.place,
            planner_latent=np.zeros(LATENT_DIM) if planner_latent is None else planner_latent,
            subtask_id=subtask_id, tactile=self.tactile() if self.with_tactile else None, stamp=self.sim.time,
        )

    # ---- acting ---------------------------------------------------------------------------------------
    def apply(self, action: np.ndarray) -> None:
        """Execute one control step: arm target (7, rad) reached at the end of the step, gripper
        width (m) with the grasp force limit; then advance the physics by one control period."""
        action = np.asarray(action, dtype=np.float64)
        n = len(self.sim.arm_joint_names)
        chunk = ActionChunk(self.sim.arm_joint_names, np.array([self.control_period]), action[None, :n])
        self.sim.command_trajectory(chunk)
        width = float(np.clip(action[n], 0.0, self.sim.profile.max_opening))
        if self._gripper_command is None or abs(width - self._gripper_command) > 5e-4:
            self.sim.command_gripper(width, self.grasp_force)
            self._gripper_command = width
        self.sim.step(self._steps_per_control)

    def hold(self) -> None:
        """Advance one control period without a new command (the controller holds its reference)."""
        self.sim.step(self._steps_per_control)

    # ---- judging ------------------------------------------------------------------------------------
    def status(self) -> TaskStatus:
        """Ground-truth task state (see `TaskStatus`)."""
        pose = self.sim.object_pose(self.mug)
        z_axis_z = 1.0 - 2.0 * (pose.orientation[0] ** 2 + pose.orientation[1] ** 2)
        upright = bool(z_axis_z > math.cos(math.radians(20.0)))
        in_tray = self.sim.in_tray(self.mug)
        held = self.sim.object_in_gripper() == self.mug
        rim = pose.position[2] + self.geometry["height"]
        clear = bool(self.sim.tcp_pose().position[2] > rim + self.clear_height)
        return TaskStatus(in_tray, upright, held, clear, bool(in_tray and upright and not held and clear))
