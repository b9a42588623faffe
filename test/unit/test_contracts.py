"""The JSON-on-String messages (vla_stack.core.contracts): one encoder and one parser each,
versioned, old (unversioned) recordings still readable, newer versions and bad JSON refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vla_stack.core import contracts as c
from vla_stack.core.planning.skills import Subtask
from vla_stack.core.sim.config import SceneConfig
from vla_stack.core.sim.robot import SimRobot

SRC = Path(__file__).resolve().parents[2] / "src" / "vla_stack"

EXAMPLES = [
    (c.SubtaskMessage("pick", {"object": "cup", "position": [0.5, 0.1, 0.04]}, 0, "active", 2, 1, 3, "pick up the cup",
                      "bring my cup", ""), c.encode_subtask, c.parse_subtask),
    (c.ExclusionRequest(((0.5, 0.1, 0.04),), 0.05, "panda_link0", "cup", "bring the cup", 12.5, "user: not that one"),
     c.encode_exclusion, c.parse_exclusion),
    (c.EnrollRequest("my_mug", "cup", ("/tmp/a.png", "/tmp/b.png"), ("my cup",), True), c.encode_enroll, c.parse_enroll),
    (c.EnrollRequest("my_mug", "cup", ("/tmp/a.png",), (), False, ("/tmp/not_mine.png",)), c.encode_enroll, c.parse_enroll),
    (c.SimReset(seed=3, num_mugs=4), c.encode_sim_reset, c.parse_sim_reset),
    (c.SimReset(seed=7), c.encode_sim_reset, c.parse_sim_reset),
    (c.SelectionRequest("left", object="my_mug", generation=7, stamp=12.5, text="the left one", instruction="bring my cup"),
     c.encode_selection, c.parse_selection),
    (c.SelectionRequest("box", None, (10.0, 20.0, 60.0, 90.0), generation=3), c.encode_selection, c.parse_selection),
    (c.SelectionRequest("ordinal", -1), c.encode_selection, c.parse_selection),
    (c.FeedbackClick(2), c.encode_feedback_click, c.parse_feedback_click),
    (c.FeedbackClick(box=(1.0, 2.0, 30.0, 40.0)), c.encode_feedback_click, c.parse_feedback_click),
]


@pytest.mark.parametrize("message, encode, parse", EXAMPLES)
def test_every_message_round_trips_with_its_version(message, encode, parse):
    text = encode(message)
    assert json.loads(text)["version"] == type(message).VERSION
    assert parse(text) == message


@pytest.mark.parametrize("message, encode, parse", EXAMPLES)
def test_a_newer_version_is_refused_with_the_reason(message, encode, parse):
    data = json.loads(encode(message))
    data["version"] = type(message).VERSION + 1
    with pytest.raises(c.ContractError, match=r"version 2, newer than version 1 .*update vla_stack"):
        parse(json.dumps(data))
    data["version"] = "one"
    with pytest.raises(c.ContractError, match="'version' must be a positive integer"):
        parse(json.dumps(data))


@pytest.mark.parametrize("parse", [c.parse_subtask, c.parse_exclusion, c.parse_enroll, c.parse_sim_reset,
                                   c.parse_ground_truth, c.parse_selection])
def test_malformed_json_is_refused_with_the_reason(parse):
    with pytest.raises(c.ContractError, match="not valid JSON"):
        parse("{pick")
    with pytest.raises(c.ContractError, match="must be a JSON object"):
        parse("[1, 2]")


def test_messages_recorded_before_the_version_field_still_parse():
    """The formats on the wire (and in recorded MCAPs) before the contract had no "version"."""
    old_subtask = ('{"skill":"pick","arguments":{"object":"cup"},"index":0,"status":"active","plan_size":2,'
                   '"attempt":1,"plan_id":1,"description":"pick up the cup","instruction":"x","reason":""}')
    assert c.parse_subtask(old_subtask).skill == "pick"
    assert c.parse_subtask('{"name": "place", "status": "active"}').skill == "place"  # pre-contract alias
    old_excl = ('{"exclusions":[{"position":[0.5,0.1,0.04],"radius":0.05}],"frame_id":"panda_link0","object":"cup",'
                '"instruction":"bring","stamp":1.0,"reason":"user"}')
    assert c.parse_exclusion(old_excl).exclusions == ((0.5, 0.1, 0.04),)
    assert c.parse_sim_reset('{"seed": 5, "num_mugs": 3}') == c.SimReset(5, 3)
    assert c.parse_sim_reset("") == c.SimReset()
    assert c.parse_enroll('{"name": "m", "category": "cup", "images": ["a.png"]}').aliases == ()


@pytest.mark.parametrize("parse, text, needle", [
    (c.parse_subtask, '{"arguments": {}}', "needs 'skill'"),
    (c.parse_subtask, '{"skill": "pick", "index": "first"}', "'index' must be an integer"),
    (c.parse_subtask, '{"skill": "pick", "arguments": [1]}', "'arguments' must be a JSON object"),
    (c.parse_exclusion, '{"exclusions": [{"position": [1, 2], "radius": 0.1}]}', "3 finite numbers"),
    (c.parse_exclusion, '{"frame_id": "x"}', "'exclusions' must be a list"),
    (c.parse_enroll, '{"name": "m", "category": "cup", "images": []}', "at least one image"),
    (c.parse_enroll, '{"name": "m", "category": "cup", "images": "a.png"}', "list of strings"),
    (c.parse_enroll, '{"name": "m", "category": "cup", "images": ["a"], "overwrite": "yes"}', "true or false"),
    (c.parse_enroll, '{"name": "m", "category": "cup", "images": ["a"], "not_mine": "b.png"}', "list of strings"),
    (c.parse_sim_reset, '{"seed": 2.5}', "'seed' must be an integer"),
    (c.parse_ground_truth, '{"seed": 1, "mugs": []}', "needs 'time'"),
    (c.parse_ground_truth, '{"time": 1.0, "seed": 1, "mugs": [{"x": 1}]}', "'mugs' must be a list"),
    (c.parse_selection, '{"index": 1}', "needs 'selector'"),
    (c.parse_selection, '{"selector": "purple"}', "'selector' must be one of"),
    (c.parse_selection, '{"selector": "index"}', "needs an 'index'"),
    (c.parse_selection, '{"selector": "index", "index": -2}', "must be >= 0"),
    (c.parse_selection, '{"selector": "box", "box": [1, 2, 3]}', "4 finite numbers"),
    (c.parse_selection, '{"selector": "box", "box": [5, 2, 3, 9]}', "x1 > x0"),
    (c.parse_selection, '{"selector": "box"}', "needs a 'box'"),
    (c.parse_selection, '{"selector": "left", "generation": -1}', "'generation' must be >= 0"),
    (c.parse_feedback_click, '{"choose": 1}', "needs 'select'"),
    (c.parse_feedback_click, '{"select": "left"}', "must be an integer"),
    (c.parse_feedback_click, '{"select": {}}', "an index or a box"),
    (c.parse_feedback_click, '{"select": -1}', "must be >= 0"),
    (c.parse_feedback_click, '{left', "not valid JSON"),
])
def test_bad_fields_are_refused_with_the_reason(parse, text, needle):
    with pytest.raises(c.ContractError, match=re.escape(needle)):
        parse(text)


def test_feedback_that_is_not_json_is_speech_not_a_click():
    assert c.parse_feedback_click("the left one") is None and c.parse_feedback_click(None) is None
    assert c.parse_feedback_click(b'{"select": 0}') == c.FeedbackClick(0)
    assert c.SelectionRequest("ordinal", 1).describe() == "the second one from the left"
    assert c.SelectionRequest("left").describe() == "the left one"


def test_ground_truth_of_the_simulator_round_trips():
    robot = SimRobot(SceneConfig(seed=2, num_mugs=3))
    truth = c.GroundTruth.from_dict(robot.ground_truth())
    back = c.parse_ground_truth(c.encode_ground_truth(truth))
    assert back == truth and back.seed == 2 and back.mug(back.mine)["mine"] is True
    assert back.to_dict() | {"time": 0.0} == json.loads(json.dumps(robot.ground_truth())) | {"time": 0.0}


def test_planner_subtask_converts_to_and_from_the_message():
    s = Subtask("place", {"object": "cup", "target": "tray"}, index=1, status="active", plan_size=2)
    assert Subtask.from_message(c.parse_subtask(c.encode_subtask(s.to_message()))) == s
    assert Subtask.from_message(c.SubtaskMessage("go_home")).status == "pending"


def test_no_other_code_encodes_or_parses_these_messages():
    """One encoder and one parser per message: no node, bench or runtime module handles the
    JSON of these topics itself (json.loads/json.dumps on a String message's data)."""
    offenders = []
    for path in sorted([*SRC.rglob("*.py"), *(SRC.parents[1] / "bench").glob("*.py")]):
        if path.name == "contracts.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"json\.loads\((msg|m|message)\.data", line) or re.search(r"String\(data=json\.dumps", line):
                offenders.append(f"{path.relative_to(SRC.parents[1])}:{n}: {line.strip()}")
    assert not offenders, "use vla_stack.core.contracts:\n" + "\n".join(offenders)
