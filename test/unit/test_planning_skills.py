"""Skill set, Subtask JSON, text checks, interjections, slot extraction and plan parsing (no model)."""

from __future__ import annotations

import json
import math

import pytest

from vla_stack.core.contracts import (
    ExclusionRequest,
    encode_exclusion,
    encode_subtask,
    parse_exclusion,
    parse_subtask,
)
from vla_stack.core.planning.backends.base import PlanningState, attach_grounding, complete_arguments
from vla_stack.core.planning.parsing import PlanParseError, parse_plan_text
from vla_stack.core.planning.skills import SKILLS, Subtask, normalize_skill_name, plan_summary
from vla_stack.core.planning.text import check_instruction_text, classify_interjection, extract_slots


# ------------------------------------------------------------------------------- skills / Subtask
def test_skill_set_is_the_agreed_one():
    assert set(SKILLS) == {"pick", "place", "open_gripper", "close_gripper", "go_home", "hand_over", "wait"}


def test_subtask_json_round_trip_keeps_every_field():
    s = Subtask(
        "pick", {"object": "red-highlighted cup", "position": [0.5, 0.1, 0.04], "frame_id": "panda_link0"},
        index=0, status="active", plan_size=2, attempt=2, plan_id=7, instruction="bring the cup", reason="retry",
    )
    text = encode_subtask(s.to_message())
    data = json.loads(text)
    assert data["skill"] == "pick" and data["status"] == "active" and data["index"] == 0
    assert data["arguments"]["position"] == [0.5, 0.1, 0.04]
    back = Subtask.from_message(parse_subtask(text))
    assert back == s
    assert back.description == "pick up the red-highlighted cup"


def test_subtask_from_json_ignores_unknown_keys_and_normalises_aliases():
    s = Subtask.from_message(parse_subtask('{"skill": "Pick-Up", "arguments": {"object": "mug"}, "future_field": 1}'))
    assert s.skill == "pick" and s.arguments == {"object": "mug"}
    assert normalize_skill_name("goHome") == "go_home"
    assert normalize_skill_name("handover") == "hand_over"


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"skill": "fly", "arguments": {}}, "unknown skill 'fly'"),
        ({"skill": "pick", "arguments": {}}, "missing argument"),
        ({"skill": "place", "arguments": {"object": "cup"}}, "missing argument"),
        ({"skill": "pick", "arguments": {"object": "cup", "position": [0, float("nan"), 0]}}, "NaN"),
        ({"skill": "pick", "arguments": {"object": "cup", "position": [0, 0]}}, "3 numbers"),
        ({"skill": "wait", "arguments": {"seconds": -1}}, "0..3600"),
        ({"skill": "wait", "status": "running"}, "status must be one of"),
        ({"skill": "wait", "index": -1}, "index >= 0"),
        ({"skill": "pick", "arguments": {"object": {"nested": 1}}}, "must be text or a number"),
        ({"arguments": {}}, "needs a 'skill'"),
    ],
)
def test_subtask_rejects_bad_values_with_a_reason(data, needle):
    with pytest.raises(ValueError, match=needle):
        Subtask.from_dict(data)


def test_subtask_from_json_rejects_garbage_text():
    for text in ("", "not json", "[1, 2]", "null"):
        with pytest.raises(ValueError):
            Subtask.from_message(parse_subtask(text))


def test_same_step_ignores_positions():
    a = Subtask("pick", {"object": "cup", "position": [0.5, 0.1, 0.0]})
    b = Subtask("pick", {"object": "cup", "position": [0.6, 0.1, 0.0]})
    c = Subtask("pick", {"object": "mug"})
    assert a.same_step(b) and not a.same_step(c)
    assert plan_summary([a, Subtask("place", {"object": "cup", "target": "tray"})]) == "pick(cup) -> place(cup, tray)"


def test_exclusion_request_json_round_trip():
    req = ExclusionRequest(((0.5, 0.1, 0.04),), 0.05, "panda_link0", "cup", "bring the cup", 12.5, "user: not that one")
    data = json.loads(encode_exclusion(req))
    assert data["exclusions"] == [{"position": [0.5, 0.1, 0.04], "radius": 0.05}]
    assert parse_exclusion(encode_exclusion(req)) == req
    with pytest.raises(ValueError):
        parse_exclusion('{"exclusions": [{"position": [1, 2]}]}')


# ------------------------------------------------------------------------------- text
@pytest.mark.parametrize(
    "text, kind",
    [
        ("stop", "stop"), ("Stop!", "stop"), ("halt", "stop"), ("please stop now", "stop"),
        ("wait", "wait"), ("hold on", "wait"), ("wait a second", "wait"), ("pause", "wait"),
        ("continue", "continue"), ("ok, go on", "continue"), ("resume please", "continue"),
        ("cancel", "cancel"), ("never mind", "cancel"), ("abort", "cancel"),
        ("not that one", "not_that_one"), ("No, not that one!", "not_that_one"), ("wrong cup", "not_that_one"),
        ("that's not mine", "not_that_one"), ("the other one", "not_that_one"),
        ("put it back", "put_back"), ("Put the cup back where it was", "put_back"), ("undo", "put_back"),
        ("bring my cup to the tray", None), ("wait until the cup is dry and then bring it", None),
        ("stop the music and bring my cup", None), ("", None),
    ],
)
def test_interjections(text, kind):
    assert classify_interjection(text) == kind


