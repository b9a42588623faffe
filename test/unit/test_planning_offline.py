"""Offline (sentence-embedding, SayCan-style) planner backend on the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

import numpy as np
import pytest

from vla_stack.core.planning.backends import PLANNERS, OfflinePlanner, PlanningState, PlanRequest
from vla_stack.core.planning.backends.offline import already_satisfied, feasibility, state_from_request
from vla_stack.core.planning.skills import Subtask


@pytest.fixture(scope="module")
def planner() -> OfflinePlanner:
    p = PLANNERS.create("offline")
    p.warm_up()  # loads the model once for the module
    return p


def skills_of(planner, text, **state):
    result = planner.plan(PlanRequest(text, PlanningState(**state)))
    assert result.ok, result.reason
    return [s.skill for s in result.subtasks], result


def test_bring_my_cup_to_the_tray_is_pick_then_place(planner):
    skills, result = skills_of(planner, "bring my cup to the tray")
    assert skills == ["pick", "place"]
    pick, place = result.subtasks
    assert pick.arguments["object"] == "cup" and place.arguments == {"object": "cup", "target": "tray"}
    assert [s.index for s in result.subtasks] == [0, 1] and all(s.status == "pending" for s in result.subtasks)
    assert result.scores["plan_language_score"] > result.scores["best_language_score"] - 0.2


def test_rewritten_instruction_gets_the_grounded_grasp_point(planner):
    state = dict(grounding_status="found", object_position=(0.52, 0.08, 0.045), frame_id="panda_link0")
    skills, result = skills_of(planner, "bring the red-highlighted cup to the tray", **state)
    assert skills == ["pick", "place"]
    assert result.subtasks[0].arguments["object"] == "red-highlighted cup"
    assert result.subtasks[0].arguments["position"] == [0.52, 0.08, 0.045]


def test_feasibility_turns_the_plan_to_place_when_already_holding(planner):
    skills, _ = skills_of(planner, "bring my cup to the tray", holding=True)
    assert skills == ["place"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hand me my cup", ["pick", "hand_over"]),
        ("open the gripper", ["open_gripper"]),
        ("go back to the home position", ["go_home"]),
        ("wait 3 seconds", ["wait"]),
        ("bring my cup to the tray and then go home", ["pick", "place", "go_home"]),
        ("take the mug and put it in the box", ["pick", "place"]),
    ],
)
def test_other_instructions(planner, text, expected):
    skills, result = skills_of(planner, text)
    assert skills == expected
    if text.startswith("wait"):
        assert result.subtasks[0].arguments["seconds"] == 3.0


def test_asking_for_what_already_holds_plans_nothing(planner):
    result = planner.plan(PlanRequest("pick up the cup", PlanningState(holding=True)))
    assert result.ok and result.subtasks == [] and "already" in result.reason


@pytest.mark.parametrize("text", ["asdf qwer", "what is the weather today", "sing a song", "fly to the moon", "", "\x00\x01"])
def test_garbage_is_rejected_with_a_reason(planner, text):
    result = planner.plan(PlanRequest(text))
    assert not result.ok and result.subtasks == []
    assert result.reason


def test_language_score_threshold_is_what_rejects(planner):
    # the same instruction passes with a permissive threshold: the threshold, not a word list, decides
    from vla_stack.core.planning.backends.offline import OfflinePlannerConfig

    strict = planner.plan(PlanRequest("sing a song"))
    lax = OfflinePlanner(OfflinePlannerConfig(min_language_score=-1.0), embedder=planner.embedder).plan(
        PlanRequest("sing a song")
    )
    assert not strict.ok and "not understood" in strict.reason
    assert lax.ok or "no object named" in lax.reason


def test_latent_is_a_unit_384_vector_that_follows_the_subtask(planner):
    pick = Subtask("pick", {"object": "cup"})
    place = Subtask("place", {"object": "cup", "target": "tray"})
    a = planner.latent("bring the cup to the tray", pick)
    b = planner.latent("bring the cup to the tray", place)
    assert a.shape == (384,) and a.dtype == np.float32 and planner.latent_dim == 384
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-4
    assert float(a @ b) < 0.999  # a different step gives a different latent
    assert np.allclose(a, planner.latent("bring the cup to the tray", pick))  # deterministic


def test_feasibility_table():
    empty = state_from_request(PlanningState())
    holding = state_from_request(PlanningState(holding=True))
    lost = state_from_request(PlanningState(grounding_status="not_found"))
    assert feasibility("pick", empty) == 1.0 and feasibility("pick", holding) == 0.0 and feasibility("pick", lost) == 0.5
    assert feasibility("place", empty) == 0.0 and feasibility("place", holding) == 1.0
    assert feasibility("hand_over", holding) == 1.0
    assert feasibility("go_home", state_from_request(PlanningState(at_home=True))) < 1.0
    assert already_satisfied("pick", holding) and not already_satisfied("pick", empty)
    after = empty.after("pick")
    assert after.holding and feasibility("place", after) == 1.0
