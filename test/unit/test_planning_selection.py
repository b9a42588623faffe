"""Resolving grounding's "ambiguous" from the user (issue 13, build 2), planner side: parsing
which candidate the user means (core/planning/selection.py), the candidates read from
grounding's status, and the TaskPlanner turning a choice into a SelectionRequest for grounding
(and refusing what fits nothing, changing nothing)."""

from __future__ import annotations

import pytest
from planning_helpers import FakeClock, run, target

from vla_stack.core.contracts import encode_selection, parse_selection
from vla_stack.core.planning import MonitorConfig, OfflinePlanner, TaskPlanner, TaskPlannerConfig
from vla_stack.core.planning.monitor import grounding_status_from_report
from vla_stack.core.planning.selection import (
    GroundingChoice,
    check_choice,
    describe_candidates,
    grounding_choice_from_report,
    parse_choice,
    positional_labels,
)

OPEN = 0.08


@pytest.mark.parametrize("text, selector, index", [
    ("the left one", "left", None),
    ("The left one!", "left", None),
    ("left", "left", None),
    ("left one", "left", None),
    ("the one on the left", "left", None),
    ("the cup on the left", "left", None),
    ("the mug on the left side", "left", None),
    ("on the left", "left", None),
    ("the leftmost mug", "left", None),
    ("no, the left one please", "left", None),
    ("take the left one", "left", None),
    ("it's the left one", "left", None),
    ("the left cup is mine", "left", None),
    ("the right one", "right", None),
    ("the one on the right", "right", None),
    ("right one", "right", None),
    ("the rightmost cup", "right", None),
    ("the middle one", "middle", None),
    ("the one in the middle", "middle", None),
    ("the centre one", "middle", None),
    ("the center mug", "middle", None),
    ("the nearest one", "nearest", None),
    ("the closest one", "nearest", None),
    ("the closest cup", "nearest", None),
    ("the one closest to you", "nearest", None),
    ("the cup in front", "nearest", None),
    ("the farthest one", "farthest", None),
    ("the furthest mug", "farthest", None),
    ("the one at the back", "farthest", None),
    ("the first one", "ordinal", 0),
    ("the second one", "ordinal", 1),
    ("the third one", "ordinal", 2),
    ("the 2nd cup", "ordinal", 1),
    ("second", "ordinal", 1),
    ("the second one from the left", "ordinal", 1),
    ("number two", "ordinal", 1),
    ("number 3", "ordinal", 2),
    ("the last one", "ordinal", -1),
    ("the first from the right", "ordinal", -1),
    ('{"select": 1}', "index", 1),
    ('{"select": 0}', "index", 0),
])
def test_choices_are_understood_in_many_phrasings(text, selector, index):
    c = parse_choice(text)
    assert c.understood, (text, c)
    assert (c.selector, c.index) == (selector, index), (text, c)
    assert not c.confirm


@pytest.mark.parametrize("text", ["yes", "Yes!", "yes, that one", "yeah this one", "this one", "that one",
                                  "that's it", "that's the one", "that's mine", "yes please", "correct"])
def test_yes_this_one_is_a_confirmation(text):
    c = parse_choice(text)
    assert c.understood and c.confirm and c.selector == "only", (text, c)


def test_a_click_with_a_box():
    c = parse_choice('{"select": {"box": [10, 20, 60, 90]}}')
    assert c.understood and c.selector == "box" and c.box == (10.0, 20.0, 60.0, 90.0)


@pytest.mark.parametrize("text, needle", [
    ("the purple one", "not a choice I can resolve"),
    ("the big one", "not a choice I can resolve"),
    ("the one with the dots", "not a choice I can resolve"),
    ("the shiny mug", "not a choice I can resolve"),
    ("the second from the right", "count from the left"),
    ('{"select": -1}', "click not understood"),
    ('{"select": "left"}', "click not understood"),
    ("{garbage", "click not understood"),
])
def test_what_looks_like_a_choice_but_names_nothing_resolvable_says_why(text, needle):
    c = parse_choice(text)
    assert c.kind == "not_understood" and needle in c.reason, (text, c)
    assert "left one" in c.reason or "click" in c.reason  # says what to say instead


@pytest.mark.parametrize("text", ["bring my cup to the tray", "put the left cup on the tray", "wait", "stop", "", "   ",
                                  "asdf qwer", "\x00\x07", "x" * 500, None, 42, b"\xff\xfe", "purple",
                                  "what is the weather today", "pick up the cup"])
