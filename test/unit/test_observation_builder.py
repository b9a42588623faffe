"""ObservationBuilder: where the place point comes from (parameter > planner subtask > grounding)."""

import json

import numpy as np
import pytest

from vla_stack.core.policy.observation_builder import InputRejected, ObservationBuilder, ObservationConfig
from vla_stack.core.types import Pose


def test_place_point_priority_parameter_then_subtask_then_grounding():
    b = ObservationBuilder(ObservationConfig())
    assert b.place is None
    b.update_place(Pose(np.array([0.45, 0.36, 0.06]), frame_id="panda_link0"))
    assert b.place_source == "grounding" and np.allclose(b.place, [0.45, 0.36, 0.06])
    sub = {"skill": "place", "arguments": {"place_position": [0.5, -0.3, 0.07]}, "index": 1, "status": "active"}
    b.update_subtask(json.dumps(sub), 1.0)
    assert b.place_source == "subtask"
    b.update_place(Pose(np.array([0.1, 0.1, 0.1]), frame_id="panda_link0"))  # grounding no longer overrides
    assert np.allclose(b.place, [0.5, -0.3, 0.07])
    fixed = ObservationBuilder(ObservationConfig(place_position=(0.4, 0.0, 0.05)))
    fixed.update_place(Pose(np.array([0.45, 0.36, 0.06]), frame_id="panda_link0"))
    assert fixed.place_source == "parameter" and np.allclose(fixed.place, [0.4, 0.0, 0.05])


@pytest.mark.parametrize("bad", [Pose(np.array([np.nan, 0, 0]), frame_id="panda_link0"),
                                 Pose(np.zeros(3), frame_id="camera_color_optical_frame"),
                                 Pose(np.array([5.0, 0, 0]), frame_id="panda_link0")])
def test_bad_place_targets_are_rejected_and_change_nothing(bad):
    b = ObservationBuilder(ObservationConfig())
    with pytest.raises(InputRejected):
        b.update_place(bad)
    assert b.place is None


def test_grasp_yaw_is_folded_into_half_turn_range():
    b = ObservationBuilder(ObservationConfig())
    yaw = 2.61  # = -0.53 + pi: the same grasp for a parallel gripper
    b.update_target(Pose(np.array([0.5, 0.0, 0.06]), np.array([0, 0, np.sin(yaw / 2), np.cos(yaw / 2)]), 0.0, "panda_link0"))
    assert abs(b.target[1] - (yaw - np.pi)) < 1e-9


def _state(width: float, stamp: float = 1.0):
    from vla_stack.core.types import JointState

    names = tuple(f"panda_joint{i}" for i in range(1, 8)) + ("panda_finger_joint1", "panda_finger_joint2")
    return JointState(names, np.r_[np.zeros(7), width / 2, width / 2], np.zeros(9), np.zeros(9), stamp=stamp)


def test_in_hand_target_replaces_a_stale_grounding_target_while_holding():
    hand = np.array([0.3, 0.2, 0.25])
    b = ObservationBuilder(ObservationConfig(place_position=(0.4, 0.3, 0.07)), hand_position=lambda q: hand)
    b.update_target(Pose(np.array([0.5, 0.0, 0.065]), stamp=1.0, frame_id="panda_link0"))
    b.update_joint_state(_state(0.08, stamp=10.0))  # open, target 9 s old: stale
    with pytest.raises(InputRejected, match="old"):
        b.build(10.0)
    b.update_joint_state(_state(0.058, stamp=10.0))  # closed on a 6 cm mug: holding
    obs = b.build(10.0)
    np.testing.assert_allclose(obs.grasp_position, hand)
    b.update_pad("left", normal_force=0.1, now=10.0)  # fresh pads that feel nothing: not holding after all
    b.update_pad("right", normal_force=0.1, now=10.0)
    with pytest.raises(InputRejected, match="old"):
        b.build(10.0)
    b.update_joint_state(_state(0.004, stamp=10.0))  # closed on nothing
    b.pads = {}
    with pytest.raises(InputRejected, match="old"):
        b.build(10.0)
    no_model = ObservationBuilder(ObservationConfig(place_position=(0.4, 0.3, 0.07)))
    no_model.update_joint_state(_state(0.058, stamp=10.0))
    assert not no_model.holding(10.0)


def test_silent_planner_holds_the_expert_until_it_speaks_again():
    b = ObservationBuilder(ObservationConfig(place_position=(0.4, 0.3, 0.07), max_planner_age=5.0))
    b.update_target(Pose(np.array([0.5, 0.0, 0.065]), stamp=9.5, frame_id="panda_link0"))
    b.update_joint_state(_state(0.08, stamp=10.0))
    sub = json.dumps({"skill": "pick", "arguments": {}, "index": 0, "status": "active"})
    b.update_subtask(sub, 9.0)
    assert b.build(10.0) is not None
    b.update_joint_state(_state(0.08, stamp=16.0))
    b.update_target(Pose(np.array([0.5, 0.0, 0.065]), stamp=15.9, frame_id="panda_link0"))
    with pytest.raises(InputRejected, match="planner silent"):
        b.build(16.0)
    b.update_subtask(sub, 16.0)
    assert b.build(16.0) is not None


