"""Chunk scheduling strategies in lockstep with injected inference delays (no ROS, no model).

A fake policy returns ramps: chunk from the observation of step k holds, for step k + i, the
value base + (k + i) (every joint the same), where `base` grows by 100 on every call, so each
chunk is distinguishable and switching chunks shows up as a jump of 100.
"""

import numpy as np
import pytest

from vla_stack.core.policy.chunk_scheduler import STRATEGIES, ChunkScheduler, SchedulerConfig
from vla_stack.core.policy.types import Observation

H, D = 16, 8


def obs(step: int) -> Observation:
    return Observation(np.zeros(7), 0.08, np.zeros(3), np.zeros(3), 0.0, np.zeros(3), stamp=0.05 * step)


class RampPolicy:
    def __init__(self):
        self.calls = 0
        self.guidance = []

    def __call__(self, request):
        self.calls += 1
        self.guidance.append(request.guidance)
        base = 100.0 * self.calls
        return np.tile((base + request.step + np.arange(H))[:, None], (1, D))


def run(strategy: str, delay: int, steps: int = 60, **kw):
    """Lockstep loop: returns executed values (NaN = hold), the scheduler and the policy."""
    sched = ChunkScheduler(SchedulerConfig(strategy=strategy, **kw), H, D)
    policy = RampPolicy()
    in_flight = []
    executed = []
    for k in range(steps):
        for item in [it for it in in_flight if it[0] <= k]:
            in_flight.remove(item)
            sched.deliver(item[2], item[1], k)
        if sched.needs_inference(k):
            req = sched.make_request(k, obs(k))
            actions = policy(req)
            if delay == 0:
                sched.deliver(actions, req, k)
            else:
                in_flight.append((k + delay, req, actions))
        a = sched.action(k)
        executed.append(np.nan if a is None else a[0])
    return np.array(executed), sched, policy


def test_registry_has_the_four_strategies():
    assert set(STRATEGIES.names()) == {"rtc", "sync", "naive_async", "temporal_ensemble"}
    with pytest.raises(KeyError, match="did you mean 'rtc'"):
        SchedulerConfig(strategy="rtcc")


def test_sync_executes_whole_chunks_and_holds_while_inferring():
    ex, sched, policy = run("sync", delay=4, steps=50)
    # start-up: nothing to execute until the first chunk arrives at step 4
    assert np.all(np.isnan(ex[:4]))
    # then the first chunk from its first action (the robot stood still), all H of it
    assert ex[4] == 100 + 0 and ex[4 + H - 1] == 100 + H - 1
    # then a pause of d = 4 steps, then the next chunk from its first action
    assert np.all(np.isnan(ex[4 + H: 4 + H + 4]))
    first_of_second = ex[4 + H + 4]
    assert first_of_second == 200 + (4 + H)  # requested at step 20 (observation of step 20)
    assert sched.delay_estimate == 4


def test_sync_without_delay_never_pauses_after_start():
    ex, _, _ = run("sync", delay=0, steps=40)
    assert not np.any(np.isnan(ex))


@pytest.mark.parametrize("delay", [0, 2, 4, 8])
def test_naive_async_switches_on_arrival_and_never_pauses(delay):
    ex, sched, policy = run("naive_async", delay=delay, steps=60)
    started = int(np.argmax(~np.isnan(ex)))
    assert started == delay and not np.any(np.isnan(ex[started:]))
    s = max(8, delay)
    # after start-up, requests every s steps: chunk n requested at delay + n*s... the executed
    # value at a step equals base + step for the chunk in use (no waiting, index = step - request)
    vals = ex[started:]
    jumps = np.flatnonzero(np.abs(np.diff(vals) - 1.0) > 1e-9) + started + 1
    assert len(jumps) >= 3
    for j in jumps:  # a switch happens exactly when a chunk arrives (delay after its request)
        assert ex[j] % 100 == pytest.approx(j % 100) or delay == 0 or ex[j] > ex[j - 1]
    assert sched.execution_horizon == s