def test_instructions_garbage_and_other_feedback_are_not_choices(text):
    assert parse_choice(text).kind == "none", text


def test_positions_and_the_question_name_candidates_left_to_right():
    boxes = [(400, 20, 450, 90), (10, 20, 60, 90)]
    assert positional_labels(boxes) == ["right", "left"]
    assert describe_candidates(boxes, [0.90, 0.91]) == "left 0.91, right 0.90"
    three = [(200, 0, 250, 9), (10, 0, 60, 9), (400, 0, 450, 9)]
    assert positional_labels(three) == ["middle", "left", "right"]
    assert positional_labels([(0, 0, 1, 1)] * 4)[3] == "4th from the left"
    q = GroundingChoice("ambiguous", tuple(boxes), (0.90, 0.91), "my_mug", "cup", 4).question()
    assert q == "I can't tell which cup is yours: 2 candidates, left 0.91, right 0.90 — which one?"
    one = GroundingChoice("not_found", ((10, 20, 60, 90),), (0.93,), "my_mug", "cup", 4)
    assert "is it this one" in one.question() and "yes, that one" in one.question()


def test_check_choice_against_the_number_of_candidates():
    assert check_choice(parse_choice("the left one"), 2) is None
    assert "only one candidate" in check_choice(parse_choice("the left one"), 1)
    assert "no middle one" in check_choice(parse_choice("the middle one"), 2)
    assert check_choice(parse_choice("the middle one"), 3) is None
    assert "only 3 candidates" in check_choice(parse_choice("the fourth one"), 3)
    assert "does not exist" in check_choice(parse_choice('{"select": 5}'), 2)
    assert "no candidates" in check_choice(parse_choice("the left one"), 0)


def report(status="ambiguous", boxes="10,20,60,90:0.9100;400,20,450,90:0.9000", generation=4):
    values = {"status": status, "reason": f"my_mug: {status} (cannot tell which one is mine)", "object": "my_mug",
              "category": "cup", "generation": str(generation)}
    if boxes:
        values["candidate_boxes"] = boxes
    return {"grounding": {"level": "WARN", "message": f"{status}: ...", "values": values}}


def test_candidates_are_read_from_the_grounding_status():
    c = grounding_choice_from_report(report())
    assert c is not None and c.count == 2 and c.generation == 4 and c.object == "my_mug" and c.category == "cup"
    assert c.boxes[0] == (10.0, 20.0, 60.0, 90.0) and c.scores == (0.91, 0.90)
    assert grounding_choice_from_report(report("found")) is None
    assert grounding_choice_from_report(report(boxes="")) is None
    assert grounding_choice_from_report(report(boxes="1,2,3:0.9")) is None  # malformed: ignored, never raises
    assert grounding_choice_from_report(report("not_found")) is None  # two candidates, none proposed
    assert grounding_choice_from_report(report("not_found", boxes="10,20,60,90:0.93")).count == 1


# ---------------------------------------------------------------------------------------- planner
@pytest.fixture(scope="module")
def backend() -> OfflinePlanner:
    b = OfflinePlanner()
    b.warm_up()
    return b


def ambiguous_pick(backend):
    """A planner whose pick waits on grounding's "ambiguous" with two candidates (generation 4)."""
    clock = FakeClock()
    planner = TaskPlanner(backend, TaskPlannerConfig(grounding_wait=1.0), MonitorConfig(grounding_timeout=60.0), clock=clock)
    run(planner, clock, 0.2, OPEN, 0.0)
    assert planner.on_instruction("bring my cup to the tray")
    rep = report()
    planner.on_grounding_status(*grounding_status_from_report(rep), choice=grounding_choice_from_report(rep))
    run(planner, clock, 1.2, OPEN, 0.0)  # grounding never rewrites (nothing highlighted): the raw instruction is planned
    assert planner.plan_now() is not None
    run(planner, clock, 0.5, OPEN, 0.0)
    assert planner.current_subtask().skill == "pick" and planner.current_subtask().status == "waiting"
    return planner, clock


