"""The streamed JointTrajectory of the safety controller: `conversions.fill_joint_trajectory`.

The node refills one message in place every control period; these tests check that what goes
on the wire (serialised by rclpy, read back) is exactly the controller's verified preview, for
the rows chosen, also when the same message is reused with fewer or more points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from trajectory_msgs.msg import JointTrajectory

from vla_stack.core.safety.controller import SafetyController, SafetyControllerConfig
from vla_stack.core.types import JointState
from vla_stack.ros.conversions import MessageError, duration_to_seconds, fill_joint_trajectory

READY = np.array([0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398])
T0 = 100.0


def _wire(msg: JointTrajectory) -> JointTrajectory:
    return deserialize_message(serialize_message(msg), JointTrajectory)


def _moving_preview():
    """A real ArmCommand while the controller follows a chunk (stop preview with several points)."""
    cfg = SafetyControllerConfig(workspace_enabled=False, collision_enabled=False)
    c = SafetyController(cfg)
    c.on_joint_state(JointState(c.joint_names, READY, stamp=T0), T0)
    times = np.linspace(0.05, 0.8, 16)
    target = READY + np.outer(times / times[-1], np.full(7, 0.3))
    assert c.submit_trajectory(list(c.joint_names), times, target, T0, T0)
    out = None
    for k in range(40):
        out = c.update(T0 + k * c.dt)
    assert out is not None and out.arm is not None
    assert len(out.arm.preview_times) >= 3, "the arm should be moving (a stop preview of several points)"
    return out.arm


def test_fill_matches_preview_rows_on_the_wire():
    arm = _moving_preview()
    k = len(arm.preview_times)
    rows = [0, k // 2, k - 1]
    msg = JointTrajectory()
    msg.joint_names = list(arm.joint_names)
    got = _wire(fill_joint_trajectory(msg, arm.preview_times, arm.preview_positions, arm.preview_velocities,
                                      arm.preview_accelerations, rows))
    assert list(got.joint_names) == list(arm.joint_names)
    assert len(got.points) == 3
    for point, i in zip(got.points, rows, strict=True):
        np.testing.assert_array_equal(np.array(point.positions), arm.preview_positions[i])
        np.testing.assert_array_equal(np.array(point.velocities), arm.preview_velocities[i])
        np.testing.assert_array_equal(np.array(point.accelerations), arm.preview_accelerations[i])
        assert duration_to_seconds(point.time_from_start) == pytest.approx(float(arm.preview_times[i]), abs=1e-9)
    # the first point is the next commanded state, the last one is at rest
    np.testing.assert_array_equal(np.array(got.points[0].positions), arm.positions)
    assert not np.any(np.array(got.points[-1].velocities))


def test_reused_message_shrinks_and_grows():
    arm = _moving_preview()
    k = len(arm.preview_times)
    msg = JointTrajectory()
    fill_joint_trajectory(msg, arm.preview_times, arm.preview_positions, arm.preview_velocities,
                          arm.preview_accelerations)
    assert len(_wire(msg).points) == k
    first = msg.points[0]
    # next cycle: at rest, a single point, no velocities/accelerations given
    fill_joint_trajectory(msg, np.array([0.004]), READY[None, :])
    got = _wire(msg)
    assert len(got.points) == 1 and msg.points[0] is first  # point object reused
    np.testing.assert_array_equal(np.array(got.points[0].positions), READY)
    assert len(got.points[0].velocities) == 0 and len(got.points[0].accelerations) == 0
    assert duration_to_seconds(got.points[0].time_from_start) == pytest.approx(0.004, abs=1e-9)
    # and back to many points
    fill_joint_trajectory(msg, arm.preview_times, arm.preview_positions, arm.preview_velocities,
                          arm.preview_accelerations)
    assert len(_wire(msg).points) == k


def test_time_rounding_and_bad_time():
    msg = JointTrajectory()
    fill_joint_trajectory(msg, np.array([1.9999999999]), READY[None, :])
    d = msg.points[0].time_from_start
    assert (d.sec, d.nanosec) == (2, 0)
    with pytest.raises(MessageError):
        fill_joint_trajectory(msg, np.array([math.nan]), READY[None, :])
