"""TaskPlanner state machine on an injected clock: grounding wait, monitoring, grasp retries,
replanning, interjections, memory and garbage. Real offline backend (model loaded once)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from planning_helpers import TRAY_CUP, FakeClock, joint_state, run, target

from vla_stack.core.contracts import encode_exclusion, encode_subtask
from vla_stack.core.kinematics.assets import PANDA_READY_POSE
from vla_stack.core.planning import MonitorConfig, OfflinePlanner, TaskPlanner, TaskPlannerConfig
from vla_stack.core.planning.backends.base import PlannerBackend, PlanResult
from vla_stack.core.types import JointState, Wrench

OPEN, HOLD, EMPTY = 0.08, 0.06, 0.0
"""Gripper widths: open, closed on a 6 cm mug, closed on nothing (m)."""


@pytest.fixture(scope="module")
def backend() -> OfflinePlanner:
    b = OfflinePlanner()
    b.warm_up()
    return b


def make(backend, **config):
    clock = FakeClock()
    planner = TaskPlanner(backend, TaskPlannerConfig(**config), MonitorConfig(), clock=clock)
    run(planner, clock, 0.3, OPEN, 0.0)
    return planner, clock


def start_task(planner, clock, instruction="bring my cup to the tray", rewritten=TRAY_CUP, pos=(0.5, 0.1, 0.045)):
    """Instruction -> grounding found + target + rewrite -> plan installed."""
    assert planner.on_instruction(instruction)
    assert planner.state == "grounding"
    planner.on_grounding_status("found")
    planner.on_grounding_target(target(*pos))
    clock.advance(0.2)
    planner.on_grounding_instruction(rewritten)
    assert planner.state == "planning"
    result = planner.plan_now()
    assert result is not None and result.ok, result
    planner.step()
    return result


def grasp(planner, clock):
    run(planner, clock, 0.5, OPEN, 0.0)
    run(planner, clock, 0.6, HOLD, 6.0)


def release(planner, clock, seen_at=None):
    run(planner, clock, 0.6, OPEN, 0.0)
    if planner.current_subtask() is not None and planner.current_subtask().skill == "place":
        # released, but not done yet: the expert moves the hand clear for place_clear_time (2 s)
        assert planner.current_subtask().status == "active"
    if seen_at is not None:  # grounding sees the placed object again as the hand moves clear
        planner.on_grounding_target(target(*seen_at))
    run(planner, clock, 1.8, OPEN, 0.0)


# ------------------------------------------------------------------------------------ happy path
def test_full_task_then_repeated_instruction_is_not_redone(backend):
    planner, clock = make(backend)
    assert planner.current_subtask() is None  # nothing published before a plan
    start_task(planner, clock)
    s = planner.current_subtask()
    assert (s.skill, s.status, s.index, s.plan_size) == ("pick", "active", 0, 2)
    assert s.arguments["position"] == [0.5, 0.1, 0.045]
    assert json.loads(encode_subtask(s.to_message()))["instruction"] == TRAY_CUP
    grasp(planner, clock)
    s = planner.current_subtask()
    assert (s.skill, s.status) == ("place", "active")
    release(planner, clock, seen_at=(0.45, 0.35, 0.045))
    assert planner.state == "done" and planner.current_subtask().status == "done"
    assert planner.status().level == "OK" and "task done" in planner.status().message
    plan_id = planner.plan_id

    # the same instruction again: remembered, nothing redone
    planner.on_instruction("bring my cup to the tray")
    clock.advance(0.1)
    planner.on_grounding_instruction(TRAY_CUP)
    planner.plan_now()
    assert planner.plan_id == plan_id and planner.state == "done"
    assert "already done" in planner.status().message

    # ... unless the object was moved since: then it is redone
    planner.on_grounding_target(target(0.3, -0.2, 0.045))
    planner.on_instruction("bring my cup to the tray")
    clock.advance(0.1)
    planner.on_grounding_instruction(TRAY_CUP)
    planner.plan_now()
    assert planner.plan_id == plan_id + 1 and planner.state == "executing"


def test_grounding_silence_plans_the_raw_instruction_after_the_wait(backend):
    planner, clock = make(backend, grounding_wait=2.0)
    planner.on_instruction("bring my cup to the tray")
    run(planner, clock, 1.5, OPEN, 0.0)
    assert planner.state == "grounding" and not planner.has_job()
    run(planner, clock, 0.6, OPEN, 0.0)
    assert planner.state == "planning"
    assert "within 2 s" in planner.status().message
    planner.plan_now()
    assert planner.plan[0].arguments["object"] == "cup"  # from the raw text


def test_no_reference_from_grounding_plans_at_once(backend):
    planner, clock = make(backend)
    planner.on_instruction("pick up the blue bottle")
    clock.advance(0.1)
    planner.on_grounding_status("no_reference")
    assert planner.state == "planning"
    planner.plan_now()
    assert [s.skill for s in planner.plan] == ["pick"]


def test_without_grounding_the_instruction_is_planned_immediately(backend):
    planner, clock = make(backend, use_grounding=False)
    planner.on_instruction("bring my cup to the tray")
    assert planner.state == "planning"
    planner.plan_now()
    assert [s.skill for s in planner.plan] == ["pick", "place"]


# ------------------------------------------------------------------------------------ failures
def test_missed_grasp_is_retried_a_bounded_number_of_times(backend):
    planner, clock = make(backend, max_grasp_retries=2)
    start_task(planner, clock)
    for attempt in (2, 3):
        run(planner, clock, 0.5, OPEN, 0.0)
        run(planner, clock, 0.6, EMPTY, 0.0)
        s = planner.current_subtask()
        assert (s.skill, s.status, s.attempt) == ("pick", "active", attempt)
        assert "grasp missed" in s.reason
    run(planner, clock, 0.5, OPEN, 0.0)
    run(planner, clock, 0.6, EMPTY, 0.0)
    assert planner.state == "failed"
    status = planner.status()
    assert status.level == "ERROR" and "after 3 attempts" in status.message
    assert planner.current_subtask().status == "failed"
    # a failed grasp is only judged after the gripper opened: a closed gripper at the start is not a miss
    planner.on_feedback("continue")
    assert planner.state == "executing" and planner.current_subtask().attempt == 1
    run(planner, clock, 1.0, EMPTY, 0.0)
    assert planner.state == "executing" and planner.current_subtask().status == "active"


def test_drop_during_place_triggers_a_replan(backend):
    planner, clock = make(backend)
    start_task(planner, clock)
    grasp(planner, clock)
    assert planner.current_subtask().skill == "place"
    run(planner, clock, 0.6, EMPTY, 0.0)  # fingers close on nothing: the mug slipped out
    assert planner.state == "planning" and planner.replans == 1
    assert planner.current_subtask().status == "failed" and "dropped" in planner.current_subtask().reason
    old_id = planner.plan_id
    planner.plan_now()
    assert planner.plan_id == old_id + 1
    assert [s.skill for s in planner.plan] == ["pick", "place"]


def test_timeout_fails_a_stuck_subtask():
    clock = FakeClock()
    planner = TaskPlanner(_Fixed([("go_home", {})]), TaskPlannerConfig(max_replans=0, grounding_wait=3.0),
                          MonitorConfig(subtask_timeout=5.0), clock=clock)
    planner.on_instruction("go home")
    clock.advance(4.0)
    planner.step()
    planner.plan_now()
    far = tuple(v + 0.5 for v in PANDA_READY_POSE)
    run(planner, clock, 4.0, OPEN, arm=far)
    assert planner.state == "executing"
    run(planner, clock, 1.5, OPEN, arm=far)
    assert planner.state == "failed" and "timed out" in planner.status().message
    # at home it completes
    planner.on_feedback("continue")
    run(planner, clock, 0.6, OPEN)
    assert planner.state == "done"


def test_pick_waits_for_grounding_and_fails_when_it_never_finds_the_object(backend):
    clock = FakeClock()
    planner = TaskPlanner(backend, TaskPlannerConfig(), MonitorConfig(grounding_timeout=3.0, grounding_grace=0.0),
                          clock=clock)
    run(planner, clock, 0.2, OPEN, 0.0)
    start_task(planner, clock)
    planner.on_grounding_status("not_found", "no candidate matched the reference")
    run(planner, clock, 1.0, OPEN, 0.0)
    s = planner.current_subtask()
    assert s.status == "waiting" and "not found" in s.reason and "no candidate" in s.reason
    assert planner.status().level == "WARN"
    planner.on_grounding_status("found")
    run(planner, clock, 0.3, OPEN, 0.0)
    assert planner.current_subtask().status == "active"
    planner.on_grounding_status("ambiguous")
    run(planner, clock, 3.5, OPEN, 0.0)
    assert planner.current_subtask().skill == "pick" and planner.current_subtask().attempt == 2  # retried after timeout


def test_pick_reports_an_ambiguous_grounding_with_its_candidates(backend):
    """Grounding's "ambiguous" status (decision per_object: two candidates too close to call) reaches
    the planner with the candidates' scores, and the pick waits, saying which ones, instead of grasping."""
    from vla_stack.core.planning.monitor import grounding_status_from_report

    clock = FakeClock()
    planner = TaskPlanner(backend, TaskPlannerConfig(), MonitorConfig(grounding_timeout=30.0, grounding_grace=0.0),
                          clock=clock)
    run(planner, clock, 0.2, OPEN, 0.0)
    start_task(planner, clock)
    reason = ("my_mug: ambiguous (cannot tell which one is mine: best 0.951 beats the next 0.948 by 0.003 < this "
              "object's margin 0.020 (candidates: #0 0.951, #2 0.948, #1 0.700))")
    report = {"grounding": {"level": "WARN", "message": f"ambiguous: {reason}",
                            "values": {"status": "ambiguous", "reason": reason, "candidates": "0.9510,0.7000,0.9480",
                                       "candidate_boxes": "10,20,60,90:0.9510;200,20,250,90:0.7000;400,20,450,90:0.9480"}}}
    planner.on_grounding_status(*grounding_status_from_report(report))
    run(planner, clock, 1.0, OPEN, 0.0)
    s = planner.current_subtask()
    assert s.skill == "pick" and s.status == "waiting", s
    assert "ambiguous" in s.reason and "#0 0.951, #2 0.948" in s.reason
    assert planner.status().level == "WARN"


