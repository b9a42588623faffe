"""The skill set of the planner and the `Subtask` it publishes.

A plan is a list of `Subtask`s, each one atomic skill with its arguments. The action expert
executes the current subtask; the planner monitors it and moves on. On the wire a subtask is
`Subtask.to_message()` encoded by `vla_stack.core.contracts.encode_subtask` on `planner/subtask`
(std_msgs/String, latched; `contracts.SubtaskMessage` is the one definition of the format)::

    {"version": 1, "skill": "pick", "arguments": {"object": "red-highlighted cup", "position": [0.52, 0.08, 0.045],
     "frame_id": "base_link"}, "index": 0, "status": "active", "plan_size": 2, "attempt": 1,
     "plan_id": 3, "description": "pick up the red-highlighted cup",
     "instruction": "bring the red-highlighted cup to the tray", "reason": ""}

Only `status == "active"` means "execute this now"; every other status means hold still
(`waiting`: a precondition is not met yet, e.g. grounding has not found the object;
`paused`: the user said stop/wait; `done`/`failed`/`cancelled`: the plan is over).

Skills (arguments in brackets; positions in the robot base frame, m):

- `pick` [object, position?, frame_id?]: grasp the object and lift it.
- `place` [object, target, position?, frame_id?]: put the held object on/at the target.
- `open_gripper`, `close_gripper`: just the gripper.
- `go_home`: move the arm to its home (ready) configuration.
- `hand_over` [object, to]: offer the held object to a person and let go when they take it.
- `wait` [seconds]: hold still for that long.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from vla_stack.core.contracts import SubtaskMessage

SubtaskStatus = Literal["pending", "active", "waiting", "paused", "done", "failed", "cancelled"]
SUBTASK_STATUSES: tuple[str, ...] = ("pending", "active", "waiting", "paused", "done", "failed", "cancelled")
"""Every status a subtask can have; only "active" means "execute now"."""

FINISHED_STATUSES = frozenset({"done", "failed", "cancelled"})
"""Statuses after which a subtask never becomes active again (a retry is a new attempt)."""


@dataclass(frozen=True)
class SkillSpec:
    """One skill of the skill set.

    Args:
        name: identifier used on the wire ("pick", "place", ...).
        summary: one line for prompts and docs.
        required: argument names a subtask of this skill must have.
        optional: argument names it may have.
        phrases: natural-language templates of the skill ("{object}" and "{target}" slots),
            scored against instructions by the offline planner.
    """

    name: str
    summary: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()


SKILLS: dict[str, SkillSpec] = {
    s.name: s
    for s in (
        SkillSpec(
            "pick", "grasp OBJECT and lift it", ("object",), ("position", "frame_id"),
            ("pick up the {object}", "grab the {object}", "take the {object}"),
        ),
        SkillSpec(
            "place", "put the held OBJECT on TARGET", ("object", "target"), ("position", "frame_id"),
            ("put the {object} on the {target}", "bring the {object} to the {target}", "place the {object} in the {target}"),
        ),
        SkillSpec("open_gripper", "open the gripper", (), (), ("open the gripper", "release the gripper")),
        SkillSpec("close_gripper", "close the gripper", (), (), ("close the gripper", "close the hand")),
        SkillSpec("go_home", "move the arm to its home position", (), (), ("go back to the home position", "return home")),
        SkillSpec(
            "hand_over", "give the held OBJECT to a person", ("object",), ("to",),
            ("hand the {object} to me", "give the {object} to the person"),
        ),
        SkillSpec("wait", "hold still for SECONDS", (), ("seconds",), ("wait", "wait for a moment")),
    )
}
"""The skill set, by name."""

SKILL_ALIASES: dict[str, str] = {
    "grasp": "pick", "pick_up": "pick", "pickup": "pick", "grab": "pick", "take": "pick",
    "put": "place", "put_down": "place", "place_on": "place", "drop_off": "place",
    "open": "open_gripper", "release": "open_gripper", "open_hand": "open_gripper",
    "close": "close_gripper", "close_hand": "close_gripper",
    "home": "go_home", "go_to_home": "go_home", "return_home": "go_home", "reset": "go_home",
    "handover": "hand_over", "give": "hand_over", "hand": "hand_over",
    "pause": "wait", "hold": "wait",
}
"""Other names a model might use for a skill (lower case, underscores)."""


def normalize_skill_name(name: object) -> str:
    """Canonical skill name of `name` ("Pick-Up" -> "pick", "goHome" -> "go_home").

    Raises ValueError naming the known skills when `name` is not a skill or an alias.
    """
    if not isinstance(name, str):
        raise ValueError(f"skill name must be text, got {type(name).__name__}")
    text = re.sub(r"([a-z])([A-Z])", r"\1_\2", name.strip())
    key = re.sub(r"[\s\-]+", "_", text.lower()).strip("_")
    key = SKILL_ALIASES.get(key, key)
    if key not in SKILLS:
        raise ValueError(f"unknown skill '{name}' (known: {', '.join(SKILLS)})")
    return key


def _check_argument(skill: str, key: str, value: Any) -> Any:
    """Validate one argument value; returns it normalised (positions as float lists)."""
    if key == "position":
        if not isinstance(value, (list, tuple)) or len(value) != 3:
            raise ValueError(f"{skill}: position must be 3 numbers (x, y, z in m), got {value!r}")
        try:
            pos = [float(v) for v in value]
        except (TypeError, ValueError):
            raise ValueError(f"{skill}: position must be 3 numbers (x, y, z in m), got {value!r}") from None
        if not all(math.isfinite(v) for v in pos):
            raise ValueError(f"{skill}: position contains NaN/inf: {pos}")
        return pos
    if key == "seconds":
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{skill}: seconds must be a number, got {value!r}") from None
        if not (math.isfinite(seconds) and 0.0 <= seconds <= 3600.0):
            raise ValueError(f"{skill}: seconds must be in 0..3600, got {seconds}")
        return seconds
    if isinstance(value, str):
        return value.strip()
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise ValueError(f"{skill}: argument '{key}' must be text or a number, got {type(value).__name__}")


@dataclass(frozen=True)
class Subtask:
    """One atomic step of a plan: a skill with its arguments and where it stands.

    Args:
        skill: a name from `SKILLS` (aliases are normalised).
        arguments: slot values: "object"/"target"/"to" (text), "position" ([x, y, z] m in
            `frame_id`), "frame_id" (text), "seconds" (s). Required slots per `SKILLS`.
        index: position in the plan, 0-based.
        status: one of `SUBTASK_STATUSES`; only "active" means execute now.
        plan_size: number of subtasks in the plan (0 = unknown).
        attempt: 1 for the first try, 2.. for retries (a retry of a grasp bumps it, so a
            consumer that only watches for changes sees the retry).
        plan_id: increments with every new plan (and replan) of the planner.
        description: natural-language form of the step ("pick up the red-highlighted cup").
        instruction: the instruction the plan serves (as rewritten by grounding).
        reason: why the status is what it is (waiting/failed/paused), for operators.

    Raises:
        ValueError: unknown skill or status, missing required argument, bad value.
    """

    skill: str
    arguments: dict[str, Any] = field(default_factory=dict)
    index: int = 0
    status: SubtaskStatus = "pending"
    plan_size: int = 0
    attempt: int = 1
    plan_id: int = 0
    description: str = ""
    instruction: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        skill = normalize_skill_name(self.skill)
        object.__setattr__(self, "skill", skill)
        if not isinstance(self.arguments, dict):
            raise ValueError(f"{skill}: arguments must be a JSON object, got {type(self.arguments).__name__}")
        spec = SKILLS[skill]
        args = {str(k): _check_argument(skill, str(k), v) for k, v in self.arguments.items()}
        missing = [k for k in spec.required if args.get(k) in (None, "")]
        if missing:
            raise ValueError(f"{skill}: missing argument(s) {missing}")
        object.__setattr__(self, "arguments", args)
        if self.status not in SUBTASK_STATUSES:
            raise ValueError(f"status must be one of {SUBTASK_STATUSES}, got {self.status!r}")
        for name in ("index", "plan_size", "attempt", "plan_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.index < 0 or self.plan_size < 0 or self.attempt < 1 or self.plan_id < 0:
            raise ValueError(
                f"need index >= 0, plan_size >= 0, attempt >= 1, plan_id >= 0; got "
                f"{self.index}, {self.plan_size}, {self.attempt}, {self.plan_id}"
            )
        if not self.description:
            object.__setattr__(self, "description", describe(skill, args))

    # -- wire format ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (JSON-able)."""
        return asdict(self)

    def to_message(self) -> SubtaskMessage:
        """The wire form for `planner/subtask` (encode with `contracts.encode_subtask`)."""
        return SubtaskMessage(**self.to_dict())

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Subtask:
        """Subtask from a dict (unknown keys are ignored, so newer senders stay readable).

        Raises ValueError when `data` is not a dict or a field is invalid.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a subtask must be a JSON object, got {type(data).__name__}")
        if "skill" not in data:
            raise ValueError("a subtask needs a 'skill'")
        known = {f for f in Subtask.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        if kwargs.get("arguments") is None:
            kwargs["arguments"] = {}
        try:
            return Subtask(**kwargs)
        except TypeError as exc:
            raise ValueError(f"bad subtask: {exc}") from exc

    @staticmethod
    def from_message(message: SubtaskMessage) -> Subtask:
        """Subtask from a parsed `planner/subtask` (`contracts.parse_subtask`); a message without a
        status is "pending". Raises ValueError when the skill or a field is invalid."""
        data = asdict(message)
        if not data["status"]:
            data.pop("status")
        return Subtask.from_dict(data)

    def with_status(self, status: SubtaskStatus, reason: str = "") -> Subtask:
        """A copy with another status (and reason)."""
        return replace(self, status=status, reason=reason)

    @property
    def finished(self) -> bool:
        """True for done/failed/cancelled."""
        return self.status in FINISHED_STATUSES

    def same_step(self, other: Subtask) -> bool:
        """Same skill and same text arguments (positions, which move with perception, ignored)."""
        def key(s: Subtask) -> tuple:
            return (s.skill, tuple(sorted((k, v) for k, v in s.arguments.items() if isinstance(v, str) and k != "frame_id")))

        return key(self) == key(other)


def describe(skill: str, arguments: dict[str, Any]) -> str:
    """Natural-language form of a skill with its arguments ("put the cup on the tray")."""
    obj = str(arguments.get("object") or "object")
    target = str(arguments.get("target") or "")
    if skill == "pick":
        return f"pick up the {obj}"
    if skill == "place":
        return f"put the {obj} on the {target}" if target else f"put the {obj} down"
    if skill == "hand_over":
        return f"hand the {obj} to {arguments.get('to') or 'the person'}"
    if skill == "wait":
        seconds = arguments.get("seconds")
        return f"wait {float(seconds):g} seconds" if seconds is not None else "wait"
    return SKILLS[skill].phrases[0]


def plan_summary(subtasks: list[Subtask]) -> str:
    """"pick(cup) -> place(cup, tray)" for logs and status."""
    parts = []
    for s in subtasks:
        args = [str(v) for k, v in s.arguments.items() if isinstance(v, str) and k != "frame_id"]
        parts.append(f"{s.skill}({', '.join(args)})")
    return " -> ".join(parts) if parts else "(empty)"
