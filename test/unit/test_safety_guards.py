"""Focused tests of each guard of the safety controller: reason codes, counters, behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from vla_stack.core.kinematics.collision import CollisionChecker
from vla_stack.core.safety.controller import SafetyController, SafetyControllerConfig
from vla_stack.core.safety.limits import load_robot_profile
from vla_stack.core.safety.status import SafetyState
from vla_stack.core.types import JointState, Wrench

READY = np.array([0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398])
T0 = 100.0
PROFILE = load_robot_profile("panda")
ROBOT = PROFILE.kinematics()
TABLE = [-0.3, -0.75, -0.04, 1.0, 0.75, 0.0]
COLLISION = CollisionChecker(ROBOT.copy(), [(TABLE[:3], TABLE[3:])], srdf=PROFILE.srdf, margin=0.01)
NAMES = list(PROFILE.joints)


def make(**overrides) -> SafetyController:
    cfg = dict(obstacle_boxes=TABLE, max_contact_force=60.0)
    cfg.update(overrides)
    collision = COLLISION if cfg.get("obstacle_boxes") == TABLE and cfg.get("collision_margin", 0.01) == 0.01 else None
    c = SafetyController(SafetyControllerConfig(**cfg), PROFILE, robot=ROBOT.copy(), collision=collision)
    c.on_joint_state(JointState(c.joint_names, READY, stamp=T0), T0)
    return c


def run(c: SafetyController, t_start: float, seconds: float, feedback: bool = True) -> list:
    """Update for `seconds` from `t_start` (feeding back the commanded state); returns outputs."""
    outs = []
    for k in range(int(round(seconds / c.dt))):
        now = t_start + k * c.dt
        if feedback:
            c.on_joint_state(JointState(c.joint_names, c.commanded.position, stamp=now), now)
        outs.append(c.update(now))
    return outs


def good_chunk(start=READY, joint=0, delta=0.2, h=10, spacing=0.05):
    times = spacing * np.arange(1, h + 1)
    pos = np.tile(start, (h, 1))
    pos[:, joint] += np.linspace(delta / h, delta, h)
    return times, pos


# ------------------------------------------------------------------------------- validation
def mutate(kind):
    names = list(NAMES)
    times, pos = good_chunk()
    stamp = T0
    if kind == "nan":
        pos[2, 3] = np.nan
    elif kind == "length_mismatch":
        pos = [list(p) for p in pos]
        pos[4] = pos[4][:6]
    elif kind == "non_increasing_time":
        times = times.copy()
        times[5] = times[4]
    elif kind == "negative_time":
        times = times - 0.2
    elif kind == "unknown_joint":
        names[2] = "elbow"
    elif kind == "duplicate_joint":
        names[2] = names[1]
    elif kind == "missing_joint":
        names, pos = names[:6], pos[:, :6]
    elif kind == "empty":
        times, pos = [], []
    elif kind == "stamp_in_future":
        stamp = T0 + 1.0
    elif kind == "stale_chunk":
        stamp = T0 - 2.0
    elif kind == "expired":
        stamp, times, pos = T0 - 0.4, times[:4], pos[:4]
    elif kind == "jump":
        pos = pos.copy()
        pos[6:, 1] += 0.8
    elif kind == "too_long":
        times = times * 200
    elif kind == "too_many_points":
        times = 0.001 * np.arange(1, 1500)
        pos = np.tile(READY, (len(times), 1))
    return names, times, pos, stamp


@pytest.mark.parametrize("kind", [
    "nan", "length_mismatch", "non_increasing_time", "negative_time", "unknown_joint", "duplicate_joint",
    "missing_joint", "empty", "stamp_in_future", "stale_chunk", "expired", "jump", "too_long", "too_many_points",
])
def test_invalid_chunks_are_rejected_with_a_code_and_never_move_the_robot(kind):
    c = make()
    names, times, pos, stamp = mutate(kind)
    assert c.submit_trajectory(names, times, pos, stamp, T0) is False
    assert c.log.counts[kind] == 1, dict(c.log.counts)
    assert c.log.last_code == kind and c.log.last_reason.startswith("chunk rejected:")
    run(c, T0, 0.5)
    np.testing.assert_array_equal(c.commanded.position, READY)
    assert c.state is SafetyState.HOLDING
    assert c.status(T0 + 0.5).counters[kind] == 1


def test_jump_from_the_current_command_is_rejected():
    c = make(max_chunk_jump=0.3)
    times, pos = good_chunk()
    pos = pos + np.array([0, 0, 0, 0.5, 0, 0, 0])
    assert not c.submit_trajectory(NAMES, times, pos, T0, T0)
    assert c.log.last_code == "jump" and "away from the current command" in c.log.last_reason


def test_out_of_order_chunks_are_rejected():
    c = make()
    times, pos = good_chunk()
    assert c.submit_trajectory(NAMES, times, pos, T0, T0)
    assert not c.submit_trajectory(NAMES, times, pos, T0 - 0.05, T0 + 0.004)
    assert c.log.last_code == "out_of_order"


def test_columns_are_reordered_by_name():
    a, b = make(), make()
    times, pos = good_chunk(joint=2)
    order = [6, 2, 0, 5, 1, 3, 4]
    assert a.submit_trajectory(NAMES, times, pos, T0, T0)
    assert b.submit_trajectory([NAMES[i] for i in order], times, pos[:, order], T0, T0)
    oa, ob = run(a, T0, 0.3), run(b, T0, 0.3)
    np.testing.assert_allclose(oa[-1].arm.positions, ob[-1].arm.positions)
    assert oa[-1].arm.positions[2] > READY[2] + 0.05


def test_positions_beyond_the_joint_limits_are_clipped_and_counted():
    start = READY.copy()
    start[0] = 2.6
    c = SafetyController(SafetyControllerConfig(workspace_enabled=False, collision_enabled=False), PROFILE)
    c.on_joint_state(JointState(c.joint_names, start, stamp=T0), T0)
    times, pos = good_chunk(start=start, joint=0, delta=0.45)  # to 3.05 > 2.8973
    assert c.submit_trajectory(NAMES, times, pos, T0, T0)
    assert c.log.counts["position_clipped"] == 1
    outs = run(c, T0, 1.5)
    top = max(o.arm.positions[0] for o in outs)
    # targets are clipped position_margin inside the limit; tracking may overshoot a target a
    # little, the hard limit never (checked on every stop trajectory)
    assert top <= PROFILE.limits.upper[0]
    assert PROFILE.limits.upper[0] - c.config.position_margin - 0.01 < top < PROFILE.limits.upper[0] - 0.01


# ------------------------------------------------------------------------------- workspace
def descend_chunk(steps=8, step=0.15, spacing=0.25):
    """Shoulder forward and elbow open: the TCP goes down towards the table (followable speed)."""
    times = spacing * np.arange(1, steps + 1)
    pos = np.tile(READY, (steps, 1))
    pos[:, 1] += step * np.arange(1, steps + 1)
    pos[:, 3] += 0.5 * step * np.arange(1, steps + 1)
    return times, pos


def test_workspace_clip_truncates_the_chunk_at_the_boundary():
    c = make(workspace_min=[-0.6, -0.8, 0.25], collision_enabled=False)
    times, pos = descend_chunk()
    assert c.workspace.violation(pos[-1]) > 0, "test chunk must leave the workspace"
    assert c.submit_trajectory(NAMES, times, pos, T0, T0)
    assert c.log.counts["workspace_clipped"] == 1
    assert "outside the workspace" in c.log.last_reason and "panda_" in c.log.last_reason
    outs = run(c, T0, 3.0)
    zs = [c.workspace.positions(o.arm.positions)[:, 2].min() for o in outs]
    assert min(zs) >= 0.25
    assert min(zs) < 0.28, "the arm should end close to the boundary (margin 1 cm)"
    assert c.state is SafetyState.HOLDING


def test_workspace_reject_mode_refuses_the_chunk():
    c = make(workspace_min=[-0.6, -0.8, 0.25], collision_enabled=False, on_violation="reject")
    times, pos = descend_chunk()
    assert not c.submit_trajectory(NAMES, times, pos, T0, T0)
    assert c.log.last_code == "workspace" and c.log.counts["workspace"] == 1
    run(c, T0, 0.5)
    np.testing.assert_array_equal(c.commanded.position, READY)


def test_keep_out_box_is_never_entered_and_the_runtime_filter_stops_with_a_reason():
    times, pos = descend_chunk(steps=6, step=0.1)
    tcp = ROBOT.fk(pos[-1])[:3, 3]  # the chunk ends inside the box
    box = [tcp[0] - 0.1, tcp[1] - 0.3, 0.0, tcp[0] + 0.1, tcp[1] + 0.3, tcp[2] + 0.03]
    c = make(keep_out_boxes=box, collision_enabled=False, on_violation="clip")
    assert c.submit_trajectory(NAMES, times, pos, T0, T0)
    outs = run(c, T0, 2.5)
    lo, hi = np.array(box[:3]), np.array(box[3:])
    for o in outs:
        pts = c.workspace.positions(o.arm.positions)
        assert not np.any(np.all((pts > lo) & (pts < hi), axis=1))
    assert c.log.counts["workspace_clipped"] == 1
    assert "inside keep-out box 'keep_out0'" in c.workspace.explain(pos[-1]).describe()
    assert c.log.counts["workspace"] <= 3, "runtime interventions are debounced, not counted per cycle"


def test_robot_starting_outside_the_workspace_may_only_move_back_in():
    c = make(workspace_min=[-0.6, -0.8, 0.55], collision_enabled=False)  # TCP of READY is below 0.55
    assert c.workspace.violation(READY) > 0
    v0 = c.workspace.violation(READY)
    times, pos = descend_chunk(steps=4, step=0.05)  # further down: the first point already makes it worse
    assert not c.submit_trajectory(NAMES, times, pos, T0, T0)
    assert c.log.last_code == "workspace" and "heads straight out" in c.log.last_reason
    run(c, T0, 0.5)
    np.testing.assert_array_equal(c.commanded.position, READY)
    up_t = 0.1 * np.arange(1, 6)
    up = np.tile(READY, (5, 1))
    up[:, 1] -= 0.08 * np.arange(1, 6)  # shoulder back: TCP goes up
    assert c.submit_trajectory(NAMES, up_t, up, T0 + 0.5, T0 + 0.5)
    run(c, T0 + 0.5, 1.0)
    assert c.workspace.violation(c.commanded.position) < v0


# ------------------------------------------------------------------------------- collision
def test_chunk_into_an_obstacle_is_clipped_and_the_arm_never_collides():
    times, pos = descend_chunk()
    tcp = ROBOT.fk(pos[-1])[:3, 3]
    obstacle = [tcp[0] - 0.1, tcp[1] - 0.2, 0.05, tcp[0] + 0.1, tcp[1] + 0.2, tcp[2] + 0.02]
    checker = CollisionChecker(ROBOT.copy(), [(obstacle[:3], obstacle[3:])], srdf=PROFILE.srdf, margin=0.01)
    cfg = SafetyControllerConfig(workspace_enabled=False, obstacle_boxes=obstacle)
    c = SafetyController(cfg, PROFILE, robot=ROBOT.copy(), collision=checker)
    c.on_joint_state(JointState(c.joint_names, READY, stamp=T0), T0)
    assert checker.in_collision(pos[-1])
    assert c.submit_trajectory(NAMES, times, pos, T0, T0)
    assert c.log.counts["collision_clipped"] == 1 and "obstacle" in c.log.last_reason
    outs = run(c, T0, 3.0)
    assert not any(checker.in_collision(o.arm.positions) for o in outs)
    assert np.max(np.abs(outs[-1].arm.positions - READY)) > 0.2, "the arm should approach the obstacle"
    reject = SafetyController(
        SafetyControllerConfig(workspace_enabled=False, obstacle_boxes=obstacle, on_violation="reject"),
        PROFILE, robot=ROBOT.copy(), collision=checker)
    reject.on_joint_state(JointState(NAMES, READY, stamp=T0), T0)
    assert not reject.submit_trajectory(NAMES, times, pos, T0, T0)
    assert reject.log.last_code == "collision"


def test_collision_checker_skips_adjacent_and_srdf_pairs():
    pairs = COLLISION.pair_names
    assert ("panda_link1_0", "panda_link2_0") not in pairs
    assert ("panda_link5_0", "panda_link7_0") not in pairs  # SRDF
    assert ("panda_link5_0", "panda_hand_0") in pairs
    assert any(b == "obstacle_0" for _, b in pairs)
    assert not any(a == "panda_link0_0" and b == "obstacle_0" for a, b in pairs)
    assert not COLLISION.in_collision(READY)
    d, _ = COLLISION.min_distance(READY)
    assert d > 0.01
    down = READY.copy()
    while ROBOT.fk(down)[2, 3] > -0.02:  # shoulder forward, elbow closing: the hand goes into the table
        down[1] += 0.05
        down[3] -= 0.03
    assert COLLISION.in_collision(down)
    assert COLLISION.first_collision(down) is not None


# ------------------------------------------------------------------------------- contact
def test_contact_force_stops_and_holds_then_resumes_on_new_input_after_release():
    c = make(workspace_enabled=False, collision_enabled=False, contact_backoff=0.0)  # hold where it stopped
    times, pos = good_chunk(delta=0.4, h=20)
    assert c.submit_trajectory(NAMES, times, pos, T0, T0)
    run(c, T0, 0.3)
    c.on_wrench(Wrench(np.array([0.0, 0.0, 80.0]), np.zeros(3)), T0 + 0.3)
    assert c.log.last_code == "contact_force" and "80.0 N" in c.log.last_reason
    outs = run(c, T0 + 0.3, 0.5)
    assert outs[0].state in (SafetyState.STOPPING, SafetyState.HOLDING)
    assert c.state is SafetyState.HOLDING and np.all(c.commanded.velocity == 0)
    assert not c.submit_trajectory(NAMES, times, pos, T0 + 0.8, T0 + 0.8)
    assert c.log.last_code == "contact_stop"
    c.on_wrench(Wrench(np.array([0.0, 0.0, 10.0]), np.zeros(3)), T0 + 0.9)  # released
    t2, p2 = good_chunk(start=c.commanded.position, delta=0.1)
    assert c.submit_trajectory(NAMES, t2, p2, T0 + 0.9, T0 + 0.9)
    assert c.log.counts["contact_force"] == 1


def test_contact_stop_backs_off_along_the_commanded_path_then_accepts_input():
    """A grasp pressing into an object: the arm stops, retraces its commanded path to where it was
    `contact_backoff` s earlier (within the limits), rejects input meanwhile, and holds there, so the
    contact relaxes, the latch releases and the policy can try again from clear of the object."""
    c = make(workspace_enabled=False, collision_enabled=False, contact_backoff=0.5)
    times, pos = good_chunk(delta=0.5, h=20)  # joint 1 moves 0.5 rad over 1 s
    assert c.submit_trajectory(NAMES, times, pos, T0, T0)
    outs = run(c, T0, 0.8)
    trail = {round(T0 + k * c.dt, 6): o.arm.positions.copy() for k, o in enumerate(outs)}
    t_trip = T0 + 0.8
    at_trip = c.commanded.position.copy()
    c.on_wrench(Wrench(np.array([0.0, 0.0, 90.0]), np.zeros(3)), t_trip)
    assert c.log.last_code == "contact_backoff" and "0.5 s before" in c.log.last_reason
    goal = trail[min(trail, key=lambda t: abs(t - (t_trip - 0.5)))]
    assert np.max(np.abs(goal - at_trip)) > 0.1  # it did move in the last 0.5 s
    outs = run(c, t_trip, 0.1)
    assert c.state is SafetyState.STOPPING and "backing off" in c.status(t_trip + 0.1).message
    outs += run(c, t_trip + 0.1, 0.2)
    assert not c.submit_trajectory(NAMES, times, pos, t_trip + 0.3, t_trip + 0.3)  # still pressing: rejected
    assert c.log.last_code == "contact_stop"
    c.on_wrench(Wrench(np.array([0.0, 0.0, 20.0]), np.zeros(3)), t_trip + 0.3)  # relaxing while it backs off
    t2, p2 = good_chunk(start=c.commanded.position, delta=0.1)
    if c.state is SafetyState.STOPPING:  # not there yet: input waits for the back-off
        assert not c.submit_trajectory(NAMES, t2, p2, t_trip + 0.3, t_trip + 0.3)
        assert c.log.last_code == "contact_backoff"
    outs += run(c, t_trip + 0.3, 2.0)
    np.testing.assert_allclose(c.commanded.position, goal, atol=2e-3)  # back where it was 0.5 s before the trip
    assert c.state is SafetyState.HOLDING and np.all(c.commanded.velocity == 0)
    assert c.log.last_code == "contact_backoff_done" and "back-off done" in c.log.last_reason
    lim = c.limits
    v = np.array([o.arm.velocities for o in outs])
    a = np.array([o.arm.accelerations for o in outs])
    assert np.all(np.abs(v) <= lim.velocity + 1e-6) and np.all(np.abs(a) <= lim.acceleration + 1e-6)
    t3, p3 = good_chunk(start=c.commanded.position, delta=0.1)
    now = t_trip + 2.3
    assert c.submit_trajectory(NAMES, t3, p3, now, now)  # clear of the contact: input accepted again


def test_contact_backoff_validation_and_reset_clears_it():
    with pytest.raises(ValueError, match="contact_backoff"):
        make(contact_backoff=-1.0)
    c = make(workspace_enabled=False, collision_enabled=False, contact_backoff=1.0)
    times, pos = good_chunk(delta=0.4, h=20)
    c.submit_trajectory(NAMES, times, pos, T0, T0)
    run(c, T0, 0.5)
    c.on_wrench(Wrench(np.array([0.0, 0.0, 90.0]), np.zeros(3)), T0 + 0.5)
    run(c, T0 + 0.5, 2.0)  # backs off to the start, holds
    c.on_wrench(Wrench(np.array([0.0, 0.0, 5.0]), np.zeros(3)), T0 + 2.5)
    ok, msg = c.reset(T0 + 2.5)
    assert ok, msg
    t2, p2 = good_chunk(start=c.commanded.position, delta=0.1)
    assert c.submit_trajectory(NAMES, t2, p2, T0 + 2.5, T0 + 2.5)


def test_contact_reset_mode_and_tactile_pressure():
    c = make(workspace_enabled=False, collision_enabled=False, max_grip_pressure=300.0, contact_resume="reset")
    c.on_tactile(450.0, T0, "left")
    assert c.log.last_code == "contact_pressure" and "left" in c.log.last_reason
    c.on_tactile(10.0, T0 + 0.1)
    times, pos = good_chunk()
    assert not c.submit_trajectory(NAMES, times, pos, T0 + 0.1, T0 + 0.1)  # reset mode: still latched
    ok, msg = c.reset(T0 + 0.1)
    assert ok, msg
    assert c.submit_trajectory(NAMES, times, pos, T0 + 0.1, T0 + 0.1)
    c.on_tactile(float("nan"), T0 + 0.2)
    assert c.log.last_code == "tactile_nan"


# ------------------------------------------------------------------------------- watchdog / e-stop
def test_watchdog_holds_after_the_chunk_ends_and_counts_once():
    c = make(workspace_enabled=False, collision_enabled=False)
    times, pos = good_chunk(delta=0.1, h=5)
    c.submit_trajectory(NAMES, times, pos, T0, T0)
    run(c, T0, 1.0)
    assert c.log.counts["watchdog"] == 1
    assert c.state is SafetyState.HOLDING and "waiting for input" in c.status(T0 + 1).message
    np.testing.assert_allclose(c.commanded.position, pos[-1], atol=1e-6)


def test_estop_latch_and_reset_rules():
    c = make(workspace_enabled=False, collision_enabled=False)
    times, pos = good_chunk(delta=0.4, h=20)
    c.submit_trajectory(NAMES, times, pos, T0, T0)
    run(c, T0, 0.4)
    c.on_estop(True, T0 + 0.4)
    out = c.update(T0 + 0.4)
    assert out.state is SafetyState.ESTOP and c.log.counts["estop"] == 1
    ok, msg = c.reset(T0 + 0.404)
    assert not ok and ("decelerating" in msg or "still pressed" in msg)
    run(c, T0 + 0.404, 0.5)
    ok, msg = c.reset(T0 + 0.904)
    assert not ok and "still pressed" in msg
    c.on_estop(False, T0 + 0.95)
    assert c.state is SafetyState.ESTOP  # latched until reset
    assert not c.submit_trajectory(NAMES, times, pos, T0 + 0.95, T0 + 0.95)
    assert c.log.last_code == "estop_active"
    ok, msg = c.reset(T0 + 0.96)
    assert ok, msg
    assert c.update(T0 + 0.96).state is SafetyState.HOLDING
    assert c.log.counts["reset"] == 1
    t2, p2 = good_chunk(start=c.commanded.position, delta=0.1)
    assert c.submit_trajectory(NAMES, t2, p2, T0 + 0.97, T0 + 0.97)


# ------------------------------------------------------------------------------- faults
def test_stale_joint_states_fault_and_reset_needs_fresh_states():
    c = make(workspace_enabled=False, collision_enabled=False, state_timeout=0.2)
    run(c, T0, 0.1, feedback=False)
    c.update(T0 + 0.3)
    assert c.state is SafetyState.FAULT and c.log.last_code == "stale_joint_states"
    times, pos = good_chunk()
    assert not c.submit_trajectory(NAMES, times, pos, T0 + 0.3, T0 + 0.3)
    assert c.log.last_code == "fault_active"
    ok, msg = c.reset(T0 + 0.3)
    assert not ok and "joint_states" in msg
    c.on_joint_state(JointState(NAMES, READY, stamp=T0 + 0.31), T0 + 0.31)
    ok, _ = c.reset(T0 + 0.31)
    assert ok and c.update(T0 + 0.312).state is SafetyState.HOLDING


def test_tracking_error_faults_and_bad_joint_states_are_rejected():
    c = make(workspace_enabled=False, collision_enabled=False, max_tracking_error=0.1)
    far = READY.copy()
    far[2] += 0.3
    c.on_joint_state(JointState(NAMES, far, stamp=T0), T0)
    assert c.log.last_code == "tracking_error" and "panda_joint3" in c.log.last_reason
    assert c.update(T0).state is SafetyState.FAULT
    bad = READY.copy()
    bad[0] = np.nan
    assert not c.on_joint_state(JointState(NAMES, bad), T0)
    assert c.log.last_code == "joint_states_nan"
    assert not c.on_joint_state(JointState(NAMES[:5], READY[:5]), T0)
    assert c.log.last_code == "joint_states_missing_joint"


def test_nothing_is_commanded_before_joint_states():
    c = SafetyController(SafetyControllerConfig(workspace_enabled=False, collision_enabled=False), PROFILE)
    out = c.update(T0)
    assert out.arm is None and out.state is SafetyState.HOLDING
    times, pos = good_chunk()
    assert not c.submit_trajectory(NAMES, times, pos, T0, T0)
    assert c.log.last_code == "no_joint_states"


# ------------------------------------------------------------------------------- outputs / status / config
def test_arm_command_preview_is_the_verified_stop_ending_at_rest():
    c = make(workspace_enabled=False, collision_enabled=False)
    times, pos = good_chunk(delta=0.4, h=20)
    c.submit_trajectory(NAMES, times, pos, T0, T0)
    out = run(c, T0, 0.3)[-1].arm
    assert out.preview_times[0] == pytest.approx(c.dt)
    np.testing.assert_allclose(out.preview_positions[0], out.positions)
    assert np.all(out.preview_velocities[-1] == 0) and np.all(np.diff(out.preview_times) > 0)
    assert np.max(np.abs(out.velocities)) > 0.05


def test_gripper_column_is_passed_through_rate_and_force_limited():
    c = make(workspace_enabled=False, collision_enabled=False, gripper_rate=50.0)
    c.on_joint_state(JointState(NAMES + ["panda_finger_joint1"], np.r_[READY, 0.04], stamp=T0), T0)
    times = 0.05 * np.arange(1, 21)
    pos = np.c_[np.tile(READY, (20, 1)), np.full(20, 0.0)]  # close fully
    assert c.submit_trajectory(NAMES + ["panda_finger_joint1"], times, pos, T0, T0)
    outs = run(c, T0, 0.5)
    cmds = [o.gripper for o in outs if o.gripper is not None]
    assert 20 <= len(cmds) <= 27  # ~50 Hz
    widths = np.array([g.width for g in cmds])
    assert widths[0] <= 0.08 and np.all(np.diff(widths) <= 1e-12)
    speeds = np.abs(np.diff(widths)) / np.diff([g.stamp for g in cmds])
    assert np.max(speeds) <= PROFILE.gripper.max_speed + 1e-9
    assert all(g.max_force == PROFILE.gripper.max_force for g in cmds)
    c.on_estop(True, T0 + 0.5)
    w = c.gripper.width
    outs = run(c, T0 + 0.5, 0.2)
    assert all(o.gripper is None or o.gripper.width == pytest.approx(w) for o in outs)


def test_status_reports_state_reasons_and_counters():
    c = make()
    names, times, pos, stamp = mutate("nan")
    c.submit_trajectory(names, times, pos, stamp, T0)
    st = c.status(T0)
    kv = st.key_values()
    assert kv["state"] == "HOLDING" and kv["count.nan"] == "1" and kv["last_code"] == "nan"
    assert "NaN" in kv["last_reason"] and st.level == "OK"
    c.on_estop(True, T0)
    c.update(T0)
    st = c.status(T0)
    assert st.level == "ERROR" and st.state is SafetyState.ESTOP and st.estop_pressed


def test_config_validation_and_missing_urdf():
    with pytest.raises(ValueError, match="control_rate"):
        SafetyControllerConfig(control_rate=5000.0)
    with pytest.raises(ValueError, match="on_violation"):
        SafetyControllerConfig(on_violation="ignore")
    with pytest.raises(ValueError, match="6 numbers per box"):
        SafetyControllerConfig(keep_out_boxes=[0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="lower < upper"):
        SafetyControllerConfig(workspace_min=[0, 0, 1], workspace_max=[1, 1, 0])
    with pytest.raises(ValueError, match="no URDF"):
        SafetyController(SafetyControllerConfig(robot="ur5e"))


def test_ur5e_profile_streams_with_joint_limits_only():
    c = SafetyController(SafetyControllerConfig(robot="ur5e", workspace_enabled=False, collision_enabled=False))
    q0 = np.zeros(6)
    c.on_joint_state(JointState(c.joint_names, q0, stamp=T0), T0)
    times = 0.05 * np.arange(1, 21)
    pos = np.outer(np.linspace(0.01, 0.3, 20), np.ones(6))
    assert c.submit_trajectory(list(c.joint_names), times, pos, T0, T0)
    outs = run(c, T0, 1.5)
    np.testing.assert_allclose(outs[-1].arm.positions, pos[-1], atol=1e-6)
    assert not c.on_twist([0.1, 0, 0], [0, 0, 0], "base_link", T0 + 1.5)
    assert c.log.last_code == "no_kinematics"


def test_robot_starting_in_collision_may_only_move_away():
    start = READY.copy()
    while not COLLISION.in_collision(start):  # lower the hand until it is within the 1 cm margin of the table
        start[1] += 0.01
        start[3] += 0.005
    d0, _ = COLLISION.min_distance(start)
    c = make(workspace_enabled=False)
    c.on_joint_state(JointState(NAMES, start, stamp=T0), T0)
    c.reset(T0)  # re-sync the command to the measured position (the fixture started at READY)
    down_t = 0.2 * np.arange(1, 4)
    down = np.tile(start, (3, 1))
    down[:, 1] += 0.03 * np.arange(1, 4)
    down[:, 3] += 0.015 * np.arange(1, 4)
    c.submit_trajectory(NAMES, down_t, down, T0, T0)  # clip mode: cut where it would get closer
    assert c.log.last_code == "collision_clipped" and "would get closer" in c.log.last_reason
    outs = run(c, T0, 1.0)
    dists = [COLLISION.min_distance(o.arm.positions)[0] for o in outs]
    assert min(dists) >= d0 - 1e-4
    up = np.tile(c.commanded.position, (3, 1))
    up[:, 1] -= 0.05 * np.arange(1, 4)
    assert c.submit_trajectory(NAMES, down_t, up, T0 + 1.0, T0 + 1.0)
    outs = run(c, T0 + 1.0, 1.0)
    dists = [COLLISION.min_distance(o.arm.positions)[0] for o in outs]
    assert min(dists) >= d0 - 1e-4 and dists[-1] > 0.01  # moved out of the margin


def test_clock_going_back_drops_the_input_and_stops():
    c = make(workspace_enabled=False, collision_enabled=False)
    times, pos = good_chunk(delta=0.4, h=20)
    assert c.submit_trajectory(NAMES, times, pos, T0, T0)
    run(c, T0, 0.3)
    outs = run(c, 5.0, 0.5)  # simulator reset: time restarts near 0
    assert c.log.counts["clock_jump"] == 1 and c.status(5.5).mode == "none"
    assert outs[-1].state is SafetyState.HOLDING and np.all(outs[-1].arm.velocities == 0)