def test_interjection_of_non_text_is_none():
    assert classify_interjection(None) is None and classify_interjection(b"stop") is None


@pytest.mark.parametrize(
    "text, needle",
    [
        (None, "not text"), (b"bring", "not text"), ("", "empty"), ("   \n", "empty"),
        ("x" * 600, "characters long"), ("bring \x00\x01 cup", "control characters"), ("\ufffd\ufffd cup", "control"),
        ("12345 !!! ###", "no words"), ("a1 b2 c3 d4 e5 f6 7 8 9 0 11 22 33", "mostly not letters"),
        ("xkcd bzzt", "pronounceable"),
    ],
)
def test_garbage_text_is_refused_with_a_reason(text, needle):
    reason = check_instruction_text(text)
    assert reason is not None and needle in reason


def test_normal_instructions_pass_the_text_check():
    for text in ("bring my cup to the tray", "go home", "Öffne den Greifer", "wait 3 seconds"):
        assert check_instruction_text(text) is None, text


@pytest.mark.parametrize(
    "text, obj, target, recipient, seconds",
    [
        ("bring the red-highlighted cup to the tray", "red-highlighted cup", "tray", None, None),
        ("Bring my cup to the tray, please", "cup", "tray", None, None),
        ("pick up the blue bottle", "blue bottle", None, None, None),
        ("hand me my cup", "cup", None, "me", None),
        ("bring the mug to me", "mug", None, "me", None),
        ("put the cup on top of the plate", "cup", "plate", None, None),
        ("take the mug and put it in the box", "mug", "box", None, None),
        ("wait 3 seconds", None, None, None, 3.0),
        ("wait two minutes", None, None, None, 120.0),
        ("open the gripper", None, None, None, None),
    ],
)
def test_slot_extraction(text, obj, target, recipient, seconds):
    s = extract_slots(text)
    assert (s.object, s.target, s.recipient, s.seconds) == (obj, target, recipient, seconds)


# ------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "text",
    [
        '{"plan": [{"skill": "pick", "arguments": {"object": "cup"}}, {"skill": "place", "arguments": {"object": "cup", "target": "tray"}}]}',
        'Sure! Here is the plan:\n```json\n[{"skill": "pick", "object": "cup"}, {"skill": "place", "object": "cup", "target": "tray"}]\n```',
        '{"steps": ["pick(cup)", "place(cup, tray)"]}',
        '{"subtasks": [{"action": "grasp", "args": {"object": "cup"}}, {"action": "put", "params": {"target": "tray"}}]}',
        'The answer is {"plan": [{"skill": "pick", "arguments": {"object": "cup"}}, {"skill": "place", "arguments": {"target": "tray"}}]} ok',
    ],
)
def test_parse_common_plan_shapes(text):
    steps = parse_plan_text(text)
    subtasks = complete_arguments(steps, extract_slots("bring the cup to the tray"))
    assert [s.skill for s in subtasks] == ["pick", "place"]
    assert subtasks[0].arguments["object"] == "cup"
    assert subtasks[1].arguments["object"] == "cup" and subtasks[1].arguments["target"] == "tray"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty model output"),
        ("I would pick up the cup and then put it down.", "no JSON plan"),
        ('{"plan": [{"skill": "fly", "arguments": {}}]}', "unknown skill 'fly'"),
        ('{"plan": []}', "empty plan"),
        ('{"plan": [' + ",".join(['{"skill": "wait"}'] * 13) + "]}", "max 12"),
        ('{"plan": [{"skill": "pick", "arguments": {"object": "cup", "position": [1, "x", 2]}}]}', "3 numbers"),
        ('{"plan": [{"skill": "wait", "arguments": {"seconds": 1e9}}]}', "0..3600"),
        ('{"plan": [42]}', "not an object"),
        ('{"plan": [{"object": "cup"}]}', "has no 'skill'"),
        ('{"plan": [{"skill": "pick", "arguments": {"object": "cu', "no JSON plan"),
    ],
)
def test_parse_refuses_bad_output_with_a_reason(text, needle):
    with pytest.raises(PlanParseError, match=needle):
        parse_plan_text(text)


def test_attach_grounding_indexes_and_adds_the_grasp_point():
    steps = complete_arguments([("pick", {}), ("place", {})], extract_slots("bring the cup to the tray"))
    plan = attach_grounding(steps, PlanningState(object_position=(0.5, 0.1, 0.04), frame_id="panda_link0"))
    assert [s.index for s in plan] == [0, 1] and all(s.plan_size == 2 for s in plan)
    assert plan[0].arguments["position"] == [0.5, 0.1, 0.04] and plan[0].arguments["frame_id"] == "panda_link0"
    assert "position" not in plan[1].arguments
    assert all(math.isfinite(v) for v in plan[0].arguments["position"])


def test_rewrite_matching():
    from vla_stack.core.planning.text import rewrite_matches

    assert rewrite_matches("bring my cup to the tray", "bring the red-highlighted cup to the tray")
    assert rewrite_matches("pick up the blue bottle", "pick up the blue bottle")
    assert not rewrite_matches("sing a song", "bring the red-highlighted cup to the tray")
    assert not rewrite_matches("put my mug on the plate", "bring the red-highlighted cup to the tray")
