"""Bad and stale inputs of the expert are rejected with a reason (ObservationBuilder), and the
real-time driver never publishes a chunk from a too-old observation (RealTimeChunker)."""

import math
import time

import numpy as np
import pytest

from vla_stack.core.policy.chunk_scheduler import SchedulerConfig
from vla_stack.core.policy.observation_builder import (
    InputRejected,
    ObservationBuilder,
    ObservationConfig,
    subtask_from_json,
    yaw_from_quaternion,
)
from vla_stack.core.policy.realtime import RealTimeChunker
from vla_stack.core.policy.types import (
    LATENT_DIM,
    SUBTASKS,
    Observation,
    PolicyError,
    PolicyMetadata,
    actions_to_chunk,
)
from vla_stack.core.robot_profile import load_robot_profile
from vla_stack.core.types import JointState, Pose, Wrench

ARM = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGERS = ("panda_finger_joint1", "panda_finger_joint2")
H = 16

GRIPPER_JOINT = load_robot_profile("panda").gripper.joint


def joint_state(stamp: float, q=None, names=ARM + FINGERS) -> JointState:
    pos = np.concatenate([np.zeros(7) if q is None else q, [0.03, 0.03]])
    return JointState(names, pos[: len(names)], stamp=stamp)


def target(stamp: float, frame: str = "panda_link0", yaw: float = 0.4) -> Pose:
    return Pose(np.array([0.5, 0.1, 0.065]), np.array([0, 0, math.sin(yaw / 2), math.cos(yaw / 2)]), stamp, frame)


@pytest.fixture
def builder():
    return ObservationBuilder(ObservationConfig(place_position=(0.45, 0.35, 0.07), max_state_age=0.2, max_target_age=2.0))


def test_builds_an_observation_from_fresh_inputs(builder):
    builder.update_joint_state(joint_state(10.0))
    builder.update_target(target(9.5))
    obs = builder.build(10.05)
    assert obs.gripper_width == pytest.approx(0.06) and obs.stamp == 10.0
    assert obs.grasp_yaw == pytest.approx(0.4)
    assert np.allclose(obs.target_position, [0.5, 0.1, 0.045])  # centre = grasp point - 2 cm
    assert obs.subtask_id == 0 and not obs.planner_latent.any() and obs.tactile is None


def test_waiting_and_stale_reasons(builder):
    with pytest.raises(InputRejected, match="waiting for joint_states"):
        builder.build(1.0)
    builder.update_joint_state(joint_state(1.0))
    with pytest.raises(InputRejected, match="waiting for grounding/target"):
        builder.build(1.0)
    builder.update_target(target(1.0))
    with pytest.raises(InputRejected) as exc:
        builder.build(1.5)
    assert exc.value.code == "stale" and "joint_states are 0.500 s old" in exc.value.reason
    builder.update_joint_state(joint_state(4.0))
    with pytest.raises(InputRejected, match="grounding target is 3.00 s old"):
        builder.build(4.0)


def test_malformed_inputs_are_rejected_and_previous_kept(builder):
    builder.update_joint_state(joint_state(1.0))
    with pytest.raises(InputRejected, match="NaN"):
        builder.update_joint_state(joint_state(1.1, q=np.array([np.nan] + [0.0] * 6)))
    with pytest.raises(InputRejected, match="panda_joint7"):
        builder.update_joint_state(joint_state(1.1, names=ARM[:6] + FINGERS))
    with pytest.raises(InputRejected, match="not the base frame"):
        builder.update_target(target(1.0, frame="camera_color_optical_frame"))
    with pytest.raises(InputRejected, match="more than 3 m"):
        builder.update_target(Pose(np.array([5.0, 0, 0]), stamp=1.0, frame_id="panda_link0"))
    with pytest.raises(InputRejected):
        builder.update_latent(np.array([np.inf]), 1.0)
    with pytest.raises(InputRejected, match="not valid JSON"):
        builder.update_subtask("{pick", 1.0)
    builder.update_target(target(1.0))
    assert builder.build(1.0).stamp == 1.0  # the good joint state is still there


def test_planner_inputs_expire_and_subtask_can_set_the_place_point():
    b = ObservationBuilder(ObservationConfig(max_planner_age=1.0, use_planner_latent=True, follow_planner_status=False))
    b.update_joint_state(joint_state(5.0))
    b.update_target(target(5.0))
    with pytest.raises(InputRejected, match="place point"):
        b.build(5.0)
    b.update_subtask('{"skill": "place", "arguments": {"place_position": [0.4, -0.3, 0.07]}}', 4.5)
    b.update_latent(np.ones(LATENT_DIM + 4), 4.5)
    obs = b.build(5.0)
    assert obs.subtask_id == SUBTASKS.index("place") and np.allclose(obs.place_position, [0.4, -0.3, 0.07])
    assert obs.planner_latent.shape == (LATENT_DIM + 4,) and obs.planner_latent.all()  # as published
    b.update_joint_state(joint_state(5.6))
    obs = b.build(5.6)  # latent and subtask 1.1 s old: ignored (zeros / none), place point kept (not following the
    # planner; when following it, a silent planner holds the expert: test_observation_builder.py)
    assert obs.subtask_id == 0 and not obs.planner_latent.any()


