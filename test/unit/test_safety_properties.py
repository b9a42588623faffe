"""Property-based tests of the safety controller core (hypothesis).

Random and adversarial input streams (jumps, NaN, reversed time, out-of-reach targets,
floods, gaps, stale/future stamps, wrong names, chunks faster than the limits, teleop
twists and jogs) go through `SafetyController`; the commanded stream must show:

- zero limit violations: positions within the joint limits, and velocity, acceleration and
  jerk within the *scaled* limits, both as reported and as finite differences of the
  commanded positions. Numerical tolerance: limit x (1 + 1e-6) + 1e-9 (scaled by dt^-k for
  k-th differences), i.e. floating-point slack only;
- zero workspace exits: every workspace frame origin of every commanded position is inside
  the workspace box and outside the keep-out box (no tolerance: the controller keeps a 1 cm
  margin);
- zero NaN;
- e-stop honoured within one control period (the first command after the press is the
  first step of the time-optimal stop), and watchdog stops within the stopping distance
  the configured limits allow (`JointLimits.max_stopping_distance`).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vla_stack.core.kinematics.collision import CollisionChecker
from vla_stack.core.safety.controller import SafetyController, SafetyControllerConfig
from vla_stack.core.safety.limits import load_robot_profile
from vla_stack.core.safety.status import SafetyState
from vla_stack.core.safety.streaming import sample
from vla_stack.core.types import JointState
from vla_stack.lab.safety.replay import TimedInput, limit_violations, replay

READY = np.array([0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398])
WORKSPACE_MIN = [-0.3, -0.5, 0.12]
WORKSPACE_MAX = [0.75, 0.5, 1.0]
KEEP_OUT = [0.45, -0.15, 0.12, 0.75, 0.15, 0.3]  # a box on the table in front of the robot
TABLE = [-0.3, -0.75, -0.04, 1.0, 0.75, 0.0]

PROFILE = load_robot_profile("panda")
ROBOT = PROFILE.kinematics()
COLLISION = CollisionChecker(ROBOT.copy(), [(TABLE[:3], TABLE[3:])], srdf=PROFILE.srdf, margin=0.01)
# Examples per property: 25 keeps this file at ~15 s on 2 cores; set VLA_STACK_SAFETY_EXAMPLES=500 for a soak.
SETTINGS = settings(
    max_examples=int(os.environ.get("VLA_STACK_SAFETY_EXAMPLES", "25")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow], derandomize=True,
)


def make_controller(**overrides) -> SafetyController:
    cfg = dict(
        workspace_min=WORKSPACE_MIN, workspace_max=WORKSPACE_MAX, keep_out_boxes=KEEP_OUT, obstacle_boxes=TABLE,
        max_contact_force=0.0,
    )
    cfg.update(overrides)
    c = SafetyController(SafetyControllerConfig(**cfg), PROFILE, robot=ROBOT.copy(), collision=COLLISION)
    c.on_joint_state(JointState(c.joint_names, READY, stamp=100.0), 100.0)
    return c


def workspace_exits(c: SafetyController, positions: np.ndarray) -> list[str]:
    """Frame origins outside the workspace box or inside the keep-out box (exact boxes, no margin)."""
    lo, hi = np.array(WORKSPACE_MIN), np.array(WORKSPACE_MAX)
    klo, khi = np.array(KEEP_OUT[:3]), np.array(KEEP_OUT[3:])
    bad = []
    for k, q in enumerate(positions):
        pts = c.workspace.positions(q)
        if np.any(pts < lo) or np.any(pts > hi):
            bad.append(f"sample {k}: outside the workspace: {pts.round(3).tolist()}")
        if np.any(np.all((pts > klo) & (pts < khi), axis=1)):
            bad.append(f"sample {k}: inside the keep-out box: {pts.round(3).tolist()}")
    return bad


def assert_safe(c: SafetyController, trace) -> None:
    assert np.all(np.isfinite(trace.positions)), "NaN in the commanded positions"
    assert np.all(np.isfinite(trace.velocities)) and np.all(np.isfinite(trace.accelerations))
    problems = limit_violations(trace.positions, c.dt, c.limits, trace.velocities, trace.accelerations)
    assert problems == [], problems[:5]
    if c.workspace is not None:
        exits = workspace_exits(c, trace.positions)
        assert exits == [], exits[:5]
    if c.collision is not None:
        for q in trace.positions:
            assert not COLLISION.in_collision(q), "commanded a colliding configuration"


# ---------------------------------------------------------------------------------------- inputs
KINDS = ["good", "good", "good", "fast", "jump", "nan", "reversed", "far", "flood", "gap", "stale",
         "future", "names", "unknown", "single"]


@st.composite
def chunk_events(draw, max_events: int = 8):
    """A list of (kind, delay cycles, magnitude 0..1, seed) event specs."""
    n = draw(st.integers(1, max_events))
    return [
        (draw(st.sampled_from(KINDS)), draw(st.integers(0, 60)), draw(st.floats(0.0, 1.0)), draw(st.integers(0, 2**16)))
        for _ in range(n)
    ]


def build_chunk(kind: str, mag: float, seed: int, now: float, current: np.ndarray, c: SafetyController):
    """(names, times, positions, stamp) for one event kind, relative to the current command."""
    rng = np.random.default_rng(seed)
    names = list(c.joint_names)
    h = int(rng.integers(2, 25))
    spacing = float(rng.uniform(0.02, 0.1))
    times = spacing * np.arange(1, h + 1)
    speed = mag * c.limits.velocity * (3.0 if kind == "fast" else 0.8)
    direction = rng.normal(size=c.n)
    direction /= np.linalg.norm(direction)
    pos = current + np.outer(times, direction * speed) + 0.02 * rng.normal(size=(h, c.n)) * mag
    stamp = now - float(rng.uniform(0.0, 0.15))
    if kind == "jump":
        pos = pos + rng.uniform(-1.0, 1.0, size=c.n) * (0.3 + 1.5 * mag)
    elif kind == "nan":
        pos[rng.integers(h), rng.integers(c.n)] = float(rng.choice([np.nan, np.inf, -np.inf]))
    elif kind == "reversed":
        times = times[::-1].copy()
    elif kind == "far":  # walk shoulder/elbow towards the table / out of reach, below the jump limit
        step = np.zeros(c.n)
        step[[1, 3]] = rng.choice([-1.0, 1.0], size=2) * 0.4
        pos = current + np.outer(np.arange(1, h + 1), step)
    elif kind == "stale":
        stamp = now - 5.0
    elif kind == "future":
        stamp = now + 2.0
    elif kind == "names":
        order = rng.permutation(c.n)
        names = [names[i] for i in order]
        pos = pos[:, order]
    elif kind == "unknown":
        names[int(rng.integers(c.n))] = "not_a_joint"
    elif kind == "single":
        times, pos = times[:1], pos[:1]
    return names, times, pos, stamp


def run_chunk_stream(c: SafetyController, events, tail: int = 150):
    """Deliver the event specs in order (each after its delay) and return the trace."""
    state = {"k": 0, "queue": list(events), "next": events[0][1] if events else 0}

    def hook(k, now, ctrl):
        while state["queue"] and k >= state["next"]:
            kind, _delay, mag, seed = state["queue"].pop(0)
            cur = ctrl.commanded.position
            count = 20 if kind == "flood" else 1
            for i in range(count):
                names, times, pos, stamp = build_chunk("good" if kind == "flood" else kind, mag, seed + i, now, cur, ctrl)
                if kind == "gap":
                    break
                ctrl.submit_trajectory(names, times, pos, stamp, now)
            extra = 120 if kind == "gap" else 0
            state["next"] = k + extra + (state["queue"][0][1] if state["queue"] else 0)

    total = sum(d for _, d, _, _ in events) + 120 * sum(1 for e in events if e[0] == "gap") + tail
    return replay(c, [], total, on_cycle=hook)


# ---------------------------------------------------------------------------------------- properties
@SETTINGS
@given(events=chunk_events())
def test_random_and_adversarial_chunk_streams_stay_within_limits_and_workspace(events):
    c = make_controller()
    trace = run_chunk_stream(c, events)
    assert_safe(c, trace)
    assert c.state in (SafetyState.ACTIVE, SafetyState.HOLDING, SafetyState.STOPPING)


@SETTINGS
@given(events=chunk_events(max_events=5), rate=st.sampled_from([250.0, 500.0]))
def test_chunk_streams_at_500_hz_reject_mode_and_targets_on_the_limits(events, rate):
    c = make_controller(control_rate=rate, on_violation="reject", position_margin=0.0)  # targets on the limits
    trace = run_chunk_stream(c, events, tail=100)
    assert_safe(c, trace)


@st.composite
def teleop_events(draw):
    n = draw(st.integers(1, 6))
    out = []
    for _ in range(n):
        kind = draw(st.sampled_from(["twist_base", "twist_tool", "jog", "bad_twist", "bad_jog", "pause"]))
        lin = draw(st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3))
        ang = draw(st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3))
        duration = draw(st.integers(1, 150))
        out.append((kind, lin, ang, duration))
    return out


@SETTINGS
@given(events=teleop_events())
def test_teleop_streams_stay_within_limits_and_workspace(events):
    c = make_controller()
    schedule = []
    k = 0
    for kind, lin, ang, duration in events:
        for i in range(0, duration, 4):  # teleop devices publish at ~60 Hz: every 4th cycle
            schedule.append((k + i, kind, lin, ang))
        k += duration

    def deliver(kind, lin, ang):
        def apply(ctrl, now):
            if kind == "twist_base":
                return ctrl.on_twist(lin, ang, "panda_link0", now)
            if kind == "twist_tool":
                return ctrl.on_twist(lin, ang, "panda_grasptarget", now)
            if kind == "jog":
                return ctrl.on_joint_jog(list(ctrl.joint_names[:3]), [lin[0] * 3, lin[1] * 3, ang[0]], now)
            if kind == "bad_twist":
                return ctrl.on_twist([np.nan, 0, 0], ang, "some_frame", now)
            if kind == "bad_jog":
                return ctrl.on_joint_jog(["panda_joint1", "nope"], [1.0], now)
            return None

        return apply

    inputs = [TimedInput(cycle, deliver(kind, lin, ang), kind) for cycle, kind, lin, ang in schedule]
    trace = replay(c, inputs, k + 100)
    assert_safe(c, trace)
    assert trace.accepted + trace.rejected > 0 or all(e[0] == "pause" for e in events)


# ---------------------------------------------------------------------------------------- e-stop
@SETTINGS
@given(events=chunk_events(max_events=4), press_at=st.integers(1, 200))
def test_estop_is_honoured_within_one_control_period(events, press_at):
    c = make_controller()
    record = {}

    def hook(k, now, ctrl):
        if k == press_at:
            record["before"] = ctrl.commanded
            ctrl.on_estop(True, now)
            record["rejected"] = not ctrl.submit_trajectory(
                list(ctrl.joint_names), [0.1, 0.2], np.tile(ctrl.commanded.position, (2, 1)), now, now
            )

    # chunks keep coming before and after the press
    inputs = []
    rng = np.random.default_rng(0)
    for kind, _delay, mag, seed in events:
        cycle = int(rng.integers(0, 300))

        def apply(ctrl, now, kind=kind, mag=mag, seed=seed):
            names, times, pos, stamp = build_chunk(kind, mag, seed, now, ctrl.commanded.position, ctrl)
            return ctrl.submit_trajectory(names, times, pos, stamp, now)

        inputs.append(TimedInput(cycle, apply, "chunk"))
    trace = replay(c, inputs, 400, on_cycle=hook)
    assert_safe(c, trace)
    before = record["before"]
    expected = sample(c.streamer.plan_stop(before), c.dt) if not before.is_at_rest(1e-12) else before
    # the first command after the press is the first step of the time-optimal stop
    np.testing.assert_allclose(trace.positions[press_at], expected.position, atol=1e-9)
    np.testing.assert_allclose(trace.velocities[press_at], expected.velocity, atol=1e-9)
    assert trace.states[press_at] is SafetyState.ESTOP
    assert all(s is SafetyState.ESTOP for s in trace.states[press_at:])
    assert record["rejected"]
    # stopped within the jerk-limited stopping distance, and stays stopped
    moved = np.abs(trace.positions[press_at:] - before.position).max(axis=0)
    assert np.all(moved <= c.limits.max_stopping_distance() + 1e-9)
    assert np.all(trace.velocities[-1] == 0.0)
    assert c.log.counts["estop"] == 1


# ---------------------------------------------------------------------------------------- watchdog
@SETTINGS
@given(seed=st.integers(0, 2**16), speed=st.floats(0.5, 3.0), horizon=st.integers(3, 30))
def test_watchdog_stops_within_the_stopping_distance_when_chunks_stop(seed, speed, horizon):
    """A chunk the arm cannot keep up with, then silence: the watchdog fires while the arm still
    moves, and the arm comes to rest within the jerk-limited stopping distance of the limits."""
    c = make_controller(workspace_enabled=False, collision_enabled=False, command_timeout=0.05)
    rng = np.random.default_rng(seed)
    direction = rng.choice([-1.0, 1.0], size=c.n) * (rng.uniform(size=c.n) > 0.3)
    times = 0.05 * np.arange(1, horizon + 1)
    pos = READY + np.outer(times, direction * c.limits.velocity * speed)
    fired = {}

    def hook(k, now, ctrl):
        if k == 0:
            assert ctrl.submit_trajectory(list(ctrl.joint_names), times, pos, now, now)
        if "at" not in fired and ctrl.log.counts["watchdog"] > 0:
            fired["at"] = k

    trace = replay(c, [], int((times[-1] + 1.5) / c.dt), on_cycle=hook)
    assert_safe(c, trace)
    assert "at" in fired, "watchdog did not fire"
    k = fired["at"] - 1  # the update that fired the watchdog (seen by the hook one cycle later)
    start = trace.positions[k - 1]  # last tracked command; update k is the first step of the stop
    moved = np.abs(trace.positions[k:] - start).max(axis=0)
    assert np.all(moved <= c.limits.max_stopping_distance() + 1e-9), (moved, c.limits.max_stopping_distance())
    assert np.all(trace.velocities[-1] == 0.0)
    assert c.state is SafetyState.HOLDING
    deadline = 100.0 + times[-1] + c.config.command_timeout
    assert trace.times[k] <= deadline + c.dt + 1e-9


@SETTINGS
@given(q1=st.floats(-1.0, 1.0), speed=st.floats(0.2, 1.0))
def test_teleop_watchdog_stops_within_the_stopping_distance(q1, speed):
    c = make_controller(workspace_enabled=False, collision_enabled=False)
    velocity = 3 * speed * (1.0 if q1 >= 0 else -1.0)
    inputs = [
        TimedInput(k, lambda ctrl, now: ctrl.on_joint_jog(["panda_joint1"], [velocity], now), "jog")
        for k in range(0, 60, 4)
    ]
    trace = replay(c, inputs, 200)
    assert_safe(c, trace)
    last_input = 56 + int(c.config.teleop_timeout / c.dt)
    stop_start = trace.positions[last_input]
    moved = np.abs(trace.positions[last_input:] - stop_start).max(axis=0)
    assert np.all(moved <= c.limits.max_stopping_distance() + 1e-9)
    assert np.all(trace.velocities[-1] == 0.0)
    assert c.log.counts["teleop_timeout"] == 1


@pytest.mark.parametrize("rate", [250.0, 500.0])
def test_chunk_boundaries_are_continuous_in_position_velocity_and_acceleration(rate):
    """Overlapping chunks that disagree at the boundary: the command stays C2 within the limits."""
    c = make_controller(control_rate=rate, workspace_enabled=False, collision_enabled=False)
    inputs = []
    rng = np.random.default_rng(3)
    for i in range(10):
        cycle = int(i * 0.1 / c.dt)
        offset = rng.normal(scale=0.03, size=c.n)

        def apply(ctrl, now, offset=offset, i=i):
            t = 0.05 * np.arange(0, 16)
            phase = 100.0 + i * 0.1 - 0.04 + t
            pos = READY + 0.3 * np.sin(phase - 100.0)[:, None] * np.ones(c.n) * 0.5 + offset
            return ctrl.submit_trajectory(list(ctrl.joint_names), t, pos, now - 0.04, now)

        inputs.append(TimedInput(cycle, apply, "chunk"))
    trace = replay(c, inputs, int(1.6 / c.dt))
    assert trace.accepted == 10
    assert_safe(c, trace)
