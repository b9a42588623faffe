"""RobotModel (Pinocchio) kinematics of the Panda: FK, Jacobian, IK, limits, asset rewriting."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from vla_stack.core.kinematics.assets import (
    PANDA_ARM_JOINTS,
    PANDA_FINGER_JOINTS,
    PANDA_READY_POSE,
    PANDA_TCP_FRAME,
    PANDA_TCP_OFFSET_M,
    panda_urdf_path,
    panda_urdf_with_absolute_meshes,
)
from vla_stack.core.kinematics.robot_model import RobotModel


@pytest.fixture(scope="module")
def panda() -> RobotModel:
    return RobotModel.for_robot()


def test_rewritten_urdf_has_only_absolute_existing_meshes(tmp_path):
    out = panda_urdf_with_absolute_meshes(cache_dir=tmp_path)
    text = out.read_text()
    assert "package://" not in text
    import re

    meshes = re.findall(r'filename="([^"]+)"', text)
    assert len(meshes) > 10
    for m in meshes:
        assert m.startswith("/"), m
        assert (tmp_path / m).is_file() or __import__("os").path.isfile(m), m
    # Same source -> same cached path (idempotent, hash-keyed).
    assert panda_urdf_with_absolute_meshes(cache_dir=tmp_path) == out
    assert panda_urdf_path().is_file()


def test_joint_names_and_limits(panda):
    assert panda.joint_names == PANDA_ARM_JOINTS
    assert panda.n == 7
    assert np.all(panda.lower < panda.upper)
    # Real Panda limits (URDF values): joint 4 is always negative, joint 6 mostly positive.
    assert panda.upper[3] <= 0.0 and panda.lower[5] < 0.0 < panda.upper[5]
    assert np.all(panda.velocity_limits > 2.0)
    assert panda.tcp_frame == PANDA_TCP_FRAME
    for j in PANDA_FINGER_JOINTS:
        assert panda.model.existJointName(j)


def test_ready_pose_tcp_points_down_in_front_of_base(panda):
    T = panda.fk(PANDA_READY_POSE)
    assert T.shape == (4, 4)
    np.testing.assert_allclose(T[3], [0, 0, 0, 1])
    assert 0.25 < T[0, 3] < 0.4 and abs(T[1, 3]) < 1e-6 and 0.3 < T[2, 3] < 0.6
    np.testing.assert_allclose(T[:3, 2], [0, 0, -1], atol=1e-6)  # approach axis down
    hand = panda.fk(PANDA_READY_POSE, "panda_hand")
    np.testing.assert_allclose(T[:3, 3], hand[:3, 3] + PANDA_TCP_OFFSET_M * hand[:3, 2], atol=1e-9)


def test_frame_positions_match_fk(panda):
    q = np.array(PANDA_READY_POSE) + 0.1
    frames = ["panda_link3", "panda_hand", PANDA_TCP_FRAME]
    P = panda.frame_positions(q, frames)
    assert P.shape == (3, 3)
    for k, f in enumerate(frames):
        np.testing.assert_allclose(P[k], panda.fk(q, f)[:3, 3], atol=1e-12)


def test_jacobian_matches_finite_differences(panda):
    rng = np.random.default_rng(3)
    eps = 1e-6
    for _ in range(5):
        q = panda.random_configuration(rng, margin=0.1)
        J = panda.jacobian(q)
        assert J.shape == (6, 7)
        T0 = panda.fk(q)
        for i in range(7):
            dq = np.zeros(7)
            dq[i] = eps
            T1 = panda.fk(q + dq)
            v = (T1[:3, 3] - T0[:3, 3]) / eps
            w = pin.log3(T1[:3, :3] @ T0[:3, :3].T) / eps
            np.testing.assert_allclose(J[:3, i], v, atol=1e-5)
            np.testing.assert_allclose(J[3:, i], w, atol=1e-5)


def test_ik_round_trip_on_random_reachable_poses(panda):
    rng = np.random.default_rng(7)
    q0 = np.array(PANDA_READY_POSE)
    converged = 0
    for _ in range(20):
        q_true = panda.random_configuration(rng, margin=0.2)
        target = panda.fk(q_true)
        q, ok, err = panda.ik(target, q0)
        assert panda.within_limits(q)
        if ok:
            converged += 1
            reached = panda.fk(q)
            assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) <= 1e-4
            assert np.linalg.norm(pin.log3(reached[:3, :3] @ target[:3, :3].T)) <= 1e-3
            assert np.linalg.norm(err[:3]) <= 1e-4
    assert converged >= 18, f"only {converged}/20 random poses solved"


def test_ik_position_only(panda):
    target = np.eye(4)
    target[:3, 3] = [0.5, 0.2, 0.3]
    res = panda.ik(target, PANDA_READY_POSE, position_only=True)
    assert res.converged
    np.testing.assert_allclose(panda.fk(res.q)[:3, 3], target[:3, 3], atol=1e-4)
    assert res.rotation_error == 0.0


def test_ik_unreachable_target_reports_failure_within_limits(panda):
    target = np.eye(4)
    target[:3, 3] = [2.0, 0.0, 0.5]  # 2 m away: beyond the Panda's ~0.86 m reach
    res = panda.ik(target, PANDA_READY_POSE, position_only=True, max_iters=50, restarts=1)
    assert not res.converged
    assert res.position_error > 0.5
    assert panda.within_limits(res.q)


def test_ik_top_down_grasp_pose(panda):
    """The pose a top-down grasp uses: TCP above the table, approach axis down."""
    target = np.eye(4)
    target[:3, :3] = np.diag([1.0, -1.0, -1.0])
    target[:3, 3] = [0.55, -0.1, 0.12]
    res = panda.ik(target, PANDA_READY_POSE)
    assert res.converged, res
    np.testing.assert_allclose(panda.fk(res.q), target, atol=1e-3)


def test_bad_inputs_raise(panda):
    with pytest.raises(ValueError, match="shape"):
        panda.fk(np.zeros(6))
    with pytest.raises(ValueError, match="not in the model"):
        panda.fk(np.zeros(7), "no_such_frame")
    with pytest.raises(ValueError, match="finite"):
        panda.ik(np.full((4, 4), np.nan), PANDA_READY_POSE)
    with pytest.raises(ValueError, match="not in the model"):
        RobotModel.from_urdf(panda.urdf_path, ["panda_joint1", "nope"], PANDA_TCP_FRAME)


def test_fixed_finger_positions_move_finger_frames(panda):
    m = panda.copy()
    q = np.array(PANDA_READY_POSE)
    m.set_fixed_positions({"panda_finger_joint1": 0.0, "panda_finger_joint2": 0.0})
    closed = m.frame_positions(q, ["panda_leftfinger", "panda_rightfinger"])
    m.set_fixed_positions({"panda_finger_joint1": 0.04, "panda_finger_joint2": 0.04})
    opened = m.frame_positions(q, ["panda_leftfinger", "panda_rightfinger"])
    assert np.linalg.norm(closed[0] - closed[1]) < 1e-6
    np.testing.assert_allclose(np.linalg.norm(opened[0] - opened[1]), 0.08, atol=1e-6)
    with pytest.raises(ValueError, match="controlled joint"):
        m.set_fixed_positions({"panda_joint1": 0.0})