def test_tactile_features_need_every_fresh_stream():
    b = ObservationBuilder(ObservationConfig(place_position=(0.4, 0.3, 0.07)))
    b.update_joint_state(joint_state(2.0))
    b.update_target(target(2.0))
    b.update_wrench(Wrench(np.array([0.0, 0.0, 10.0]), np.zeros(3)), 2.0)
    b.update_pad("left", normal_force=3.0, now=2.0)
    assert b.build(2.0).tactile is None  # right pad missing
    pressure = np.zeros((16, 12))
    pressure[:2, :3] = 5.0
    b.update_pad("right", normal_force=4.0, pressure=pressure, now=2.0)
    t = b.build(2.0).tactile
    assert t[2] == 10.0 and t[6] == 3.0 and t[7] == 4.0 and t[9] == pytest.approx(6 * 1.59375e-06 * 1e4)
    b.update_joint_state(joint_state(2.6))
    assert b.build(2.6).tactile is None  # stale (> 0.5 s)


def test_planner_status_other_than_active_holds():
    b = ObservationBuilder(ObservationConfig(place_position=(0.4, 0.3, 0.07)))
    b.update_joint_state(joint_state(1.0))
    b.update_target(target(1.0))
    b.update_latent(np.ones(384), 1.0)  # a real planner's 384-d latent, fed as published
    b.update_subtask('{"skill": "pick", "status": "paused"}', 1.0)
    with pytest.raises(InputRejected, match="'pick' is 'paused': holding"):
        b.build(1.0)
    b.update_subtask('{"skill": "go_home", "status": "active"}', 1.0)
    obs = b.build(1.0)
    assert obs.subtask_id == SUBTASKS.index("retreat") and obs.planner_latent.shape == (384,)


def test_subtask_json_and_yaw_helpers():
    assert subtask_from_json('{"skill": "pick"}').subtask_id == SUBTASKS.index("pick")
    assert subtask_from_json('{"skill": "dance"}').subtask_id == 0
    with pytest.raises(InputRejected, match="3 finite"):
        subtask_from_json('{"skill": "place", "arguments": {"place_position": [1, 2]}}')
    assert yaw_from_quaternion(np.array([0, 0, math.sin(0.35), math.cos(0.35)])) == pytest.approx(0.7)


# ---- RealTimeChunker --------------------------------------------------------------------------------
class CountingPolicy:
    """Returns a constant chunk per call (value = call number); can be made slow or failing."""

    def __init__(self, sleep: float = 0.0, fail: bool = False) -> None:
        self.metadata = PolicyMetadata.for_robot(load_robot_profile("panda"), "fake", H, 0.05, supports_guidance=True)
        self.calls = 0
        self.sleep = sleep
        self.fail = fail
        self.guidance = []

    def reset(self) -> None:
        pass

    def infer(self, observation, guidance=None):
        self.calls += 1
        self.guidance.append(guidance)
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail:
            raise PolicyError("timeout", "server did not answer")
        return actions_to_chunk(np.full((H, 8), float(self.calls)) * [1] * 7 + [0.0], observation.stamp, self.metadata)


def make_obs(stamp: float) -> Observation:
    return Observation(np.zeros(7), 0.08, np.zeros(3), np.zeros(3), 0.0, np.zeros(3), stamp=stamp)


def test_realtime_publishes_chunks_stamped_with_the_observation_time():
    policy = CountingPolicy()
    rt = RealTimeChunker(policy, SchedulerConfig(strategy="rtc", execution_horizon=4), threaded=False)
    out = rt.tick(100.0, make_obs(99.99))
    assert out.chunk is not None and out.chunk.stamp == 99.99
    assert out.chunk.joint_names[-1] == GRIPPER_JOINT
    # point i is the target for the end of step i (epoch 100.0): 100.05 + 0.05 i
    assert np.allclose(out.chunk.stamp + out.chunk.times, 100.05 + 0.05 * np.arange(H))
    published = 1
    for k in range(1, 13):
        out = rt.tick(100.0 + 0.05 * k, make_obs(100.0 + 0.05 * k))
        published += out.chunk is not None
    assert published == 4 and policy.calls == 4  # a new chunk every 4 steps
    assert policy.guidance[-1] is not None  # rtc guidance once a chunk executes
    stats = rt.stats()
    assert stats["strategy"] == "rtc" and stats["chunks_published"] == 4


def test_realtime_never_publishes_from_a_stale_observation():
    policy = CountingPolicy(sleep=0.05)
    rt = RealTimeChunker(policy, SchedulerConfig(strategy="naive_async"), max_observation_age=0.3)
    t = 50.0
    rt.tick(t, make_obs(t - 0.28))  # starts inference on an observation that is already 0.28 s old
    out = None
    for _ in range(200):
        time.sleep(0.01)
        t += 0.05
        out = rt.tick(t, None)
        if rt.counters["stale_chunks_dropped"] or out.chunk is not None:
            break
    assert out.chunk is None and rt.counters["stale_chunks_dropped"] == 1
    assert any("chunk dropped" in e for e in out.events)
    rt.close()


def test_realtime_reports_inference_failures_and_recovers():
    policy = CountingPolicy(fail=True)
    rt = RealTimeChunker(policy, threaded=False)
    out = rt.tick(1.0, make_obs(1.0))
    assert out.chunk is None and any("inference failed (timeout" in e for e in out.events)
    policy.fail = False
    out = rt.tick(1.05, make_obs(1.05))
    assert out.chunk is not None and rt.counters["inference_errors"] == 1


def test_realtime_resets_when_the_clock_goes_back():
    rt = RealTimeChunker(CountingPolicy(), threaded=False)
    rt.tick(10.0, make_obs(10.0))
    out = rt.tick(0.5, make_obs(0.5))
    assert any("clock went back" in e for e in out.events)
    assert out.chunk is not None and out.chunk.stamp == 0.5
