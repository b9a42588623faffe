"""The scripted pick-and-place planner: reaches its waypoints, stays continuous, refuses the unreachable."""

import numpy as np
import pytest

from vla_stack.core.kinematics.assets import PANDA_READY_POSE
from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.lab.policy.scripted_expert import PickPlaceConfig, PlanningError, ScriptedPickPlace


@pytest.fixture(scope="module")
def planner():
    return ScriptedPickPlace(RobotModel.for_robot())


def test_plan_reaches_grasp_and_place_points(planner):
    q0 = np.array(PANDA_READY_POSE)
    grasp, place = np.array([0.5, 0.1, 0.1]), np.array([0.4, -0.3, 0.08])
    segs = planner.plan(q0, grasp, 0.3, place)
    names = [s.name for s in segs]
    assert names == ["approach", "descend", "grasp", "lift", "carry", "lower", "release", "retreat"]
    by_name = {s.name: s for s in segs}
    fk = planner.model.fk
    assert np.allclose(fk(by_name["descend"].chunk.positions[-1])[:3, 3], grasp, atol=2e-3)
    assert np.allclose(fk(by_name["lower"].chunk.positions[-1])[:3, 3], place + [0, 0, 0.02], atol=2e-3)
    # TCP points down at the grasp
    assert fk(by_name["descend"].chunk.positions[-1])[2, 2] == pytest.approx(-1.0, abs=1e-2)
    assert by_name["grasp"].gripper_width == 0.0 and by_name["grasp"].gripper_force > 0
    assert by_name["approach"].gripper_width == pytest.approx(0.08)


def test_segments_are_continuous_and_within_speed(planner):
    q = np.array(PANDA_READY_POSE)
    vmax = planner.model.velocity_limits
    for seg in planner.plan(q, np.array([0.45, -0.1, 0.12]), 0.0, np.array([0.35, 0.3, 0.1])):
        if seg.chunk is None:
            continue
        c = seg.chunk
        assert np.all(np.diff(c.times) > 0) and c.times[-1] == pytest.approx(seg.duration)
        steps = np.diff(np.vstack([q, c.positions]), axis=0)
        dt = np.diff(np.concatenate([[0.0], c.times]))
        # mean speed between points stays below the URDF limit (the planner uses 40 % of it)
        assert np.all(np.abs(steps) / dt[:, None] <= vmax + 1e-9)
        assert np.allclose(c.velocities[-1], 0.0)
        q = c.positions[-1]


def test_unreachable_and_invalid_targets_raise(planner):
    q0 = np.array(PANDA_READY_POSE)
    with pytest.raises(PlanningError, match="no IK solution"):
        planner.plan(q0, np.array([2.0, 0.0, 0.1]))
    with pytest.raises(PlanningError, match="3 finite numbers"):
        planner.plan(q0, np.array([np.nan, 0.0, 0.1]))


def test_config_validation():
    with pytest.raises(ValueError, match="cartesian_speed"):
        PickPlaceConfig(cartesian_speed=0.0)
    with pytest.raises(ValueError, match="gripper_closed"):
        PickPlaceConfig(gripper_closed=0.1)