# ------------------------------------------------------------------------------------ garbage
@pytest.mark.parametrize("text", ["asdf qwer", "", "\x00\xff\x01", "x" * 1000, None, "what is the weather today"])
def test_garbage_instruction_is_reported_and_nothing_is_planned(backend, text):
    planner, clock = make(backend, grounding_wait=3.0)
    planner.on_instruction(text)
    for _ in range(5):  # no grounding answers: after the wait the language model decides
        clock.advance(1.0)
        planner.step()
        if planner.has_job():
            planner.plan_now()
    assert planner.state == "rejected"
    assert planner.current_subtask() is None and planner.plan == []
    status = planner.status()
    assert status.level == "ERROR" and "nothing planned" in status.message
    assert status.values["rejected_instructions"] == 1


def test_garbage_during_a_task_leaves_the_task_running(backend):
    planner, clock = make(backend)
    start_task(planner, clock)
    planner.on_instruction("\x00\x00garbage")
    assert planner.state == "executing" and planner.current_subtask().status == "active"
    assert planner.status().level == "WARN" and "current task continues" in planner.status().message
    # a replacement that the model does not understand leaves it running too
    planner.on_feedback("sing a song")
    assert planner.current_subtask().status == "paused"
    clock.advance(0.1)
    planner.on_grounding_instruction("sing a song")
    planner.plan_now()
    assert planner.state == "executing" and planner.current_subtask().status == "active"
    assert "previous task continues" in planner.status().message


