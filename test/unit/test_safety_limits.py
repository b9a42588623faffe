"""Limits model, robot profiles, ruckig streaming helpers and the chunk reference."""

from __future__ import annotations

import numpy as np
import pytest
from ruckig import ControlInterface, InputParameter, Ruckig, Synchronization, Trajectory

from vla_stack.core.safety.limits import (
    JointLimits,
    load_robot_profile,
    profile_from_dict,
    urdf_position_limits,
)
from vla_stack.core.safety.streaming import (
    ChunkReference,
    JerkLimitedStreamer,
    MotionState,
    position_extrema,
    sample,
)

PANDA_V = [2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61]
PANDA_A = [15, 7.5, 10, 12.5, 15, 20, 20]
PANDA_J = [7500, 3750, 5000, 6250, 7500, 10000, 10000]


def test_panda_profile_has_frankas_published_limits_and_urdf_position_limits():
    p = load_robot_profile("panda")
    assert p.joints == tuple(f"panda_joint{i}" for i in range(1, 8))
    np.testing.assert_allclose(p.limits.velocity, PANDA_V)
    np.testing.assert_allclose(p.limits.acceleration, PANDA_A)
    np.testing.assert_allclose(p.limits.jerk, PANDA_J)
    # position limits come from the URDF's <safety_controller> soft limits (Franka's datasheet values)
    lower, upper = urdf_position_limits(p.urdf, p.joints, prefer_soft_limits=True)
    np.testing.assert_allclose(p.limits.lower, lower)
    np.testing.assert_allclose(p.limits.upper, upper)
    assert p.limits.lower[0] == pytest.approx(-2.8973) and p.limits.upper[5] == pytest.approx(3.7525)
    hard_lo, _ = urdf_position_limits(p.urdf, p.joints, prefer_soft_limits=False)
    assert hard_lo[0] == pytest.approx(-2.9671)
    assert 0 < p.scaling <= 1 and p.gripper is not None and p.gripper.width_per_unit == 2.0
    assert p.srdf is not None and p.srdf.is_file()
    assert p.workspace_frames[0] == p.tcp_frame == "panda_grasptarget"


@pytest.mark.parametrize("name, n", [("ur5e", 6), ("so101", 5)])
def test_other_profiles_load_without_urdf(name, n):
    p = load_robot_profile(name)
    assert len(p.joints) == n and p.urdf is None and p.kinematics() is None
    assert np.all(p.limits.lower < p.limits.upper)
    assert np.all(p.limits.max_stopping_distance() > 0)


def test_profile_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="shipped profiles"):
        load_robot_profile("no_such_robot")
    base = {"name": "x", "joints": ["a", "b"], "limits": {"lower": [-1, -1], "upper": [1, 1], "velocity": [1, 1],
                                                          "acceleration": [1, 1]}}
    with pytest.raises(ValueError, match="jerk"):
        profile_from_dict(base)
    base["limits"]["jerk"] = [1, 1, 1]
    with pytest.raises(ValueError, match="2 values"):
        profile_from_dict(base)
    base["limits"]["jerk"] = [1, 0]
    with pytest.raises(ValueError, match="jerk limits must be > 0"):
        profile_from_dict(base)
    base["limits"]["jerk"] = [1, 1]
    base["scaling"] = 1.5
    with pytest.raises(ValueError, match="scaling"):
        profile_from_dict(base)
    no_limits = {"name": "x", "joints": ["a"], "limits": {"velocity": [1], "acceleration": [1], "jerk": [1]}}
    with pytest.raises(ValueError, match="no position limits"):
        profile_from_dict(no_limits)


def test_limits_scaling_and_stopping_distance():
    lim = JointLimits(("a",), [-1], [1], [2.0], [10.0], [1000.0])
    half = lim.scaled(0.5, 0.5, 0.5)
    np.testing.assert_allclose([half.velocity[0], half.acceleration[0], half.jerk[0]], [1.0, 5.0, 500.0])
    # worst case: at v_max still accelerating at a_max. The velocity peaks at v + a²/(2j) while the
    # acceleration reverses (2a/j s), then brakes at a_max: between v²/(2a) and v_peak²/(2a) + v_peak·2a/j.
    d = lim.max_stopping_distance()[0]
    v_peak = 2.0 + 10.0**2 / (2 * 1000.0)
    assert 2.0**2 / (2 * 10.0) < d < v_peak**2 / (2 * 10.0) + v_peak * 2 * 10.0 / 1000.0
    with pytest.raises(ValueError):
        lim.scaled(0.0)
    with pytest.raises(ValueError, match="lower position limit"):
        JointLimits(("a",), [1], [1], [1], [1], [1])


