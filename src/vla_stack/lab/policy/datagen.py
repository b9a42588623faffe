"""Demonstrations for the action expert: the scripted pick-and-place on randomised sim scenes.

Per episode (seeded, reproducible):

1. Randomise the scene (`SimPickPlace`: 2-4 look-alike mugs, tray side, mug poses), which mug
   to move, the arm's start configuration (ready pose ± `start_noise`) and the place point on
   the tray (± `place_jitter`).
2. Plan with the scripted expert (`ScriptedPickPlace`: approach, descend, grasp, lift, carry,
   lower, release, retreat), then hold still for `final_hold` s.
3. Execute it step by step exactly as a policy is executed (`SimPickPlace.apply`), recording at
   each control step the observation and the *label* chunk: the plan's targets for the next H
   steps.
4. Noise injection (DART-style): the executed arm targets get temporally correlated noise
   (Ornstein-Uhlenbeck, std `noise_std` rad, weaker near contact); labels stay clean, so the
   data shows how to get back on track from states the plan never visits.
5. Recovery segments: with probability `perturb_probability` the arm is pushed away (a
   `perturb_magnitude` rad joint offset over `perturb_duration` s, not imitated: train_mask
   False) during approach or carry, and the plan is recomputed from where it ended up, so the
   demonstration continues with a recovery.
6. Keep the episode only if the mug ends upright on the tray (the scripted expert is not
   perfect under noise; failures are counted in the index).

Phase labels give the demonstrator's subtask ("pick", "place", "retreat", "hold"), from which
training synthesises planner inputs with random staleness.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicHermiteSpline

from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.core.policy.types import ACTION_DIM, SUBTASKS
from vla_stack.core.robot_profile import load_robot_profile
from vla_stack.lab.policy.dataset import DatasetWriter, Episode
from vla_stack.lab.policy.scripted_expert import (
    PickPlaceConfig,
    PlanningError,
    ScriptedPickPlace,
    Segment,
    top_down_pose,
)
from vla_stack.lab.policy.simulation import SimPickPlace

PHASE_SUBTASK = {
    "approach": "pick", "descend": "pick", "grasp": "pick",
    "lift": "place", "carry": "place", "lower": "place", "release": "place",
    "retreat": "retreat", "hold": "hold",
}
"""Scripted segment name -> subtask of the planner vocabulary."""

_PRECISE_PHASES = {"descend", "grasp", "lift", "lower", "release"}


@dataclass(frozen=True)
class DatagenConfig:
    """How demonstrations are generated (see the module docstring)."""

    episodes: int = field(default=600, metadata={"help": "successful episodes to record"})
    seed: int = field(default=0, metadata={"help": "seed of the first episode; episode i uses seed + i"})
    horizon: int = field(default=16, metadata={"help": "label chunk length H"})
    control_period: float = field(default=0.05, metadata={"help": "control step, s"})
    min_mugs: int = field(default=2, metadata={"help": "fewest mugs in a scene"})
    max_mugs: int = field(default=4, metadata={"help": "most mugs in a scene"})
    start_noise: float = field(default=0.15, metadata={"help": "uniform noise on the start configuration, rad"})
    place_jitter: float = field(default=0.03, metadata={"help": "uniform xy jitter of the place point, m"})
    noise_std: float = field(default=0.015, metadata={"help": "largest std of the injected arm noise, rad"})
    noise_time_constant: float = field(default=0.4, metadata={"help": "correlation time of the injected noise, s"})
    perturb_probability: float = field(default=0.5, metadata={"help": "probability of a push + recovery per episode"})
    perturb_magnitude: float = field(default=0.12, metadata={"help": "std of the push, rad per joint"})
    perturb_duration: float = field(default=0.5, metadata={"help": "duration of a push, s"})
    final_hold: float = field(default=1.5, metadata={"help": "time to hold still after the retreat, s"})
    max_duration: float = field(default=40.0, metadata={"help": "episode time limit, s"})
    max_attempts_factor: float = field(default=2.0, metadata={"help": "stop after episodes x this many attempts"})

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.horizon < 1:
            raise ValueError("episodes and horizon must be >= 1")
        if not 2 <= self.min_mugs <= self.max_mugs <= 4:
            raise ValueError(f"need 2 <= min_mugs <= max_mugs <= 4, got {self.min_mugs}, {self.max_mugs}")
        if not 0.0 <= self.perturb_probability <= 1.0:
            raise ValueError("perturb_probability must be in [0, 1]")
        for name in ("control_period", "noise_time_constant", "perturb_duration", "max_duration"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


class Reference:
    """The demonstrator's plan as a function of time: arm targets, gripper width, phase.

    Built from scripted `Segment`s starting at `t0`; arm motion is interpolated with the
    segments' own velocities (cubic Hermite, as the trajectory controller does).
    """

    def __init__(self, segments: list[Segment], q_start: np.ndarray, gripper_start: float, t0: float,
                 final_hold: float) -> None:
        self.t0 = t0
        self._pieces: list[tuple[float, float, CubicHermiteSpline | None, np.ndarray]] = []
        self._gripper: list[tuple[float, float]] = [(t0 - 1e9, gripper_start)]
        self._phases: list[tuple[float, str]] = []
        t, q = t0, np.asarray(q_start, dtype=np.float64)
        for seg in segments:
            self._phases.append((t, seg.name))
            if seg.gripper_width is not None:
                self._gripper.append((t, float(seg.gripper_width)))
            if seg.chunk is not None:
                times = np.concatenate([[0.0], seg.chunk.times])
                pos = np.vstack([q, seg.chunk.positions])
                vel = np.vstack([np.zeros_like(q), seg.chunk.velocities if seg.chunk.velocities is not None
                                 else np.zeros_like(seg.chunk.positions)])
                self._pieces.append((t, t + times[-1], CubicHermiteSpline(times, pos, vel, axis=0), q))
                q = seg.chunk.positions[-1].copy()
                t += times[-1]
            else:
                self._pieces.append((t, t + seg.duration, None, q.copy()))
                t += seg.duration
        self._phases.append((t, "hold"))
        self.q_end = q
        self.t_end = t + final_hold

    def arm(self, t: float) -> np.ndarray:
        """Arm targets (7,) at time t, rad."""
        for start, end, spline, q in self._pieces:
            if t < end:
                if t <= start or spline is None:
                    return q.copy()
                return spline(t - start)
        return self.q_end.copy()

    def gripper(self, t: float) -> float:
        """Commanded gripper width at time t, m."""
        width = self._gripper[0][1]
        for start, w in self._gripper:
            if t >= start - 1e-9:
                width = w
        return width

    def phase(self, t: float) -> str:
        """Segment name active at time t ("hold" after the script)."""
        name = self._phases[0][1]
        for start, n in self._phases:
            if t >= start - 1e-9:
                name = n
        return name

    def actions(self, t: float, horizon: int, dt: float) -> np.ndarray:
        """(horizon, 8) label chunk: targets for t + (i+1)·dt."""
        out = np.empty((horizon, ACTION_DIM))
        for i in range(horizon):
            ti = t + (i + 1) * dt
            out[i, :7] = self.arm(ti)
            out[i, 7] = self.gripper(ti)
        return out


def plan_place_from(planner: ScriptedPickPlace, q: np.ndarray, place: np.ndarray, yaw: float) -> list[Segment]:
    """Segments that finish a pick-and-place from configuration `q` with the object in hand:
    joint move above the place point, lower, release, retreat (all from the scripted expert).

    Raises PlanningError if a waypoint is unreachable.
    """
    cfg = planner.config
    up = np.array([0.0, 0.0, 1.0])
    over = top_down_pose(place + cfg.lift_height * up, yaw)
    release = top_down_pose(place + cfg.place_clearance * up, yaw)
    q_over = planner.solve_ik(over, q, "carry")
    segments = [planner.joint_move("carry", q, q_over)]
    seg = planner.line("lower", q_over, over, release)
    segments.append(seg)
    segments.append(Segment("release", None, cfg.gripper_open, None, cfg.gripper_time))
    segments.append(planner.line("retreat", seg.chunk.positions[-1], release, over))
    return segments


def generate_episode(seed: int, config: DatagenConfig, planner: ScriptedPickPlace | None = None) -> Episode:
    """Record one demonstration (see the module docstring). `info["success"]` says whether it
    succeeded; unsuccessful episodes are returned too (the caller decides)."""
    rng = np.random.default_rng(seed)
    planner = planner or ScriptedPickPlace(RobotModel.for_robot(), PickPlaceConfig())
    model = planner.model
    ready = np.asarray(load_robot_profile().require_ready_pose())
    q0 = model.clip(ready + rng.uniform(-config.start_noise, config.start_noise, ready.size))
    mugs = int(rng.integers(config.min_mugs, config.max_mugs + 1))
    task = SimPickPlace(seed, num_mugs=mugs, control_period=config.control_period,
                        initial_joint_positions=tuple(q0),
                        place_offset=tuple(rng.uniform(-config.place_jitter, config.place_jitter, 2)))
    task.mug = task.sim.mug_names()[int(rng.integers(mugs))]
    dt, horizon = config.control_period, config.horizon
    info = {"seed": int(seed), "mugs": mugs, "mug": task.mug, "perturbations": 0, "success": False, "reason": ""}

    def full_plan(q: np.ndarray, t: float, gripper: float) -> Reference:
        grasp, yaw, _ = task.targets()
        return Reference(planner.plan(q, grasp, yaw, task.place), q, gripper, t, config.final_hold)

    records: dict[str, list] = {k: [] for k in ("stamp", "arm_positions", "gripper_width", "target_position",
                                                 "grasp_position", "grasp_yaw", "place_position", "tactile",
                                                 "subtask_id", "actions", "executed", "train_mask")}
    try:
        ref = full_plan(task.sim.joint_state().positions[:7], 0.0, 0.08)
    except PlanningError as exc:
        info["reason"] = f"planning failed: {exc}"
        return Episode({}, info)
    noise_std = rng.uniform(0.0, config.noise_std)
    noise = np.zeros(7)
    alpha = dt / config.noise_time_constant
    perturb_at = None
    if rng.uniform() < config.perturb_probability:
        # during the approach (first ~60 % of it) or the carry (middle part)
        perturb_at = ("approach", rng.uniform(0.2, 0.6)) if rng.uniform() < 0.5 else ("carry", rng.uniform(0.2, 0.7))
    phase_start: dict[str, float] = {}
    push: tuple[int, np.ndarray, np.ndarray, int] | None = None  # (start step, from, to, steps)
    yaw_in_hand = 0.0
    k = 0
    while True:
        t = k * dt
        if t > config.max_duration:
            info["reason"] = "time limit"
            break
        if push is None and t >= ref.t_end:
            break
        obs = task.observe()
        phase = ref.phase(t)
        phase_start.setdefault(phase, t)
        labels = ref.actions(t, horizon, dt)
        if phase == "grasp":
            yaw_in_hand = obs.grasp_yaw
        train = True
        if push is not None:
            start_k, q_from, q_to, n = push
            s = min(1.0, (k - start_k + 1) / n)
            executed = labels[0].copy()
            executed[:7] = q_from + (10 * s**3 - 15 * s**4 + 6 * s**5) * (q_to - q_from)
            executed[7] = ref.gripper(t)
            train = False
            if k - start_k + 1 >= n:
                # push over: re-plan from where the arm is
                q_now = obs.arm_positions
                try:
                    if task.sim.object_in_gripper() == task.mug:
                        ref = Reference(plan_place_from(planner, q_now, task.place, yaw_in_hand), q_now,
                                        executed[7], t + dt, config.final_hold)
                    else:
                        ref = full_plan(q_now, t + dt, 0.08)
                except PlanningError as exc:
                    info["reason"] = f"re-planning after the push failed: {exc}"
                    break
                push = None
        else:
            if perturb_at is not None and phase == perturb_at[0]:
                seg_len = _segment_length(ref, phase, phase_start[phase])
                if t - phase_start[phase] >= perturb_at[1] * seg_len:
                    q_from = ref.arm(t)
                    offset = np.clip(rng.normal(0.0, config.perturb_magnitude, 7), -0.25, 0.25)
                    q_to = model.clip(q_from + offset)
                    push = (k, q_from, q_to, max(2, int(round(config.perturb_duration / dt))))
                    perturb_at = None
                    info["perturbations"] += 1
                    train = False
                    executed = labels[0].copy()
            if push is None:
                scale = 0.25 if phase in _PRECISE_PHASES else 1.0
                noise += alpha * (-noise) + np.sqrt(2 * alpha) * noise_std * rng.standard_normal(7)
                executed = labels[0].copy()
                executed[:7] += scale * noise
        for key, value in (("stamp", obs.stamp), ("arm_positions", obs.arm_positions),
                           ("gripper_width", obs.gripper_width), ("target_position", obs.target_position),
                           ("grasp_position", obs.grasp_position), ("grasp_yaw", obs.grasp_yaw),
                           ("place_position", obs.place_position), ("tactile", obs.tactile),
                           ("subtask_id", SUBTASKS.index(PHASE_SUBTASK.get(phase, "none"))),
                           ("actions", labels), ("executed", executed), ("train_mask", train)):
            records[key].append(value)
        task.apply(executed)
        k += 1
    status = task.status()
    info["success"] = bool(status.success)
    if not status.success and not info["reason"]:
        info["reason"] = (f"mug not in the tray: in_tray={status.in_tray}, upright={status.upright}, "
                          f"held={status.held}, clear={status.clear}")
    info["duration_s"] = round(k * dt, 3)
    dtypes = {"subtask_id": np.int8, "train_mask": bool}
    arrays = {key: np.asarray(v, dtype=dtypes.get(key, np.float32)) for key, v in records.items()}
    return Episode(arrays, info)


def _segment_length(ref: Reference, phase: str, start: float) -> float:
    end = start
    for s, e, _, _ in ref._pieces:
        if s >= start - 1e-9 and ref.phase(s + 1e-6) == phase:
            end = max(end, e)
    return max(end - start, 1e-3)


def _worker(args: tuple[int, dict]) -> Episode:
    seed, cfg = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return generate_episode(seed, DatagenConfig(**cfg))


def generate_dataset(root: str | Path, config: DatagenConfig, workers: int = 1, progress: bool = True,
                     overwrite: bool = False) -> dict:
    """Generate `config.episodes` successful demonstrations into dataset directory `root`.

    Args:
        root: output directory (see `dataset.py` for the format).
        config: generator settings.
        workers: processes running episodes in parallel.
        progress: show a tqdm progress bar.
        overwrite: replace an existing dataset in `root`.

    Returns:
        Summary: episodes written, attempts, failures by reason, total steps.
    """
    from tqdm import tqdm

    writer = DatasetWriter(root, config.control_period, config.horizon, generator=asdict(config), overwrite=overwrite)
    max_attempts = int(np.ceil(config.episodes * config.max_attempts_factor))
    seeds = iter(range(config.seed, config.seed + max_attempts))
    attempts, failures, steps = 0, {}, 0
    bar = tqdm(total=config.episodes, desc="demonstrations", unit="ep", disable=not progress, dynamic_ncols=True)

    def handle(ep: Episode) -> None:
        nonlocal attempts, steps
        attempts += 1
        if ep.info.get("success") and len(writer.index["episodes"]) < config.episodes:
            writer.add(ep)
            steps += ep.steps
            bar.update(1)
        elif not ep.info.get("success"):
            reason = str(ep.info.get("reason", "?")).split(":")[0]
            failures[reason] = failures.get(reason, 0) + 1
        bar.set_postfix(attempts=attempts, failed=sum(failures.values()))

    try:
        if workers <= 1:
            for seed in seeds:
                if len(writer.index["episodes"]) >= config.episodes:
                    break
                handle(generate_episode(seed, config))
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers) as pool:
                cfg = asdict(config)
                pending = []
                for seed in seeds:
                    pending.append(pool.apply_async(_worker, ((seed, cfg),)))
                    if len(pending) >= 2 * workers:
                        handle(pending.pop(0).get())
                    if len(writer.index["episodes"]) >= config.episodes:
                        break
                for p in pending:
                    if len(writer.index["episodes"]) >= config.episodes:
                        break
                    handle(p.get())
    finally:
        bar.close()
        writer.index["generator"]["attempts"] = attempts
        writer.index["generator"]["failures"] = failures
        writer.close()
    return {"episodes": len(writer.index["episodes"]), "attempts": attempts, "failures": failures, "steps": steps,
            "root": str(root)}