def test_bad_sensor_values_are_rejected_and_the_last_good_ones_kept(backend):
    planner, clock = make(backend)
    bad = JointState(("panda_finger_joint1", "panda_finger_joint2"), np.array([np.nan, 0.04]))
    assert "NaN" in planner.on_joint_state(bad)
    assert "not in state" in planner.on_joint_state(JointState(("j1",), np.array([0.0])))
    assert "not finite" in planner.on_pad_force("left", float("inf"))
    assert "NaN" in planner.on_wrench(Wrench(np.array([np.nan, 0, 0]), np.zeros(3)))
    assert planner.world.gripper_width == pytest.approx(OPEN)
    planner.on_grounding_status("bogus")
    assert planner.world.grounding.status == ""


# ------------------------------------------------------------------------------------ interjections
def test_stop_and_continue_freeze_the_subtask_and_its_timers():
    clock = FakeClock()
    planner = TaskPlanner(_Fixed([("wait", {"seconds": 2.0})]), TaskPlannerConfig(use_grounding=False), clock=clock)
    planner.on_instruction("wait two seconds")
    planner.plan_now()
    run(planner, clock, 1.0, OPEN)
    planner.on_feedback("stop!")
    assert planner.paused and planner.current_subtask().status == "paused"
    assert planner.status().level == "WARN" and "stopped by the user" in planner.status().message
    run(planner, clock, 5.0, OPEN)
    assert planner.state == "executing"  # paused time does not count
    planner.on_feedback("continue")
    assert planner.current_subtask().status == "active"
    run(planner, clock, 0.8, OPEN)
    assert planner.state == "executing"
    run(planner, clock, 0.4, OPEN)
    assert planner.state == "done"