def test_a_released_object_is_where_the_hand_left_it_until_grounding_sees_it_again():
    def hand(q):  # a hand model whose height is the first joint (enough to tell poses apart)
        return np.array([0.45, 0.35, q[0]])

    def state(width, z, stamp):
        js = _state(width, stamp)
        js.positions[0] = z
        return js

    b = ObservationBuilder(ObservationConfig(place_position=(0.45, 0.35, 0.07)), hand_position=hand)
    b.update_target(Pose(np.array([0.5, 0.0, 0.065]), stamp=1.0, frame_id="panda_link0"))
    b.update_joint_state(state(0.058, 0.20, stamp=10.0))  # carried to the tray
    np.testing.assert_allclose(b.build(10.0).grasp_position, [0.45, 0.35, 0.20])
    b.update_joint_state(state(0.058, 0.13, stamp=11.0))  # lowered (no inference in between)
    b.update_joint_state(state(0.08, 0.13, stamp=11.5))  # let go
    b.update_joint_state(state(0.08, 0.25, stamp=12.0))  # moving clear
    obs = b.build(12.0)  # grounding's 11 s old target is older than the release: the mug is in the tray
    np.testing.assert_allclose(obs.grasp_position, [0.45, 0.35, 0.13])  # where the hand let go
    np.testing.assert_allclose(obs.target_position, [0.45, 0.35, 0.11])
    b.update_target(Pose(np.array([0.46, 0.34, 0.066]), stamp=12.5, frame_id="panda_link0"))  # seen again
    b.update_joint_state(state(0.08, 0.25, stamp=12.5))
    np.testing.assert_allclose(b.build(12.5).grasp_position, [0.46, 0.34, 0.066])
    b.reset()
    assert b.released is None


def test_after_a_release_the_planners_place_is_the_experts_retreat():
    from vla_stack.core.policy.types import SUBTASKS

    b = ObservationBuilder(ObservationConfig(place_position=(0.45, 0.35, 0.07)), hand_position=lambda q: np.zeros(3))
    b.update_target(Pose(np.array([0.5, 0.0, 0.065]), stamp=10.0, frame_id="panda_link0"))
    b.update_subtask(json.dumps({"skill": "place", "arguments": {}, "index": 1, "status": "active"}), 10.0)
    b.update_latent(np.ones(384), 10.0)
    b.update_joint_state(_state(0.058, stamp=10.0))
    obs = b.build(10.0)
    assert SUBTASKS[obs.subtask_id] == "place" and np.all(obs.planner_latent == 1.0)
    b.update_joint_state(_state(0.08, stamp=10.5))  # let go: the expert's "retreat", its latent left out
    obs = b.build(10.5)
    assert SUBTASKS[obs.subtask_id] == "retreat" and not np.any(obs.planner_latent)


def test_an_object_that_slipped_out_is_not_assumed_at_the_hand():
    hand = np.array([0.3, 0.2, 0.25])
    b = ObservationBuilder(ObservationConfig(place_position=(0.4, 0.3, 0.07)), hand_position=lambda q: hand)
    b.update_target(Pose(np.array([0.5, 0.0, 0.065]), stamp=1.0, frame_id="panda_link0"))
    b.update_joint_state(_state(0.058, stamp=10.0))
    b.build(10.0)
    b.update_joint_state(_state(0.004, stamp=10.5))  # fingers closed on nothing: it fell somewhere
    with pytest.raises(InputRejected, match="old"):
        b.build(10.5)


