"""Closed-loop evaluation harness (bench/chunking.py): smoothness metrics and injected delay."""

import numpy as np
import pytest

from vla_stack.core.policy.backends.builtin import BuiltinExpertPolicy
from vla_stack.core.policy.evaluation import run_episode, smoothness, summarize


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