def test_naive_async_requests_every_execution_horizon():
    _, sched, policy = run("naive_async", delay=2, steps=42, execution_horizon=5)
    # first request at 0, installed at 2 (robot idle -> its actions start there); the next one
    # once 5 of its actions ran (step 7), then every 5 steps (a chunk's actions start at its request)
    assert policy.calls == 1 + len(range(7, 42, 5))


def test_rtc_guidance_freezes_the_committed_prefix():
    ex, sched, policy = run("rtc", delay=3, steps=40, execution_horizon=8)
    guided = [g for g in policy.guidance if g is not None]
    assert guided, "rtc must attach guidance once a chunk is executing"
    g = guided[0]
    # second request: at step 3 + 8 = 11 (first chunk requested at 0, installed at 3 as the robot
    # was idle, so its actions start at step 3: value 100 + 0 at step 3 ... i.e. 100 + k - 3)
    assert g.weights[:3].tolist() == [1.0, 1.0, 1.0]  # d̂ = 3 frozen steps
    assert np.all(g.weights[3:] < 1.0) and np.all(np.diff(g.weights[3:]) <= 0)
    overlap_end = 3 + H - 11  # steps the first chunk still covers from step 11
    assert np.all(g.weights[overlap_end:] == 0.0) and g.weights[overlap_end - 1] > 0
    # prefix = what the current chunk executes at steps 11, 12, ...
    assert g.prefix[0, 0] == ex[11]
    assert g.prefix[1, 0] == ex[12]


def test_rtc_and_naive_have_the_same_timing():
    ex_rtc, s_rtc, p_rtc = run("rtc", delay=4, steps=60)
    ex_naive, s_naive, p_naive = run("naive_async", delay=4, steps=60)
    # the fake policy ignores guidance, so the executed sequences are identical
    assert np.array_equal(np.isnan(ex_rtc), np.isnan(ex_naive))
    assert np.allclose(ex_rtc[~np.isnan(ex_rtc)], ex_naive[~np.isnan(ex_naive)])
    assert p_rtc.calls == p_naive.calls


def test_temporal_ensemble_averages_overlapping_chunks():
    ex, sched, policy = run("temporal_ensemble", delay=0, steps=6, ensemble_decay=0.0)
    # delay 0: a new chunk every step; at step k all chunks 1..k+1 cover k, equal weights
    # chunk n (n = 1..) requested at step n-1 holds 100 n + k at step k
    for k in range(6):
        expected = np.mean([100.0 * n + k for n in range(1, k + 2)])
        assert ex[k] == pytest.approx(expected)


def test_temporal_ensemble_weights_favour_old_chunks():
    ex, _, _ = run("temporal_ensemble", delay=0, steps=3, ensemble_decay=1.0)
    w = np.exp(-np.arange(3))
    assert ex[2] == pytest.approx(np.dot(w / w.sum(), [102.0, 202.0, 302.0]))


def test_plan_lists_what_will_execute():
    sched = ChunkScheduler(SchedulerConfig(strategy="naive_async"), H, D)
    req = sched.make_request(0, obs(0))
    sched.deliver(np.tile(np.arange(H, dtype=float)[:, None], (1, D)), req, 3)
    actions, first = sched.plan(5)
    assert first == 5 and actions.shape == (H - 2, D)  # robot idle at request: starts at arrival (3)
    assert actions[0, 0] == 2.0


def test_deliver_rejects_wrong_shape_and_cancel_clears_pending():
    sched = ChunkScheduler(SchedulerConfig(), H, D)
    req = sched.make_request(0, obs(0))
    assert not sched.needs_inference(1)  # one request at a time
    with pytest.raises(ValueError, match="chunk must be"):
        sched.deliver(np.zeros((H - 1, D)), req, 1)
    sched.cancel()
    assert sched.needs_inference(1)


def test_delay_estimate_is_the_max_of_the_window():
    sched = ChunkScheduler(SchedulerConfig(delay_window=3), H, D)
    for k, d in [(0, 2), (10, 5), (20, 1), (30, 1), (40, 1)]:
        req = sched.make_request(k, obs(k))
        sched.deliver(np.zeros((H, D)), req, k + d)
        if k == 20:
            assert sched.delay_estimate == 5
    assert sched.delay_estimate == 1  # 5 fell out of the window of 3