def test_position_extrema_match_dense_sampling():
    """ruckig's Trajectory.position_extrema is stale for velocity plans; ours is exact."""
    rng = np.random.default_rng(0)
    n = 7
    otg, inp, traj = Ruckig(n), InputParameter(n), Trajectory(n)
    inp.control_interface = ControlInterface.Velocity
    inp.synchronization = Synchronization.No
    inp.max_velocity, inp.max_acceleration, inp.max_jerk = [1.0] * n, [5.0] * n, [100.0] * n
    inp.target_velocity, inp.target_acceleration = [0.0] * n, [0.0] * n
    for _ in range(40):
        inp.current_position = rng.uniform(-1, 1, n).tolist()
        inp.current_velocity = rng.uniform(-1, 1, n).tolist()
        inp.current_acceleration = rng.uniform(-5, 5, n).tolist()
        otg.calculate(inp, traj)
        lo, hi = position_extrema(traj)
        dense = np.array([traj.at_time(t)[0] for t in np.linspace(0, traj.duration, 2001)])
        assert np.all(dense.min(axis=0) >= lo - 1e-9) and np.all(dense.max(axis=0) <= hi + 1e-9)
        np.testing.assert_allclose(lo, dense.min(axis=0), atol=1e-5)
        np.testing.assert_allclose(hi, dense.max(axis=0), atol=1e-5)


def test_streamer_plans_respect_limits_and_continue_past_their_end():
    lim = JointLimits(("a", "b"), [-5, -5], [5, 5], [1.0, 2.0], [4.0, 4.0], [100.0, 100.0])
    s = JerkLimitedStreamer(lim, 0.004)
    start = MotionState(np.array([0.0, 0.0]), np.array([0.5, -0.5]), np.array([1.0, 0.0]))
    traj = s.plan_to(start, np.array([1.0, -1.0]), np.array([0.2, 0.0]), 0.5)
    assert traj is not None and traj.duration >= 0.5 - 1e-9
    first = s.step(traj)
    assert np.all(np.abs(first.acceleration - start.acceleration) <= lim.jerk * 0.004 + 1e-9)
    # beyond the end: constant velocity, zero acceleration (no position shortfall)
    end = sample(traj, traj.duration)
    later = sample(traj, traj.duration + 0.01)
    np.testing.assert_allclose(later.position, end.position + end.velocity * 0.01)
    assert np.all(later.acceleration == 0)
    stop = s.plan_stop(start)
    rest = sample(stop, stop.duration)
    assert np.all(np.abs(rest.velocity) < 1e-9)
    # target velocities beyond the limit are clipped, not an error
    assert s.plan_velocity(start, np.array([10.0, -10.0])) is not None


def test_chunk_reference_interpolates_through_points_and_ends_at_rest():
    t = np.array([1.0, 1.1, 1.2, 1.3])
    p = np.array([[0.0], [0.1], [0.3], [0.3]])
    ref = ChunkReference.build(t, p, np.array([10.0]), stamp=0.9)
    for ti, pi in zip(t, p, strict=True):
        np.testing.assert_allclose(ref.sample(ti)[0], pi, atol=1e-12)
    # C1: velocity continuous across a knot
    eps = 1e-7
    assert ref.sample(1.1 - eps)[1][0] == pytest.approx(ref.sample(1.1 + eps)[1][0], abs=1e-4)
    np.testing.assert_allclose(ref.sample(5.0)[0], [0.3])
    assert ref.sample(5.0)[1][0] == 0.0
    assert ref.velocities[-1, 0] == 0.0
    # velocities are clipped to the limit
    fast = ChunkReference.build(t, p * 100, np.array([1.0]))
    assert np.max(np.abs(fast.velocities)) <= 1.0
    g = ChunkReference.build(t, p, np.array([1.0]), gripper=np.array([0.0, 0.02, 0.04, 0.08]))
    assert g.gripper_at(1.05) == pytest.approx(0.01)
