"""The contract of a planner backend: `plan(PlanRequest) -> PlanResult` and `latent(...)`.

A backend turns one instruction plus a snapshot of the robot/scene state into a list of
subtasks from the skill set (`vla_stack.core.planning.skills`), or rejects it with a reason
("not understood: ..."). It also produces the latent vector the fast policy conditions on.
Backends are picked by name from `PLANNERS` ("offline", "vlm").

Backends are slow (tens of ms to seconds): the planner calls them from a worker thread, never
from a sensor callback.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vla_stack.core.planning.skills import Subtask
from vla_stack.core.planning.text import Slots
from vla_stack.core.registry import Registry

PLANNERS = Registry("planner backend")
"""Planner backends by name: PLANNERS.create("offline", config=OfflinePlannerConfig())."""


@dataclass(frozen=True)
class PlanningState:
    """What the planner knows when it plans (the feasibility side of SayCan).

    Args:
        holding: the gripper holds an object.
        gripper_open: gripper open (None = unknown).
        at_home: arm at its home configuration (None = unknown).
        grounding_status: "found" / "not_found" / "ambiguous" / "no_reference", "" = no grounding.
        object_position: grasp point of the grounded object (x, y, z) m in `frame_id`, or None.
        frame_id: frame of `object_position` (the robot base frame).
        held_object: name of the object in the gripper, when known.
        history: descriptions of the subtasks completed recently, oldest first.
    """

    holding: bool = False
    gripper_open: bool | None = None
    at_home: bool | None = None
    grounding_status: str = ""
    object_position: tuple[float, float, float] | None = None
    frame_id: str = ""
    held_object: str | None = None
    history: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanRequest:
    """One planning question.

    Args:
        instruction: the text to plan from (grounding's rewritten instruction when there is one).
        state: the current state.
        raw_instruction: what the user said (for logs and prompts).
        image: optional (H, W, 3) uint8 RGB image (grounding's prompted image) for VLM backends.
    """

    instruction: str
    state: PlanningState = field(default_factory=PlanningState)
    raw_instruction: str = ""
    image: np.ndarray | None = None


@dataclass
class PlanResult:
    """Answer of a backend.

    Args:
        ok: a plan was made; False = the instruction was rejected (see `reason`).
        subtasks: the plan (status "pending", index set), empty when not ok.
        reason: why rejected, or how the plan was made.
        backend: name of the backend that made (or rejected) it.
        scores: numbers for the status topic/logs (language scores, timings in ms, ...).
        fallback: True when a VLM backend fell back to the offline planner.
        raw_output: the model's raw text (VLM backends), for debugging.
    """

    ok: bool
    subtasks: list[Subtask] = field(default_factory=list)
    reason: str = ""
    backend: str = ""
    scores: dict[str, Any] = field(default_factory=dict)
    fallback: bool = False
    raw_output: str = ""


class PlannerBackend(ABC):
    """Base class of planner backends."""

    name: str = "base"
    latent_dim: int = 384

    @abstractmethod
    def plan(self, request: PlanRequest) -> PlanResult:
        """Plan `request`. Never raises on bad input: returns `PlanResult(ok=False, reason=...)`."""

    @abstractmethod
    def latent(self, instruction: str, subtask: Subtask | None) -> np.ndarray:
        """(latent_dim,) float32 vector of instruction + current subtask (unit length)."""


def complete_arguments(steps: list[tuple[str, dict[str, Any]]], slots: Slots, instruction: str = "") -> list[Subtask]:
    """Fill missing slots from the instruction's slots and from earlier steps.

    place/hand_over without an object take the object of the last pick (else the
    instruction's object); place without a target takes the instruction's target, else
    "table"; pick without an object takes the instruction's object. Used by backends whose
    raw output may leave slots out (VLM JSON).

    Raises ValueError (from `Subtask`) when a step is still invalid.
    """
    out: list[Subtask] = []
    last_object = slots.object
    for skill, arguments in steps:
        args = {k: v for k, v in arguments.items() if v not in (None, "")}
        if skill == "pick":
            args.setdefault("object", slots.object or "object")
            last_object = str(args["object"])
        elif skill in ("place", "hand_over"):
            args.setdefault("object", last_object or "object")
            if skill == "place":
                args.setdefault("target", slots.target or "table")
            else:
                args.setdefault("to", slots.recipient or "the person")
        elif skill == "wait" and slots.seconds is not None:
            args.setdefault("seconds", slots.seconds)
        out.append(Subtask(skill, args, instruction=instruction))
    return out


def attach_grounding(subtasks: list[Subtask], state: PlanningState) -> list[Subtask]:
    """Give pick subtasks the grounded grasp point (position + frame_id) when there is one,
    and index the plan (index, plan_size, status "pending")."""
    out = []
    for i, s in enumerate(subtasks):
        args = dict(s.arguments)
        if s.skill == "pick" and state.object_position is not None and "position" not in args:
            args["position"] = [float(v) for v in state.object_position]
            args["frame_id"] = state.frame_id
        out.append(replace(s, arguments=args, index=i, plan_size=len(subtasks), status="pending"))
    return out
