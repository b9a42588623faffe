"""Targets from the grounding pipeline instead of ground truth, for in-process closed-loop runs.

`evaluation.run_episode` normally gives the expert ground-truth targets (a perfect grounding
node). `GroundedTargets` replaces them with what the stack would publish: the simulator's
scene camera is rendered every `camera_period` of sim time (640x480, the sim node's camera),
`GroundingPipeline.process` grounds the instruction in it, and the observation is assembled by
the action expert node's own `ObservationBuilder` (frame checks, staleness, the in-hand target
while holding). No ROS, no planner, no threads: detection runs synchronously in every frame the
pipeline asks for it, so this is the grounding *quality* the policy gets, not the node's timing.

It answers one question fast: does a grasp that fails in the whole-stack demo fail because of
the targets grounding publishes (occlusion, a mask sliding onto the gripper, a wrong yaw), or
because of timing and the planner? (`bench/grounded_loop.py`)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.contracts import encode_subtask
from vla_stack.core.policy.observation_builder import (
    InputRejected,
    ObservationBuilder,
    ObservationConfig,
    yaw_from_quaternion,
)
from vla_stack.core.policy.types import Observation
from vla_stack.core.robot_profile import load_robot_profile
from vla_stack.lab.policy.simulation import SimPickPlace


@dataclass
class GroundedLog:
    """What grounding published during one episode (for diagnosis)."""

    frames: int = 0
    found: int = 0
    memory: int = 0
    not_found: int = 0
    ambiguous: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    first_held: str | None = None
    # (sim time, grounded grasp point, ground-truth grasp point of the target mug, yaw, gt yaw, source)
    trace: list[tuple] = field(default_factory=list)

    def error_stats(self) -> dict:
        """Median / max xy and z error of the grounded grasp point vs ground truth (found frames, not held)."""
        errs = np.array([[np.linalg.norm(np.subtract(g[:2], t[:2])), abs(g[2] - t[2])] for _, g, t, _, _, _ in self.trace])
        if errs.size == 0:
            return {}
        return {"xy_median_m": float(np.median(errs[:, 0])), "xy_max_m": float(errs[:, 0].max()),
                "z_median_m": float(np.median(errs[:, 1])), "z_max_m": float(errs[:, 1].max())}


class GroundedTargets:
    """Grounding-pipeline targets for `run_episode` (see the module docstring).

    Args:
        pipeline: a `GroundingPipeline` with the personal object enrolled (or `personal=False`).
        instruction: the user's instruction, given to the pipeline once.
        camera_period: sim-time seconds between camera frames (the sim node renders at 15 Hz).
        inputs: the action expert node's input conventions (staleness, in-hand target).
        planner: a `TaskPlanner` (clock: `lambda: task.sim.time`) run in the loop as the planner node
            runs it: fed grounding's outputs, joint states and pad forces, its jobs run at once
            (no model latency), its subtask and latent (`planner.backend.latent`) given to the
            expert. None: no planner (zero latent, subtask "none"), as `bench/chunking.py`.
    """

    def __init__(self, pipeline, instruction: str = "bring my cup to the tray", camera_period: float = 1.0 / 15.0,
                 inputs: ObservationConfig | None = None, planner=None) -> None:
        from vla_stack.core.kinematics.robot_model import RobotModel

        self.pipeline = pipeline
        self.instruction = instruction
        self.camera_period = float(camera_period)
        self.profile = load_robot_profile()
        model = RobotModel.from_profile(self.profile)
        cfg = inputs or ObservationConfig()
        self.builder = ObservationBuilder(cfg, hand_position=model.fk, profile=self.profile)
        self.log = GroundedLog()
        self.planner = planner
        self._latent_key: tuple | None = None
        self._latent: np.ndarray | None = None
        self._next_frame = 0.0
        self._started = False

    def step(self, task: SimPickPlace) -> None:
        """Render and ground a camera frame when one is due, step the planner (call once per control step)."""
        sim = task.sim
        if not self._started:
            self.pipeline.set_instruction(self.instruction)
            if self.planner is not None:
                self.planner.on_instruction(self.instruction)
            self._started = True
        held = sim.object_in_gripper()
        if held and self.log.first_held is None:
            self.log.first_held = held
        # joint states and pads reach the nodes far more often than they act: every step here
        state = sim.joint_state()
        pads = {pad: float(sim.tactile(pad).force[2]) for pad in self.builder.config.tactile_pads}
        for pad, force in pads.items():
            self.builder.update_pad(pad, normal_force=force, now=sim.time)
        self.builder.update_joint_state(state)
        if sim.time + 1e-9 >= self._next_frame:
            self._next_frame = sim.time + self.camera_period
            self._ground(task, held)
        if self.planner is not None:
            self._plan(task, state, pads)

    def _plan(self, task: SimPickPlace, state, pads: dict[str, float]) -> None:
        sim, planner = task.sim, self.planner
        planner.on_joint_state(state)
        for pad, force in pads.items():
            planner.on_pad_force(pad, force)
        planner.on_wrench(sim.wrench())
        planner.step()
        job = planner.take_job()
        if job is not None:
            planner.run_job(job)
        subtask = planner.current_subtask()
        if subtask is None:
            return
        self.builder.update_subtask(encode_subtask(subtask.to_message()), sim.time)
        text, sub = planner.latent_key()
        if (text, sub.description) != self._latent_key:
            self._latent_key = (text, sub.description)
            self._latent = np.asarray(planner.backend.latent(text, sub), dtype=np.float32)
        self.builder.update_latent(self._latent, sim.time)  # republished every second by the node: always fresh

    def _ground(self, task: SimPickPlace, held: str | None) -> None:
        from vla_stack.core.grounding.pipeline import GroundingFrame

        sim = task.sim
        rgb, depth = sim.render()
        result = self.pipeline.process(GroundingFrame(rgb, depth, sim.intrinsics(), sim.camera_pose(), stamp=sim.time))
        self.log.frames += 1
        obj = result.primary()
        if self.planner is not None and result.status in ("found", "not_found", "ambiguous", "no_reference"):
            if result.status == "found":
                self.planner.on_grounding_instruction(result.rewritten_instruction)
            self.planner.on_grounding_status(result.status, result.reason)
        if obj is None:
            return
        if obj.status != "found":
            setattr(self.log, obj.status, getattr(self.log, obj.status) + 1)
            return
        self.log.found += 1
        if obj.source == "memory":
            self.log.memory += 1
        target = obj.target
        if target is None or target.grasp_base is None:
            return
        pose = dataclasses.replace(target.grasp_base, frame_id=self.profile.base_frame, stamp=sim.time)
        try:
            self.builder.update_target(pose)
        except InputRejected as exc:
            self.log.rejected[exc.code] = self.log.rejected.get(exc.code, 0) + 1
            return
        if self.planner is not None:
            self.planner.on_grounding_target(pose)
        if not held:
            gt_grasp, gt_yaw, _ = task.targets()
            self.log.trace.append((round(sim.time, 3), pose.position.copy(), gt_grasp,
                                   yaw_from_quaternion(pose.orientation), gt_yaw, obj.source))

    def override(self, obs: Observation, task: SimPickPlace) -> Observation | None:
        """`obs` (ground-truth targets) with the grounded target instead; None when the node would
        request no chunk (no target yet, or a stale one)."""
        sim = task.sim
        if self.builder.place is None:
            self.builder.place = np.asarray(obs.place_position, dtype=np.float64).copy()
            self.builder.place_source = "parameter"
        try:
            built = self.builder.build(sim.time)
        except InputRejected as exc:
            self.log.rejected[exc.code] = self.log.rejected.get(exc.code, 0) + 1
            return None
        return dataclasses.replace(obs, target_position=built.target_position, grasp_position=built.grasp_position,
                                   grasp_yaw=built.grasp_yaw, planner_latent=built.planner_latent,
                                   subtask_id=built.subtask_id)


class GroundTruthTargets:
    """The ground-truth targets `run_episode` uses by default, with the same log as `GroundedTargets`
    (first mug held), so both can be compared in one table."""

    def __init__(self) -> None:
        self.log = GroundedLog()

    def step(self, task: SimPickPlace) -> None:
        """Record the first mug the gripper holds."""
        held = task.sim.object_in_gripper()
        if held and self.log.first_held is None:
            self.log.first_held = held

    def override(self, obs: Observation, task: SimPickPlace) -> Observation:
        """`obs` unchanged."""
        return obs
