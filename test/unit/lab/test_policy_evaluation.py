"""Closed-loop evaluation harness (bench/chunking.py): smoothness metrics and injected delay."""

import numpy as np
import pytest

from vla_stack.core.policy.backends.builtin import BuiltinExpertPolicy
from vla_stack.lab.policy.evaluation import run_episode, smoothness, summarize


def test_smoothness_finds_the_jump_at_a_chunk_boundary():
    dt = 0.05
    t = np.arange(40) * dt
    a = np.tile((0.1 * t)[:, None], (1, 7))  # constant velocity: no acceleration anywhere
    a[20:] += 0.05  # a step at the switch to a new chunk at step 20
    m = smoothness(a, [20], dt)
    assert m["boundary_jump_mean"] == pytest.approx(0.05 / dt**2)
    assert m["interior_jump_mean"] < m["boundary_jump_mean"] / 10
    assert m["peak_jerk"] == pytest.approx(2 * 0.05 / dt**3)  # |Δ³| of a step is 2x the step


@pytest.fixture(scope="module")
def policy():
    return BuiltinExpertPolicy()


@pytest.mark.parametrize("strategy", ["rtc", "sync"])
def test_injected_delay_in_lockstep(policy, strategy):
    res = run_episode(policy, 30001, strategy, delay=4, max_time=2.0)
    assert res.steps == 40 and not res.success  # 2 s is too short for the task
    # the first chunk arrives 4 steps after the first request: the robot holds still until then
    assert res.hold_steps >= 4
    if strategy == "sync":  # sync also pauses d steps after every chunk
        assert res.hold_steps >= 4 + 4
    assert res.chunks >= 2 and res.inferences >= res.chunks
    s = summarize([res])
    assert s["episodes"] == 1 and s["success_rate"] == 0.0


def _grounded(seed: int, with_planner: bool, memory_dir):
    """A 640x480 scene, its own mug enrolled from 5 reference renders, `GroundedTargets` on it."""
    import importlib.util
    from pathlib import Path

    from vla_stack.core.grounding.memory import PersonalObjectMemory
    from vla_stack.core.grounding.pipeline import GroundingPipeline
    from vla_stack.lab.grounding.sim_scenes import sim_reference_views
    from vla_stack.lab.policy.grounded_targets import GroundedTargets
    from vla_stack.lab.policy.simulation import SimPickPlace

    root = Path(__file__).resolve().parents[3]
    spec = importlib.util.spec_from_file_location("grounded_loop", root / "bench" / "grounded_loop.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    task = SimPickPlace(seed, num_mugs=3, camera_size=(640, 480))
    memory = PersonalObjectMemory(memory_dir)
    pipe = GroundingPipeline(bench.grounding_config(root / "config" / "grounding_node.yaml", True), memory)
    views, masks = sim_reference_views(task.sim, task.sim.mine, 5)
    memory.enroll("my_mug", views, "cup", pipe.embedder, masks=masks)
    planner = bench.planner_for(task, root / "config" / "planner_node.yaml") if with_planner else None
    return task, GroundedTargets(pipe, planner=planner)


def test_grounded_targets_give_the_expert_what_grounding_sees_of_my_mug(tmp_path):
    task, targets = _grounded(1, with_planner=False, memory_dir=tmp_path)
    assert targets.override(task.observe(), task) is None  # no frame grounded yet: no chunk (the node waits)
    targets.step(task)
    obs = targets.override(task.observe(), task)
    gt_grasp, gt_yaw, _ = task.targets()
    assert obs is not None and targets.log.found == 1
    assert np.linalg.norm(obs.grasp_position[:2] - gt_grasp[:2]) < 0.01  # measured ~2 mm
    assert abs(obs.grasp_position[2] - gt_grasp[2]) < 0.01
    assert abs(np.angle(np.exp(2j * (obs.grasp_yaw - gt_yaw)))) / 2 < 0.35  # yaw, modulo a half turn
    assert not np.allclose(obs.grasp_position, gt_grasp)  # it is grounding's estimate, not ground truth
    task.sim.close()


def test_grounded_targets_with_the_planner_condition_the_expert_on_its_subtask(tmp_path):
    from vla_stack.core.policy.types import SUBTASKS

    task, targets = _grounded(1, with_planner=True, memory_dir=tmp_path)
    for _ in range(3):
        targets.step(task)
        task.hold()
    obs = targets.override(task.observe(), task)
    assert obs is not None and SUBTASKS[obs.subtask_id] == "pick"
    assert obs.planner_latent.shape == (384,) and np.linalg.norm(obs.planner_latent) > 0.5
    assert targets.planner.current_subtask().skill == "pick"
    task.sim.close()


def test_an_actuator_gets_every_delivered_chunk_and_every_step(policy):
    class Recorder:
        def __init__(self):
            self.delivered, self.steps = [], 0

        def deliver(self, actions, stamp, task):
            assert actions.shape == (policy.metadata.horizon, policy.metadata.action_dim)
            self.delivered.append((stamp, task.sim.time))

        def act(self, action, task):
            self.steps += 1
            task.apply(action) if action is not None else task.hold()

    plain = run_episode(policy, 30002, "rtc", delay=3, max_time=2.0)
    rec = Recorder()
    hooked = run_episode(policy, 30002, "rtc", delay=3, max_time=2.0, actuator=rec)
    assert rec.steps == hooked.steps == plain.steps and hooked.hold_steps == plain.hold_steps
    assert 1 <= hooked.chunks <= len(rec.delivered) <= hooked.inferences
    # delivered 3 control steps after the observation it was computed from
    assert all(abs(now - stamp - 3 * policy.metadata.control_period) < 1e-6 for stamp, now in rec.delivered)