def test_the_planner_asks_which_one_and_turns_the_left_one_into_a_selection(backend):
    planner, clock = ambiguous_pick(backend)
    status = planner.status()
    question = "I can't tell which cup is yours: 2 candidates, left 0.91, right 0.90 — which one?"
    assert status.values["question"] == question and status.message == question and status.level == "WARN"
    assert planner.selection_request() is None and planner.selection_version == 0
    assert planner.on_feedback("the left one")
    req = planner.selection_request()
    assert planner.selection_version == 1 and req is not None
    assert (req.selector, req.object, req.generation, req.source, req.text) == ("left", "my_mug", 4, "user", "the left one")
    assert parse_selection(encode_selection(req)) == req
    assert "choosing the left one among 2 candidate(s)" in planner.last_event.message
    # grounding answers found with the left candidate: the pick resumes, the question is gone
    planner.on_grounding_status("found", "my_mug: found (user chose the left one)")
    planner.on_grounding_target(target(0.5, -0.08, 0.05))
    run(planner, clock, 0.5, OPEN, 0.0)
    s = planner.current_subtask()
    assert s.skill == "pick" and s.status == "active", s
    assert s.arguments["position"][:2] == [0.5, -0.08]
    assert planner.status().values["question"] == ""


@pytest.mark.parametrize("text, needle", [
    ("the purple one", "not understood"),
    ("the middle one", "no middle one among 2"),
    ("the third one", "only 2 candidates"),
    ('{"select": 7}', "does not exist"),
    ("yes, that one", "which one?"),
    ('{"select": "x"}', "click not understood"),
])
def test_a_choice_that_fits_nothing_is_reported_and_changes_nothing(backend, text, needle):
    planner, clock = ambiguous_pick(backend)
    before = (planner.state, planner.plan_id, planner.current_subtask(), len(planner.exclusions))
    assert not planner.on_feedback(text)
    assert needle in planner.last_event.message and planner.last_event.level == "WARN", planner.last_event
    assert "nothing changed" in planner.last_event.message or "which one?" in planner.last_event.message
    assert planner.selection_request() is None and planner.selection_version == 0
    assert (planner.state, planner.plan_id, planner.current_subtask(), len(planner.exclusions)) == before
    assert planner.rejected_instructions == 0  # not taken for a (garbage) instruction either


def test_a_click_and_an_ordinal_become_selections(backend):
    planner, _ = ambiguous_pick(backend)
    assert planner.on_feedback('{"select": 1}')
    assert (planner.selection_request().selector, planner.selection_request().index) == ("index", 1)
    assert planner.on_instruction("the second one")  # said on task/instruction: still a choice, not a new task
    assert (planner.selection_request().selector, planner.selection_request().index) == ("ordinal", 1)
    assert planner.selection_version == 2 and planner.instruction == "bring my cup to the tray"


def test_without_a_question_a_choice_changes_nothing_and_yes_confirms_the_found_object(backend):
    clock = FakeClock()
    planner = TaskPlanner(backend, TaskPlannerConfig(), MonitorConfig(), clock=clock)
    run(planner, clock, 0.2, OPEN, 0.0)
    assert not planner.on_feedback("the left one")  # no task, nothing asked
    assert "nothing to choose" in planner.last_event.message and planner.selection_request() is None
    assert planner.on_instruction("bring my cup to the tray")
    planner.on_grounding_status("found")
    planner.on_grounding_target(target())
    assert not planner.on_feedback("the right one")  # grounding found it: nothing to choose
    assert "grounding is not asking" in planner.last_event.message and planner.selection_version == 0
    assert planner.on_feedback("yes, that one")  # a confirmation of the highlighted object
    assert planner.selection_request().selector == "current" and planner.selection_version == 1


def test_a_lone_candidate_grounding_would_not_accept_can_be_confirmed(backend):
    clock = FakeClock()
    planner = TaskPlanner(backend, TaskPlannerConfig(), MonitorConfig(grounding_timeout=60.0), clock=clock)
    run(planner, clock, 0.2, OPEN, 0.0)
    assert planner.on_instruction("bring my cup to the tray")
    rep = report("not_found", boxes="200,20,250,90:0.9300")
    planner.on_grounding_status(*grounding_status_from_report(rep), choice=grounding_choice_from_report(rep))
    assert "is it this one" in planner.status().values["question"]
    assert not planner.on_feedback("the left one")  # one candidate: left of what?
    assert "only one candidate" in planner.last_event.message
    assert planner.on_feedback("yes")
    assert planner.selection_request().selector == "only" and planner.selection_request().generation == 4