def test_wait_and_cancel(backend):
    planner, clock = make(backend)
    start_task(planner, clock)
    planner.on_feedback("hold on")
    assert planner.current_subtask().status == "paused" and "paused by the user" in planner.status().message
    planner.on_feedback("never mind")
    assert planner.state == "cancelled" and planner.current_subtask().status == "cancelled"
    assert not planner.paused
    run(planner, clock, 1.0, HOLD, 5.0)
    assert planner.state == "cancelled"  # nothing advances after a cancel


def test_not_that_one_before_the_grasp_excludes_and_waits_for_a_new_target(backend):
    planner, clock = make(backend)
    start_task(planner, clock, pos=(0.5, 0.1, 0.045))
    v = planner.exclusion_version
    planner.on_feedback("no, not that one")
    assert planner.exclusion_version == v + 1
    req = planner.exclusion_request()
    assert req.exclusions == ((0.5, 0.1, 0.045),) and req.object == "red-highlighted cup"
    assert json.loads(encode_exclusion(req))["exclusions"][0]["radius"] == pytest.approx(0.05)
    s = planner.current_subtask()
    assert s.skill == "pick" and s.status == "waiting" and "position" not in s.arguments
    # grounding still reports the excluded mug: keep waiting
    planner.on_grounding_target(target(0.5, 0.1, 0.045))
    run(planner, clock, 0.5, OPEN, 0.0)
    assert planner.current_subtask().status == "waiting" and "excluded" in planner.current_subtask().reason
    # another mug found: go for it
    planner.on_grounding_target(target(0.45, -0.15, 0.045))
    run(planner, clock, 0.3, OPEN, 0.0)
    s = planner.current_subtask()
    assert s.status == "active" and s.arguments["position"] == [0.45, -0.15, 0.045]
    grasp(planner, clock)
    release(planner, clock)
    assert planner.state == "done"
    # a new task clears the exclusions (grounding gets an empty set)
    planner.on_grounding_target(target(0.2, 0.3, 0.045))
    start_task(planner, clock, "pick up the blue bottle", "pick up the blue bottle", pos=(0.2, 0.3, 0.045))
    assert planner.exclusion_request().exclusions == ()