def test_the_held_object_turns_and_moves_with_the_hand_from_where_grounding_saw_it():
    def hand(q):  # hand frame: yaw q[0] about z, at (q[1], 0, 0.2)
        c, s_ = np.cos(q[0]), np.sin(q[0])
        T = np.eye(4)
        T[:2, :2] = [[c, -s_], [s_, c]]
        T[:3, 3] = [q[1], 0.0, 0.2]
        return T

    def state(width, yaw, x, stamp):
        js = _state(width, stamp)
        js.positions[0], js.positions[1] = yaw, x
        return js

    b = ObservationBuilder(ObservationConfig(place_position=(0.45, 0.35, 0.07)), hand_position=hand)
    # grounding: grasp point 2 cm below and 1 cm beside the hand, yaw 0.3 (the hand is at yaw 0.1)
    b.update_target(Pose(np.array([0.51, 0.0, 0.18]), np.array([0, 0, np.sin(0.15), np.cos(0.15)]), 10.0, "panda_link0"))
    b.update_joint_state(state(0.08, 0.1, 0.5, 10.0))
    b.update_joint_state(state(0.058, 0.1, 0.5, 10.2))  # closes on it: the grasp is fixed in the hand
    b.update_joint_state(state(0.058, 0.6, 0.3, 11.0))  # carried: turned by 0.5 rad, moved 20 cm
    obs = b.build(11.0)
    c, s_ = np.cos(0.5), np.sin(0.5)
    expected = np.array([0.3, 0.0, 0.2]) + np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]]) @ np.array([0.01, 0.0, -0.02])
    np.testing.assert_allclose(obs.grasp_position, expected, atol=1e-9)
    assert abs(obs.grasp_yaw - 0.8) < 1e-9
    b.update_joint_state(state(0.08, 0.6, 0.3, 11.5))  # let go, then the hand moves away
    b.update_joint_state(state(0.08, 0.0, 0.6, 12.0))
    obs = b.build(12.0)
    np.testing.assert_allclose(obs.grasp_position, expected, atol=1e-9)
    assert abs(obs.grasp_yaw - 0.8) < 1e-9


def test_a_grounded_point_far_from_the_closing_hand_keeps_grounding_yaw_at_the_hand():
    def hand(q):  # hand frame turned by q[0] about z: its own x axis is not the grasp-yaw convention
        c, s_ = np.cos(q[0]), np.sin(q[0])
        T = np.eye(4)
        T[:2, :2] = [[c, -s_], [s_, c]]
        T[:3, 3] = [0.4, 0.0, 0.2]
        return T

    b = ObservationBuilder(ObservationConfig(place_position=(0.45, 0.35, 0.07)), hand_position=hand)
    yaw = 0.3
    b.update_target(Pose(np.array([0.6, 0.2, 0.065]), np.array([0, 0, np.sin(yaw / 2), np.cos(yaw / 2)]), 10.0,
                         "panda_link0"))  # 28 cm from the hand: not what it closed on
    js = _state(0.058, 10.2)
    js.positions[0] = 1.0
    b.update_joint_state(js)
    obs = b.build(10.2)
    np.testing.assert_allclose(obs.grasp_position, [0.4, 0.0, 0.2], atol=1e-9)  # the hand's point
    assert abs(obs.grasp_yaw - yaw) < 1e-9  # grounding's yaw, not the hand frame's 1.0 rad


def test_layout_comes_from_the_robot_profile():
    """Joint order, gripper joints and width scale, and the base frame are the profile's."""
    from vla_stack.core.policy.types import PolicyMetadata, actions_to_chunk, chunk_to_actions
    from vla_stack.core.robot_profile import load_robot_profile
    from vla_stack.core.types import JointState

    so101 = load_robot_profile("so101")
    b = ObservationBuilder(ObservationConfig(hand_target_when_holding=False), profile=so101)
    q = np.arange(5) * 0.1
    b.update_joint_state(JointState((*reversed(so101.joints), "gripper"), np.array([*q[::-1], 0.7]), stamp=1.0))
    np.testing.assert_allclose(b.state[0], q)  # profile order, whatever the message order
    assert b.state[1] == pytest.approx(0.7)  # one jaw joint x width_per_unit 1.0
    with pytest.raises(InputRejected, match="not the base frame|base frame|frame"):
        b.update_target(Pose((0.4, 0.0, 0.1), frame_id="panda_link0", stamp=1.0))
    b.update_target(Pose((0.4, 0.0, 0.1), frame_id=so101.base_frame, stamp=1.0))

    # the chunk's gripper column and scale: the profile's
    meta = PolicyMetadata.for_robot(load_robot_profile("panda"), "x", 2, 0.05)
    chunk = actions_to_chunk(np.array([[0.0] * 7 + [0.08]] * 2), 1.0, meta)
    assert chunk.joint_names[-1] == "panda_finger_joint1" and chunk.positions[0, -1] == pytest.approx(0.04)
    np.testing.assert_allclose(chunk_to_actions(chunk, meta)[:, -1], 0.08)
    meta = PolicyMetadata.for_robot(so101, "x", 2, 0.05)
    chunk = actions_to_chunk(np.array([[0.0] * 5 + [1.2]] * 2), 1.0, meta)
    assert chunk.joint_names == (*so101.joints, "gripper") and chunk.positions[0, -1] == pytest.approx(1.2)

    # a robot without a gripper cannot feed the expert's observation: said at construction
    with pytest.raises(ValueError, match="'ur5e' has no gripper"):
        ObservationBuilder(profile=load_robot_profile("ur5e"))
