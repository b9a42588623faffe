"""The checkpoint shipped in the package: small, documented, and it drives the simulated arm.

The full closed-loop evaluation (50 scenes x strategies x delays) is bench/chunking.py; here
one short closed-loop run checks that the shipped expert moves the TCP to the mug, and that
RTC guidance keeps the first d actions on the committed ones in joint space (rad).
"""

import json

import numpy as np
import pytest

from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.core.policy.backends.builtin import BuiltinExpertConfig, BuiltinExpertPolicy
from vla_stack.core.policy.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from vla_stack.core.policy.chunk_scheduler import ChunkScheduler, SchedulerConfig
from vla_stack.core.policy.rtc import prefix_weights
from vla_stack.core.policy.types import Guidance, chunk_to_actions
from vla_stack.lab.policy.simulation import SimPickPlace


@pytest.fixture(scope="module")
def policy():
    return BuiltinExpertPolicy()


def test_shipped_checkpoint_is_small_and_documented():
    files = {p.name: p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir()}
    assert {"model.safetensors", "config.json", "metrics.json"} <= set(files)
    assert sum(files.values()) <= 20 * 2**20
    metrics = json.loads((DEFAULT_CHECKPOINT / "metrics.json").read_text())
    assert metrics["command"] and "seed" in metrics and metrics["final_loss"] < metrics["first_loss"]
    ckpt = load_checkpoint()
    assert ckpt.config.horizon == 16 and ckpt.config.flow_steps == 10


@pytest.fixture(scope="module")
def policy_full_vjp():
    """The paper's guidance: a vector-Jacobian product through the network in every flow step."""
    return BuiltinExpertPolicy(BuiltinExpertConfig(guidance_vjp_steps=-1))


def test_guidance_vjp_steps_setting(policy, policy_full_vjp):
    """The default guided sampler is the fast one (no VJP, `guidance_vjp_steps` = 0); -1 restores
    the paper's; values below -1 are refused."""
    assert BuiltinExpertConfig().guidance_vjp_steps == 0 and policy.runtime.vjp_steps == 0
    assert policy_full_vjp.runtime.vjp_steps == -1
    with pytest.raises(ValueError, match="guidance_vjp_steps"):
        BuiltinExpertConfig(guidance_vjp_steps=-2)


@pytest.mark.parametrize("which", ["default", "full_vjp"])
def test_rtc_guidance_keeps_the_committed_actions_in_joint_space(policy, policy_full_vjp, which):
    """As in execution: chunk A is computed, its first s = 8 actions run in simulation, then the
    next chunk is inpainted with A's remaining actions as the committed prefix (d = 4 frozen).
    Checked for the default guided sampler and the paper's full-VJP guidance."""
    policy = policy if which == "default" else policy_full_vjp
    policy.reset()
    task = SimPickPlace(20001)
    for _ in range(10):
        task.apply(np.append(task.observe().arm_positions, 0.08))  # stand still a moment
    meta = policy.metadata
    chunk = chunk_to_actions(policy.infer(task.observe()), meta)
    for i in range(8):
        task.apply(chunk[i])
    obs = task.observe()
    prefix = np.vstack([chunk[8:], np.repeat(chunk[-1:], 8, axis=0)])
    d = 4
    guidance = Guidance(prefix, prefix_weights(d, 16 - 8, 16))
    err_guided = np.mean([np.abs(chunk_to_actions(policy.infer(obs, guidance), meta)[:d, :7] - prefix[:d, :7]).max()
                          for _ in range(3)])
    err_free = np.mean([np.abs(chunk_to_actions(policy.infer(obs), meta)[:d, :7] - prefix[:d, :7]).max()
                        for _ in range(3)])
    assert err_guided < 0.012, err_guided  # rad, worst joint over the 4 frozen steps
    assert err_free > 2 * err_guided, (err_free, err_guided)


def test_shipped_expert_moves_the_tcp_to_the_mug(policy):
    """Closed loop in simulation (rtc, no delay) for 6 s: the TCP ends up close to the grasp point."""
    task = SimPickPlace(20002)
    model = RobotModel.for_robot()
    sched = ChunkScheduler(SchedulerConfig(strategy="rtc"), 16, 8)
    policy.reset()
    grasp, _, _ = task.targets()
    start = np.linalg.norm(model.fk(task.observe().arm_positions)[:3, 3] - grasp)
    closest = start
    for k in range(120):
        if sched.needs_inference(k):
            obs = task.observe()
            req = sched.make_request(k, obs)
            sched.deliver(chunk_to_actions(policy.infer(obs, req.guidance), policy.metadata), req, k)
        task.apply(sched.action(k))
        grasp, _, _ = task.targets()
        closest = min(closest, np.linalg.norm(model.fk(task.observe().arm_positions)[:3, 3] - grasp))
    assert start > 0.2 and closest < 0.02, (start, closest)


def test_guidance_towards_a_plan_the_robot_is_not_following_is_skipped(policy):
    """A committed prefix far from the current state (robot blocked or lagging by 0.5 rad) is not
    inpainted (that would drag the sampler out of its training distribution): the chunk is sampled
    afresh, stays finite and within the joint limits, and the skip is reported."""
    obs = SimPickPlace(20003).observe()
    meta = policy.metadata
    far = chunk_to_actions(policy.infer(obs), meta)
    far[:, :7] += 0.5
    before = policy.guidance_skipped
    actions = chunk_to_actions(policy.infer(obs, Guidance(far, prefix_weights(8, 8, 16))), meta)
    assert policy.guidance_skipped == before + 1 and "std from the current state" in policy.last_guidance_skipped
    model = policy.encoder.model
    assert np.all(np.isfinite(actions)) and np.all(actions[:, :7] >= model.lower) and np.all(actions[:, :7] <= model.upper)
    assert np.abs(actions[:, :7] - obs.arm_positions).max() < 0.5
