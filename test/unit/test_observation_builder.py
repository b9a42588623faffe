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
