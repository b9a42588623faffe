"""SimRobot commands behave like ros2_control: JTC, forward position, gripper; bad commands rejected."""

from __future__ import annotations

import numpy as np
import pytest

from vla_stack.core.sim.config import SceneConfig
from vla_stack.core.sim.robot import SimRobot
from vla_stack.core.types import ActionChunk
from vla_stack.core.validation import InvalidCommand

ARM = tuple(f"panda_joint{i}" for i in range(1, 8))


@pytest.fixture()
def robot() -> SimRobot:
    return SimRobot(SceneConfig(seed=0))


def arm_q(robot: SimRobot) -> np.ndarray:
    return robot.joint_state().positions[:7]


def test_arm_holds_still_under_gravity(robot):
    q0 = robot.joint_state().positions.copy()
    robot.advance(3.0)
    js = robot.joint_state()
    np.testing.assert_allclose(js.positions, q0, atol=1e-4)
    assert np.abs(js.velocities).max() < 1e-3
    # Gravity is carried by the joint torques (joint 2 and 4 carry the arm's weight).
    assert abs(js.efforts[3]) > 5.0


def test_trajectory_followed_within_tolerance(robot):
    q0 = arm_q(robot)
    goal = q0 + np.array([0.4, 0.3, -0.3, 0.4, 0.5, -0.4, 0.6])
    ts = np.linspace(0.1, 2.0, 20)
    pos = q0 + (goal - q0) * (0.5 - 0.5 * np.cos(np.pi * ts / 2.0))[:, None]
    kept = robot.command_trajectory(ActionChunk(ARM, ts, pos))
    assert kept == 20
    worst = 0.0
    for _ in range(110):
        robot.advance(0.02)
        ref, _ = robot.reference()
        worst = max(worst, float(np.abs(arm_q(robot) - ref).max()))
    assert worst < 0.01, f"tracking error {worst:.4f} rad during the motion"
    robot.advance(0.3)
    np.testing.assert_allclose(arm_q(robot), goal, atol=2e-3)
    assert not robot.trajectory_active()


def test_joint_order_by_name_and_subset_holds_others(robot):
    q0 = arm_q(robot)
    names = ("panda_joint4", "panda_joint1")
    robot.command_trajectory(ActionChunk(names, [1.0], [[q0[3] + 0.3, q0[0] - 0.2]]))
    robot.advance(1.5)
    q = arm_q(robot)
    assert q[3] == pytest.approx(q0[3] + 0.3, abs=2e-3)
    assert q[0] == pytest.approx(q0[0] - 0.2, abs=2e-3)
    np.testing.assert_allclose(q[[1, 2, 4, 5, 6]], q0[[1, 2, 4, 5, 6]], atol=2e-3)


def test_new_trajectory_replaces_remaining_one(robot):
    q0 = arm_q(robot)
    robot.command_trajectory(ActionChunk(ARM, [2.0], [q0 + 0.5]))
    robot.advance(0.5)
    robot.command_trajectory(ActionChunk(ARM, [1.0], [q0 - 0.2]))
    robot.advance(1.8)  # the first goal would be reached at t=2.0; the second one replaced it
    np.testing.assert_allclose(arm_q(robot), q0 - 0.2, atol=2e-3)


def test_stamp_zero_is_receipt_and_past_points_skipped(robot):
    robot.advance(1.0)
    q0 = arm_q(robot)
    now = robot.time
    # Stamped 0.5 s in the past: the point at +0.25 s is already past and must be skipped.
    chunk = ActionChunk(ARM, [0.25, 1.0], [q0 + 1.0, q0 + 0.1], stamp=now - 0.5)
    assert robot.command_trajectory(chunk) == 1
    peak = 0.0
    for _ in range(40):
        robot.advance(0.02)
        peak = max(peak, float(np.abs(arm_q(robot) - q0).max()))
    assert peak < 0.12, "the skipped point (+1.0 rad) must not be approached"
    np.testing.assert_allclose(arm_q(robot), q0 + 0.1, atol=2e-3)
    # stamp 0: relative to receipt.
    t_receipt = robot.time
    robot.command_trajectory(ActionChunk(ARM, [0.5], [q0]))
    _, _ = robot.reference()
    robot.advance(0.25)
    ref, _ = robot.reference()
    np.testing.assert_allclose(ref, q0 + 0.05, atol=2e-3)  # halfway at receipt + 0.25 s
    assert robot.time == pytest.approx(t_receipt + 0.25, abs=robot.physics_dt)


def test_trajectory_with_velocities_uses_cubic(robot):
    q0 = arm_q(robot)
    pos = np.stack([q0 + 0.1, q0 + 0.2])
    vel = np.stack([np.full(7, 0.1), np.zeros(7)])
    robot.command_trajectory(ActionChunk(ARM, [1.0, 2.0], pos, velocities=vel))
    robot.advance(1.0)
    ref, v = robot.reference()
    np.testing.assert_allclose(ref, q0 + 0.1, atol=1e-6)
    np.testing.assert_allclose(v, 0.1, atol=1e-3)
    robot.advance(1.3)
    np.testing.assert_allclose(arm_q(robot), q0 + 0.2, atol=2e-3)


