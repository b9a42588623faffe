"""Robust parsing of a plan that a language model wrote.

Models wrap JSON in prose or code fences, use other key names, write `pick(cup)` strings,
or invent skills. `parse_plan_text` accepts the common shapes and refuses the rest with a
reason (so the caller can fall back to the offline planner and say why):

    {"plan": [{"skill": "pick", "arguments": {"object": "cup"}}, {"skill": "place", "arguments": {...}}]}
    [{"skill": "pick", "object": "cup"}, ...]              keys beside "skill" are arguments
    {"steps": ["pick(cup)", "place(cup, tray)"]}           call-like strings, positional arguments
    ```json ... ```                                          fences and surrounding prose are ignored
"""

from __future__ import annotations

import json
import re
from typing import Any

from vla_stack.core.planning.skills import SKILLS, Subtask, normalize_skill_name

MAX_PLAN_STEPS = 12
"""Longer plans are refused (a model looping on the same step)."""

_LIST_KEYS = ("plan", "subtasks", "steps", "actions", "tasks")
_SKILL_KEYS = ("skill", "action", "name", "type", "primitive")
_ARG_KEYS = ("arguments", "args", "parameters", "params", "slots")


class PlanParseError(ValueError):
    """The text is not a usable plan; the message says why."""


def _json_values(text: str) -> list[Any]:
    """Every JSON object/array that decodes at some '{' or '[' of `text`, in order."""
    decoder = json.JSONDecoder()
    values = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            values.append(value)
            i = end
        else:
            i += 1
    return values


def _steps_of(value: Any) -> list[Any] | None:
    """The list of steps inside a decoded JSON value, or None when it holds none."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in _LIST_KEYS:
            if isinstance(value.get(key), list):
                return value[key]
        if any(k in value for k in _SKILL_KEYS):
            return [value]
    return None


def _step_from_string(text: str) -> tuple[str, dict[str, Any]]:
    m = re.fullmatch(r"\s*([A-Za-z_][\w\- ]*?)\s*(?:\((.*)\))?\s*", text)
    if not m:
        raise PlanParseError(f"step {text!r} is not 'skill(arguments)'")
    name = normalize_skill_name(m.group(1))
    spec = SKILLS[name]
    args: dict[str, Any] = {}
    if m.group(2):
        values = [v.strip().strip("'\"") for v in m.group(2).split(",") if v.strip()]
        slots = [s for s in (*spec.required, *spec.optional) if s not in ("position", "frame_id")]
        for slot, value in zip(slots, values, strict=False):
            if "=" in value:
                key, _, val = value.partition("=")
                args[key.strip()] = val.strip().strip("'\"")
            else:
                args[slot] = value
    return name, args


def _step_from_dict(step: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    skill_key = next((k for k in _SKILL_KEYS if k in step), None)
    if skill_key is None:
        raise PlanParseError(f"step {json.dumps(step)[:80]} has no 'skill'")
    name = normalize_skill_name(step[skill_key])
    args: dict[str, Any] = {}
    arg_key = next((k for k in _ARG_KEYS if isinstance(step.get(k), dict)), None)
    if arg_key is not None:
        args.update(step[arg_key])
    for k, v in step.items():
        if k not in (skill_key, arg_key, "index", "status", "description", "reason"):
            args.setdefault(k, v)
    return name, args


def parse_plan_text(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(skill, arguments) steps from a model's text; skills normalised, argument values checked,
    required slots possibly missing (see `backends.base.complete_arguments`).

    Raises:
        PlanParseError: no JSON plan in the text, an unknown skill, a bad argument, an empty
            or too long plan. The message says which.
    """
    if not isinstance(text, str) or not text.strip():
        raise PlanParseError("empty model output")
    cleaned = re.sub(r"```(?:json|JSON)?", "", text)
    steps = None
    for value in _json_values(cleaned):
        steps = _steps_of(value)
        if steps is not None:
            break
    if steps is None:
        raise PlanParseError(f"no JSON plan in the model output ({cleaned.strip()[:80]!r})")
    if not steps:
        raise PlanParseError("the model returned an empty plan")
    if len(steps) > MAX_PLAN_STEPS:
        raise PlanParseError(f"plan has {len(steps)} steps (max {MAX_PLAN_STEPS})")
    subtasks = []
    for i, step in enumerate(steps):
        try:
            if isinstance(step, str):
                name, args = _step_from_string(step)
            elif isinstance(step, dict):
                name, args = _step_from_dict(step)
            else:
                raise PlanParseError(f"step {i} is {type(step).__name__}, not an object or 'skill(args)' text")
            args = {str(k): v for k, v in args.items() if v is not None}
            subtasks.append((name, args))
        except PlanParseError:
            raise
        except ValueError as exc:
            raise PlanParseError(f"step {i}: {exc}") from exc
    out = []
    for i, (name, args) in enumerate(subtasks):
        try:
            out.append((name, _check_step(name, args)))
        except ValueError as exc:
            raise PlanParseError(f"step {i}: {exc}") from exc
    return out


def _check_step(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Keep the known slots of `name` and validate their values (required ones may be missing:
    `complete_arguments` fills them from the instruction)."""
    spec = SKILLS[name]
    known = set(spec.required) | set(spec.optional) | {"to", "object", "target", "seconds"}
    args = {k: v for k, v in args.items() if k in known}
    probe = dict(args)
    for k in spec.required:
        if probe.get(k) in (None, ""):
            probe[k] = "?"
    Subtask(name, probe)  # raises ValueError on a bad value
    return args
