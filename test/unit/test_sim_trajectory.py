"""JointTrajectoryFollower: joint_trajectory_controller semantics, without physics."""

from __future__ import annotations

import numpy as np
import pytest

from vla_stack.core.sim.trajectory import JointTrajectoryFollower
from vla_stack.core.types import ActionChunk
from vla_stack.core.validation import InvalidCommand

NAMES = ("a", "b", "c")


def follower() -> JointTrajectoryFollower:
    return JointTrajectoryFollower(NAMES, [0.0, 0.0, 0.0])


def test_holds_initial_position():
    f = follower()
    p, v = f.sample(5.0)
    np.testing.assert_array_equal(p, 0.0)
    np.testing.assert_array_equal(v, 0.0)
    assert not f.active(0.0)


def test_linear_interpolation_from_commanded_state_and_hold_at_end():
    f = follower()
    f.set_trajectory(ActionChunk(NAMES, [1.0, 2.0], [[1.0, 2.0, 3.0], [2.0, 2.0, 3.0]]), receipt_time=10.0)
    np.testing.assert_allclose(f.sample(10.5)[0], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(f.sample(10.5)[1], [1.0, 2.0, 3.0])  # slope of the first segment
    np.testing.assert_allclose(f.sample(11.0)[0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(f.sample(11.5)[0], [1.5, 2.0, 3.0])
    p, v = f.sample(20.0)
    np.testing.assert_allclose(p, [2.0, 2.0, 3.0])
    np.testing.assert_array_equal(v, 0.0)
    assert f.active(11.9) and not f.active(12.0)


def test_stamp_zero_means_receipt_and_nonzero_stamp_is_absolute():
    f = follower()
    f.set_trajectory(ActionChunk(NAMES, [1.0], [[1.0, 1.0, 1.0]], stamp=0.0), receipt_time=3.0)
    assert f.end_time == pytest.approx(4.0)
    g = follower()
    g.set_trajectory(ActionChunk(NAMES, [1.0], [[1.0, 1.0, 1.0]], stamp=2.5), receipt_time=3.0)
    assert g.end_time == pytest.approx(3.5)
    np.testing.assert_allclose(g.sample(3.25)[0], 0.5)  # from (3.0, 0) to (3.5, 1)


def test_points_in_the_past_are_skipped():
    f = follower()
    chunk = ActionChunk(NAMES, [0.5, 1.0, 2.0], [[9.0, 9.0, 9.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], stamp=10.0)
    kept = f.set_trajectory(chunk, receipt_time=10.75)  # point 0 (t=10.5) is already past
    assert kept == 2
    p, _ = f.sample(10.8)
    assert np.all(p < 1.0)  # never heads for the skipped 9.0
    np.testing.assert_allclose(f.sample(11.0)[0], 1.0)


def test_trajectory_entirely_in_the_past_is_rejected_and_previous_kept():
    f = follower()
    f.set_trajectory(ActionChunk(NAMES, [1.0], [[1.0, 1.0, 1.0]]), receipt_time=0.0)
    with pytest.raises(InvalidCommand) as err:
        f.set_trajectory(ActionChunk(NAMES, [0.1, 0.2], [[5.0] * 3, [6.0] * 3], stamp=1.0), receipt_time=2.0)
    assert err.value.code == "stale"
    np.testing.assert_allclose(f.goal, [1.0, 1.0, 1.0])


def test_new_trajectory_replaces_remaining_one_from_current_reference():
    f = follower()
    f.set_trajectory(ActionChunk(NAMES, [2.0], [[2.0, 2.0, 2.0]]), receipt_time=0.0)
    mid = f.sample(1.0)[0].copy()
    np.testing.assert_allclose(mid, 1.0)
    f.set_trajectory(ActionChunk(NAMES, [1.0], [[-1.0, -1.0, -1.0]]), receipt_time=1.0)
    np.testing.assert_allclose(f.sample(1.0)[0], mid)  # continuous at the switch
    np.testing.assert_allclose(f.sample(2.0)[0], -1.0)
    np.testing.assert_allclose(f.goal, -1.0)


def test_subset_of_joints_others_hold_and_any_order():
    f = follower()
    f.hold([0.1, 0.2, 0.3], 0.0)
    f.set_trajectory(ActionChunk(("c", "a"), [1.0], [[3.0, 1.0]]), receipt_time=0.0)
    np.testing.assert_allclose(f.sample(1.0)[0], [1.0, 0.2, 3.0])
    np.testing.assert_allclose(f.sample(0.5)[0], [0.55, 0.2, 1.65])


def test_cubic_hermite_with_velocities_matches_points_and_velocities():
    f = follower()
    chunk = ActionChunk(
        NAMES, [1.0, 2.0], [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]],
        velocities=[[1.5, 0.0, 0.0], [0.0, 0.0, 0.0]],
    )
    f.set_trajectory(chunk, receipt_time=0.0)
    p, v = f.sample(1.0)
    np.testing.assert_allclose(p, [1.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(v, [1.5, 0, 0], atol=1e-12)
    # Smooth: velocity continuous across the knot and consistent with finite differences.
    eps = 1e-6
    for t in (0.3, 0.999, 1.001, 1.7):
        fd = (f.sample(t + eps)[0] - f.sample(t - eps)[0]) / (2 * eps)
        np.testing.assert_allclose(f.sample(t)[1], fd, atol=1e-5)
    p_end, v_end = f.sample(2.0)
    np.testing.assert_allclose(p_end, [2.0, 0, 0])
    np.testing.assert_allclose(v_end, 0.0)


def test_unknown_joint_rejected_without_change():
    f = follower()
    with pytest.raises(InvalidCommand) as err:
        f.set_trajectory(ActionChunk(("a", "zz"), [1.0], [[1.0, 1.0]]), receipt_time=0.0)
    assert err.value.code == "unknown_joint"
    np.testing.assert_array_equal(f.goal, 0.0)