def test_forward_position_command(robot):
    q0 = arm_q(robot)
    target = q0 + np.array([0.05, -0.05, 0.05, 0.05, -0.05, 0.05, -0.05])
    robot.command_positions(target[::-1], names=ARM[::-1])
    robot.advance(1.0)
    np.testing.assert_allclose(arm_q(robot), target, atol=2e-3)


@pytest.mark.parametrize(
    "names, times, positions, velocities, stamp, code",
    [
        (list(ARM[:6]) + ["elbow_joint"], [1.0], [[0.0] * 7], None, 0.0, "unknown_joint"),
        (list(ARM), [1.0], [[0.0] * 6 + [float("nan")]], None, 0.0, "nan"),
        (list(ARM), [1.0], [[0.0] * 6], None, 0.0, "length_mismatch"),
        (list(ARM), [1.0, 1.0], [[0.0] * 7, [0.1] * 7], None, 0.0, "non_increasing_time"),
        ([], [1.0], [[]], None, 0.0, "no_joints"),
        (["bogus"], [], [], None, 0.0, "unknown_joint"),
        (list(ARM), [1.0], [[0.0] * 7], [[0.0] * 3], 0.0, "length_mismatch"),
        (list(ARM), [1.0], [[0.0] * 7], None, float("nan"), "bad_stamp"),
        (list(ARM[:2]) + [ARM[0]], [1.0], [[0.0] * 3], None, 0.0, "duplicate_joint"),
        (["panda_finger_joint1"], [1.0], [[0.01]], None, 0.0, "unknown_joint"),
    ],
)
def test_bad_trajectories_rejected_with_code_and_previous_kept(robot, names, times, positions, velocities, stamp, code):
    q0 = arm_q(robot)
    robot.command_trajectory(ActionChunk(ARM, [1.0], [q0 + 0.1]))
    with pytest.raises(InvalidCommand) as err:
        robot.command_trajectory_fields(names, times, positions, velocities, stamp)
    assert err.value.code == code
    assert err.value.reason
    robot.advance(1.2)
    np.testing.assert_allclose(arm_q(robot), q0 + 0.1, atol=2e-3)  # previous trajectory completed


def test_empty_trajectory_stops_and_holds_like_jtc(robot):
    q0 = arm_q(robot)
    robot.command_trajectory(ActionChunk(ARM, [2.0], [q0 + 0.4]))
    robot.advance(0.5)
    assert robot.command_trajectory_fields(list(ARM), [], []) == 0
    stopped = arm_q(robot)
    assert np.abs(stopped - q0).max() > 0.05
    robot.advance(1.0)
    np.testing.assert_allclose(arm_q(robot), stopped, atol=0.01)
    assert not robot.trajectory_active()


def test_stale_trajectory_rejected(robot):
    robot.advance(2.0)
    q0 = arm_q(robot)
    with pytest.raises(InvalidCommand) as err:
        robot.command_trajectory(ActionChunk(ARM, [0.1, 0.2], [q0 + 0.3, q0 + 0.4], stamp=0.5))
    assert err.value.code == "stale"
    robot.advance(0.5)
    np.testing.assert_allclose(arm_q(robot), q0, atol=1e-3)


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda r: r.command_positions([0.0] * 6), "length_mismatch"),
        (lambda r: r.command_positions([0.0] * 6 + [float("inf")]), "nan"),
        (lambda r: r.command_positions([0.0] * 7, names=list(ARM[:6]) + ["j7"]), "unknown_joint"),
        (lambda r: r.command_gripper(0.2), "out_of_range"),
        (lambda r: r.command_gripper(-0.01), "out_of_range"),
        (lambda r: r.command_gripper(float("nan")), "nan"),
        (lambda r: r.command_gripper(0.04, 0.0), "out_of_range"),
        (lambda r: r.command_gripper(0.04, 1000.0), "out_of_range"),
    ],
)
def test_bad_position_and_gripper_commands_rejected(robot, call, code):
    q0 = robot.joint_state().positions.copy()
    with pytest.raises(InvalidCommand) as err:
        call(robot)
    assert err.value.code == code
    robot.advance(0.3)
    np.testing.assert_allclose(robot.joint_state().positions, q0, atol=1e-3)


def test_gripper_opens_and_closes_in_free_space(robot):
    robot.command_gripper(0.02)
    robot.advance(1.0)
    assert robot.gripper_width() == pytest.approx(0.02, abs=1e-3)
    js = robot.joint_state()
    assert js.positions[7] == pytest.approx(js.positions[8], abs=5e-4)  # coupled fingers
    robot.command_gripper(0.08)
    robot.advance(1.0)
    assert robot.gripper_width() == pytest.approx(0.08, abs=1e-3)
