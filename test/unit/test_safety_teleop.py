"""Teleop servo (DLS, singularity slowdown/stop, jogs), its integration in the controller, and the base gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_stack.core.safety.base_gate import BaseGate, BaseGateConfig
from vla_stack.core.safety.controller import SafetyController, SafetyControllerConfig
from vla_stack.core.safety.limits import load_robot_profile
from vla_stack.core.safety.status import SafetyState
from vla_stack.core.safety.teleop import TeleopServo, condition_number
from vla_stack.core.types import JointState
from vla_stack.core.validation import InvalidCommand

READY = np.array([0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398])
PROFILE = load_robot_profile("panda")
ROBOT = PROFILE.kinematics()
LIMITS = PROFILE.limits.scaled(0.5, 0.5, 0.5)
T0 = 100.0


def servo(**kw) -> TeleopServo:
    return TeleopServo(ROBOT, LIMITS, "panda_link0", "panda_grasptarget", **kw)


def test_dls_realises_the_twist_away_from_singularities():
    s = servo(damping=1e-4)
    twist = np.array([0.05, -0.02, 0.03, 0.0, 0.1, 0.0])
    res = s.twist_to_joint_velocity(READY, twist, "panda_link0")
    assert res.scale == 1.0 and res.reason == "" and res.condition < 17
    np.testing.assert_allclose(ROBOT.jacobian(READY) @ res.velocity, twist, atol=1e-4)


def test_tool_frame_twists_are_rotated_into_the_base_frame():
    s = servo(damping=1e-4)
    res = s.twist_to_joint_velocity(READY, np.array([0, 0, 0.05, 0, 0, 0]), "panda_grasptarget")
    v_base = ROBOT.jacobian(READY) @ res.velocity
    z_tool = ROBOT.fk(READY)[:3, 2]  # READY points the gripper down: tool z = -base z
    np.testing.assert_allclose(v_base[:3], 0.05 * z_tool, atol=1e-4)
    assert v_base[2] < -0.04


def test_twist_validation_clips_speeds_and_rejects_bad_input():
    s = servo(max_linear_speed=0.1, max_angular_speed=0.5)
    tw = s.validate_twist([1.0, 0, 0], [0, 0, 2.0], "")
    assert np.linalg.norm(tw[:3]) == pytest.approx(0.1) and np.linalg.norm(tw[3:]) == pytest.approx(0.5)
    with pytest.raises(InvalidCommand) as e:
        s.validate_twist([np.nan, 0, 0], [0, 0, 0], "")
    assert e.value.code == "nan"
    with pytest.raises(InvalidCommand) as e:
        s.validate_twist([0, 0, 0], [0, 0, 0], "camera_link")
    assert e.value.code == "unknown_frame"


def elbow(angle: float) -> np.ndarray:
    """READY with joint 4 opened to `angle`: the wrist approaches the shoulder axis (singular near -0.49)."""
    q = READY.copy()
    q[3] = angle
    return q


def test_singularity_slowdown_between_17_and_30_and_stop_beyond():
    s = servo()
    slow_q, stop_q = elbow(-1.109), elbow(-0.8)
    assert 17 < condition_number(ROBOT.jacobian(slow_q)) < 30 <= condition_number(ROBOT.jacobian(stop_q))
    e4 = np.zeros(7)
    e4[3] = 0.3
    towards = ROBOT.jacobian(slow_q) @ e4  # the TCP motion that opens the elbow further
    res = s.twist_to_joint_velocity(slow_q, towards, "panda_link0")
    expected = 1 - (res.condition - 17) / (30 - 17)
    assert res.scale == pytest.approx(expected) and 0 < res.scale < 1 and "slowed" in res.reason
    towards = ROBOT.jacobian(stop_q) @ e4
    res = s.twist_to_joint_velocity(stop_q, towards, "panda_link0")
    assert res.scale == 0.0 and np.all(res.velocity == 0) and "stopped near a singularity" in res.reason
    # moving away from the singularity is not slowed
    res = s.twist_to_joint_velocity(stop_q, -towards, "panda_link0")
    assert res.scale == 1.0 and np.any(res.velocity != 0)


def test_joint_jog_subset_and_validation():
    s = servo()
    v = s.jog_to_joint_velocity(["panda_joint3", "panda_joint1"], [0.2, -0.1])
    np.testing.assert_allclose(v, [-0.1, 0, 0.2, 0, 0, 0, 0])
    big = s.jog_to_joint_velocity(["panda_joint1", "panda_joint2"], [10.0, 1.0])
    assert np.max(np.abs(big) / LIMITS.velocity) == pytest.approx(1.0)
    assert big[1] / big[0] == pytest.approx(0.1)  # direction kept
    for names, vel, code in ((["nope"], [0.1], "unknown_joint"), (["panda_joint1"], [np.inf], "nan"),
                             (["panda_joint1", "panda_joint2"], [0.1], "length_mismatch"), ([], [], "no_joints")):
        with pytest.raises(InvalidCommand) as e:
            s.jog_to_joint_velocity(names, vel)
        assert e.value.code == code


def make() -> SafetyController:
    c = SafetyController(SafetyControllerConfig(collision_enabled=False), PROFILE, robot=ROBOT.copy())
    c.on_joint_state(JointState(c.joint_names, READY, stamp=T0), T0)
    return c


def test_teleop_in_the_controller_moves_the_tcp_takes_priority_and_times_out():
    c = make()
    tcp0 = ROBOT.fk(READY)[:3, 3]
    for k in range(100):
        now = T0 + k * c.dt
        if k % 4 == 0:
            assert c.on_twist([0.05, 0.0, 0.0], [0, 0, 0], "panda_link0", now)
        c.on_joint_state(JointState(c.joint_names, c.commanded.position, stamp=now), now)
        c.update(now)
    tcp = ROBOT.fk(c.commanded.position)[:3, 3]
    assert tcp[0] - tcp0[0] > 0.01 and abs(tcp[1] - tcp0[1]) < 0.005 and abs(tcp[2] - tcp0[2]) < 0.005
    assert c.state is SafetyState.ACTIVE and c.status(now).mode == "teleop_twist"
    times = 0.05 * np.arange(1, 5)
    assert not c.submit_trajectory(list(c.joint_names), times, np.tile(c.commanded.position, (4, 1)), now, now)
    assert c.log.last_code == "teleop_active"
    for k in range(100, 250):
        now = T0 + k * c.dt
        c.on_joint_state(JointState(c.joint_names, c.commanded.position, stamp=now), now)
        c.update(now)
    assert c.state is SafetyState.HOLDING and np.all(c.commanded.velocity == 0)
    assert c.log.counts["teleop_timeout"] == 1
    assert not c.on_twist([0.05, 0, 0], [0, 0, 0], "somewhere", T0 + 1.0)
    assert c.log.last_code == "unknown_frame"


def test_jog_stops_at_the_joint_limit_with_a_reason():
    c = SafetyController(SafetyControllerConfig(collision_enabled=False, workspace_enabled=False), PROFILE)
    start = READY.copy()
    start[6] = 2.6
    c.on_joint_state(JointState(c.joint_names, start, stamp=T0), T0)
    for k in range(400):
        now = T0 + k * c.dt
        if k % 4 == 0:
            c.on_joint_jog(["panda_joint7"], [5.0], now)
        c.on_joint_state(JointState(c.joint_names, c.commanded.position, stamp=now), now)
        c.update(now)
    assert c.commanded.position[6] <= PROFILE.limits.upper[6]
    assert c.commanded.position[6] > PROFILE.limits.upper[6] - 0.05
    assert c.log.counts["position_limit"] >= 1 and "panda_joint7" in c.log.last_reason


# ------------------------------------------------------------------------------- base gate
def scan(gate: BaseGate, distance: float, angle: float, now: float) -> None:
    ranges = np.full(360, np.inf)
    ranges[int(round(math.degrees(angle))) % 360] = distance
    gate.on_scan(ranges, 0.0, math.radians(1.0), 0.05, 10.0, now)


def drive(gate: BaseGate, cmd, seconds: float, t0: float, dist=None, dt=0.02):
    out = []
    for k in range(int(seconds / dt)):
        now = t0 + k * dt
        gate.on_command(*cmd, now)
        if dist is not None:
            scan(gate, dist[0], dist[1], now)
        out.append(gate.update(now))
    return out


def test_base_gate_limits_velocity_and_acceleration():
    g = BaseGate(BaseGateConfig(require_scan=False, max_linear_speed=0.5, max_linear_acceleration=0.5))
    out = drive(g, (2.0, 0.0, 5.0), 2.0, 0.0)
    vx = np.array([o.vx for o in out])
    assert vx.max() == pytest.approx(0.5) and np.all(np.diff(vx) <= 0.5 * 0.02 + 1e-9)
    assert max(abs(o.wz) for o in out) == pytest.approx(1.0)


def test_base_gate_watchdog_ramps_down_and_rejects_nan():
    g = BaseGate(BaseGateConfig(require_scan=False))
    drive(g, (0.4, 0.0, 0.0), 2.0, 0.0)
    outs = [g.update(2.0 + k * 0.02) for k in range(100)]
    assert outs[-1].vx == 0.0 and "watchdog" in outs[-1].reason
    assert np.all(np.diff([o.vx for o in outs]) <= 1e-12)
    with pytest.raises(ValueError):
        g.on_command(np.nan, 0, 0, 5.0)


def test_base_gate_scales_speed_with_obstacle_distance_in_the_direction_of_travel():
    cfg = BaseGateConfig(stop_distance=0.3, slow_distance=1.0, max_linear_acceleration=5.0)
    g = BaseGate(cfg)
    out = drive(g, (0.5, 0.0, 0.0), 1.0, 0.0, dist=(0.65, 0.0))  # ahead, halfway between stop and slow
    assert out[-1].vx == pytest.approx(0.25, abs=1e-6) and "obstacle" in out[-1].reason
    out = drive(g, (0.5, 0.0, 0.0), 1.0, 1.0, dist=(0.2, 0.0))  # closer than stop_distance: no forward motion
    assert out[-1].vx == pytest.approx(0.0, abs=1e-9)
    out = drive(g, (-0.3, 0.0, 0.0), 1.0, 2.0, dist=(0.2, 0.0))  # backing away is allowed
    assert out[-1].vx == pytest.approx(-0.3)
    g2 = BaseGate(cfg)
    out = drive(g2, (0.5, 0.0, 0.0), 1.0, 0.0)  # no scan at all: require_scan holds it
    assert out[-1].vx == 0.0 and "scan" in out[-1].reason


def test_controller_base_gate_stops_on_estop():
    cfg = SafetyControllerConfig(workspace_enabled=False, collision_enabled=False, base_enabled=True,
                                 base=BaseGateConfig(require_scan=False))
    c = SafetyController(cfg, PROFILE)
    for k in range(250):
        now = T0 + k * c.dt
        c.on_base_command(0.3, 0.0, 0.0, now)
        out = c.update(now)
    assert out.base.vx == pytest.approx(0.3)
    c.on_estop(True, now)
    for k in range(250, 500):
        now = T0 + k * c.dt
        c.on_base_command(0.3, 0.0, 0.0, now)
        out = c.update(now)
    assert out.base.vx == 0.0
    assert not c.on_base_command(np.nan, 0, 0, now) and c.log.last_code == "base_nan"