def test_not_that_one_while_holding_puts_it_back_first(backend):
    planner, clock = make(backend)
    start_task(planner, clock, pos=(0.5, 0.1, 0.045))
    grasp(planner, clock)
    assert planner.current_subtask().skill == "place"
    planner.on_grounding_target(target(0.5, 0.1, 0.2))  # grounding follows the lifted mug
    planner.on_feedback("that's not mine")
    skills = [(s.skill, s.arguments.get("target")) for s in planner.plan]
    assert skills == [("place", "where it was"), ("pick", None), ("place", "tray")]
    assert planner.plan[0].arguments["position"] == [0.5, 0.1, 0.045]  # where it was picked
    assert planner.exclusion_request().exclusions == ((0.5, 0.1, 0.045),)
    assert planner.current_subtask().status == "active"


def test_put_it_back_after_the_task_and_memory_is_forgotten(backend):
    planner, clock = make(backend)
    start_task(planner, clock, pos=(0.5, 0.1, 0.045))
    grasp(planner, clock)
    planner.on_grounding_target(target(0.3, -0.3, 0.045))  # now on the tray
    release(planner, clock)
    assert planner.state == "done"
    planner.on_feedback("put it back")
    assert [s.skill for s in planner.plan] == ["pick", "place"]
    assert planner.plan[0].arguments["position"] == [0.3, -0.3, 0.045]
    assert planner.plan[1].arguments["position"] == [0.5, 0.1, 0.045]
    grasp(planner, clock)
    planner.on_grounding_target(target(0.5, 0.1, 0.045))
    release(planner, clock)
    assert planner.state == "done"
    # the original instruction is no longer "already done"
    start_task(planner, clock, pos=(0.5, 0.1, 0.045))
    assert planner.state == "executing"


def test_put_it_back_with_nothing_moved_is_reported(backend):
    planner, clock = make(backend)
    planner.on_feedback("put it back")
    assert planner.current_subtask() is None and "nothing to put back" in planner.status().message


def test_new_instruction_replaces_the_running_task(backend):
    planner, clock = make(backend)
    start_task(planner, clock)
    grasp(planner, clock)
    planner.on_feedback("put the cup on the plate")
    assert planner.current_subtask().status == "paused"  # the old step holds while the new one is planned
    clock.advance(0.1)
    planner.on_grounding_instruction("put the red-highlighted cup on the plate")
    planner.plan_now()
    assert [(s.skill, s.arguments.get("target")) for s in planner.plan] == [("place", "plate")]  # already holding
    assert planner.current_subtask().status == "active"


def test_superseded_plan_is_dropped(backend):
    planner, clock = make(backend, use_grounding=False)
    planner.on_instruction("bring my cup to the tray")
    job = planner.take_job()
    planner.on_instruction("pick up the blue bottle")
    planner.run_job(job)  # finishes after the newer instruction arrived
    assert planner.plan == []
    planner.plan_now()
    assert [s.skill for s in planner.plan] == ["pick"]
    assert planner.plan[0].arguments["object"] == "blue bottle"


def test_handover_done_when_the_person_pulls():
    clock = FakeClock()
    planner = TaskPlanner(_Fixed([("hand_over", {"object": "cup"})]), TaskPlannerConfig(use_grounding=False), clock=clock)
    run(planner, clock, 0.3, HOLD, 5.0)
    planner.on_wrench(Wrench(np.array([0.0, 0.0, -2.5]), np.zeros(3)))
    planner.on_instruction("hand me the cup")
    planner.plan_now()
    run(planner, clock, 0.5, HOLD, 5.0)
    assert planner.state == "executing"
    planner.on_wrench(Wrench(np.array([6.0, 0.0, -2.5]), np.zeros(3)))
    run(planner, clock, 0.5, HOLD, 5.0)
    assert planner.state == "done"


def test_backend_exception_is_reported_not_raised():
    class Broken(_Fixed):
        def plan(self, request):
            raise RuntimeError("model exploded")

    clock = FakeClock()
    planner = TaskPlanner(Broken([]), TaskPlannerConfig(use_grounding=False), clock=clock)
    planner.on_instruction("go home")
    planner.plan_now()
    assert planner.state == "rejected" and "model exploded" in planner.status().message


class _Fixed(PlannerBackend):
    """Backend returning a fixed plan: isolates state-machine behaviour from language scoring."""

    name = "fixed"

    def __init__(self, steps):
        self.steps = steps

    def plan(self, request):
        from vla_stack.core.planning.backends.base import attach_grounding, complete_arguments
        from vla_stack.core.planning.text import extract_slots

        subtasks = complete_arguments(self.steps, extract_slots(request.instruction), request.instruction)
        return PlanResult(True, attach_grounding(subtasks, request.state), backend=self.name)

    def latent(self, instruction, subtask):
        return np.zeros(384, np.float32)


def test_fake_clock_helper_and_joint_state_helper_agree():
    js = joint_state(0.06)
    assert js.position_of(("panda_finger_joint1", "panda_finger_joint2")).sum() == pytest.approx(0.06)


def test_grounding_losing_the_object_in_the_hand_does_not_stall_the_pick(backend):
    planner, clock = make(backend)
    start_task(planner, clock)
    assert planner.current_subtask().skill == "pick"
    run(planner, clock, 0.5, OPEN, 0.0)
    # the fingers close on the mug; the camera loses it behind them at the same moment
    planner.on_grounding_status("not_found", "tracker lost the object")
    run(planner, clock, 0.6, HOLD, 6.0)
    s = planner.current_subtask()
    assert s.skill == "place" and s.status == "active", (s, planner.status().message)


def test_brief_grounding_loss_during_a_pick_is_tolerated_then_waited_for(backend):
    planner, clock = make(backend)
    start_task(planner, clock)
    run(planner, clock, 0.5, OPEN, 0.0)  # pick under way with a target
    planner.on_grounding_status("not_found", "tracker lost the object")
    run(planner, clock, 1.0, OPEN, 0.0)
    assert planner.current_subtask().status == "active"  # within the grace period
    run(planner, clock, 2.0, OPEN, 0.0)
    assert planner.current_subtask().status == "waiting"
    planner.on_grounding_status("found")
    planner.on_grounding_target(target())
    run(planner, clock, 0.3, OPEN, 0.0)
    assert planner.current_subtask().status == "active"


def test_go_home_goes_to_the_robot_profiles_ready_pose(tmp_path):
    """The monitor's arm joints, finger joints and home pose are the robot profile's."""
    import dataclasses

    from vla_stack.core.robot_profile import load_robot_profile

    panda = load_robot_profile("panda")
    other_home = tuple(v + 0.3 for v in panda.ready_pose)
    profile = dataclasses.replace(panda, ready_pose=other_home)
    clock = FakeClock()
    planner = TaskPlanner(_Fixed([("go_home", {})]), TaskPlannerConfig(max_replans=0, use_grounding=False),
                          MonitorConfig(), clock=clock, profile=profile)
    planner.on_instruction("go home")
    planner.plan_now()
    run(planner, clock, 1.0, OPEN)  # at the Panda's usual ready pose: not this robot's home
    assert planner.state == "executing"
    run(planner, clock, 1.0, OPEN, arm=other_home)
    assert planner.state == "done"


def test_the_monitor_refuses_a_robot_without_a_gripper():
    from vla_stack.core.robot_profile import load_robot_profile

    with pytest.raises(ValueError, match="'ur5e' has no gripper"):
        TaskPlanner(_Fixed([("go_home", {})]), TaskPlannerConfig(), profile=load_robot_profile("ur5e"))
