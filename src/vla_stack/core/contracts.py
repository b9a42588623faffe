"""The JSON messages the stack carries in std_msgs/String, each defined once.

One frozen dataclass per message, with exactly one encoder (`encode_*`) and one parser
(`parse_*`); every producer and consumer (nodes, the demo runner, bench scripts, tests) goes
through them, so the wire format lives here and nowhere else.

| topic                | dataclass            | from -> to                           |
|----------------------|----------------------|--------------------------------------|
| `planner/subtask`    | `SubtaskMessage`     | planner -> action expert, monitors   |
| `grounding/exclude`  | `ExclusionRequest`   | planner -> grounding ("not that one")|
| `grounding/select`   | `SelectionRequest`   | planner/dashboard -> grounding ("the left one") |
| `task/feedback` JSON | `FeedbackClick`      | dashboard -> planner (a click on a candidate) |
| `grounding/enroll`   | `EnrollRequest`      | anyone -> grounding                  |
| `sim/reset`          | `SimReset`           | evaluation -> simulator              |
| `sim/ground_truth`   | `GroundTruth`        | simulator -> evaluation only         |

Versioning: every encoder writes `"version": N` (the class's `VERSION`). A parser accepts
versions 1..N and refuses a newer one with a clear `ContractError` (a newer sender may mean
something this reader cannot know). A message without "version" is version 1: that is the
format recorded before the field existed, so old MCAP recordings still parse. Unknown keys are
ignored (a field added in a compatible way does not need a new version); a change that alters
the meaning of an existing field must bump the version.

ROS-free: nodes wrap the text in std_msgs/String themselves.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


class ContractError(ValueError):
    """A message refused: not JSON, not an object, a field of the wrong type, or a newer version."""


def _dump(version: int, body: dict[str, Any]) -> str:
    return json.dumps({"version": version, **body}, separators=(",", ":"), allow_nan=False)


def _load(text: str | bytes, what: str, version: int) -> dict[str, Any]:
    """JSON object of `text` after the version check (absent version = 1)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ContractError(f"{what} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ContractError(f"{what} must be a JSON object, got {type(data).__name__}")
    v = data.get("version", 1)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ContractError(f"{what}: 'version' must be a positive integer, got {v!r}")
    if v > version:
        raise ContractError(
            f"{what} has version {v}, newer than version {version} this code understands; refused "
            "(update vla_stack on this machine to the sender's version)")
    return data


def _int(data: dict[str, Any], key: str, what: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if value is None:
        raise ContractError(f"{what} needs '{key}'")
    if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
        raise ContractError(f"{what}: '{key}' must be an integer, got {value!r}")
    return int(value)


def _float(data: dict[str, Any], key: str, what: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if value is None:
        raise ContractError(f"{what} needs '{key}'")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ContractError(f"{what}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _str(data: dict[str, Any], key: str, what: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if value is None:
        raise ContractError(f"{what} needs '{key}'")
    if not isinstance(value, str):
        raise ContractError(f"{what}: '{key}' must be a string, got {value!r}")
    return value


def _strings(data: dict[str, Any], key: str, what: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
    value = data.get(key, default)
    if value is None:
        raise ContractError(f"{what} needs '{key}'")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ContractError(f"{what}: '{key}' must be a list of strings, got {value!r}")
    return tuple(value)


def _object(data: dict[str, Any], key: str, what: str) -> dict[str, Any]:
    value = data.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ContractError(f"{what}: '{key}' must be a JSON object, got {value!r}")
    return value


# ============================================================================ planner/subtask
@dataclass(frozen=True)
class SubtaskMessage:
    """`planner/subtask` (latched): the step the planner wants executed now.

    The wire form of `vla_stack.core.planning.skills.Subtask` (`Subtask.to_message()` /
    `Subtask.from_message()` convert; the skill vocabulary is checked there, not here, so the
    action expert can read any sender and map unknown skills to "none")::

        {"version": 1, "skill": "pick", "arguments": {"object": "cup", "position": [0.5, 0.1, 0.05]},
         "index": 0, "status": "active", "plan_size": 2, "attempt": 1, "plan_id": 1,
         "description": "pick up the cup", "instruction": "bring my cup to the tray", "reason": ""}

    Args:
        skill: skill name (planning.skills.SKILLS; older senders wrote it as "name").
        arguments: skill arguments (positions in m, base frame; `place_position` [x, y, z]).
        index: position of the step in the plan (0-based).
        status: pending/active/waiting/paused/done/failed/cancelled ("" = not given).
        plan_size, attempt, plan_id, description, instruction, reason: see `Subtask`.
    """

    VERSION: ClassVar[int] = 1

    skill: str
    arguments: dict[str, Any] = field(default_factory=dict)
    index: int = 0
    status: str = ""
    plan_size: int = 0
    attempt: int = 1
    plan_id: int = 0
    description: str = ""
    instruction: str = ""
    reason: str = ""


def encode_subtask(message: SubtaskMessage) -> str:
    """Compact JSON of a `SubtaskMessage` (NaN refused: ValueError)."""
    return _dump(SubtaskMessage.VERSION, asdict(message))


def parse_subtask(text: str | bytes) -> SubtaskMessage:
    """`planner/subtask` JSON -> `SubtaskMessage`. Raises ContractError with the reason."""
    what = "planner subtask"
    data = _load(text, what, SubtaskMessage.VERSION)
    if "skill" not in data and "name" in data:  # senders before the contract wrote "name"
        data = {**data, "skill": data["name"]}
    return SubtaskMessage(
        skill=_str(data, "skill", what), arguments=_object(data, "arguments", what),
        index=_int(data, "index", what, 0), status=_str(data, "status", what, "") or "",
        plan_size=_int(data, "plan_size", what, 0), attempt=_int(data, "attempt", what, 1),
        plan_id=_int(data, "plan_id", what, 0), description=_str(data, "description", what, ""),
        instruction=_str(data, "instruction", what, ""), reason=_str(data, "reason", what, ""),
    )


# ============================================================================ grounding/exclude
@dataclass(frozen=True)
class ExclusionRequest:
    """`grounding/exclude` (latched): every object instance grounding must not select for the task.

    Each message replaces the previous set; an empty `exclusions` clears it (sent when a new
    task starts)::

        {"version": 1, "exclusions": [{"position": [0.52, 0.08, 0.045], "radius": 0.05}],
         "frame_id": "base_link", "object": "red-highlighted cup", "instruction": "bring ...",
         "stamp": 12.5, "reason": "user: not that one"}

    Grounding drops candidate instances whose 3D grasp point lies within `radius` (m) of any
    listed position (in `frame_id`), then re-grounds.

    Args:
        exclusions: positions (x, y, z), m, in `frame_id`.
        radius: exclusion radius, m.
        frame_id: frame of the positions.
        object: the object the task is about ("cup").
        instruction: the task's instruction.
        stamp: when the set was made, s (planner clock).
        reason: why ("user: not that one"), for operators.
    """

    VERSION: ClassVar[int] = 1

    exclusions: tuple[tuple[float, float, float], ...]
    radius: float
    frame_id: str
    object: str
    instruction: str
    stamp: float
    reason: str


def encode_exclusion(request: ExclusionRequest) -> str:
    """Compact JSON of an `ExclusionRequest` (format above; NaN refused: ValueError)."""
    return _dump(ExclusionRequest.VERSION, {
        "exclusions": [{"position": [float(v) for v in p], "radius": float(request.radius)} for p in request.exclusions],
        "frame_id": request.frame_id, "object": request.object, "instruction": request.instruction,
        "stamp": float(request.stamp), "reason": request.reason,
    })


def parse_exclusion(text: str | bytes) -> ExclusionRequest:
    """`grounding/exclude` JSON -> `ExclusionRequest`. Raises ContractError with the reason."""
    what = "exclusion request"
    data = _load(text, what, ExclusionRequest.VERSION)
    items = data.get("exclusions")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ContractError(f"{what}: 'exclusions' must be a list of {{position, radius}} objects, got {items!r}")
    positions = []
    for item in items:
        p = item.get("position")
        if (not isinstance(p, list | tuple) or len(p) != 3
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in p)):
            raise ContractError(f"{what}: a position must be 3 finite numbers [x, y, z], got {p!r}")
        positions.append(tuple(float(v) for v in p))
    radius = _float(items[0], "radius", what) if items else 0.0
    return ExclusionRequest(
        tuple(positions), radius, _str(data, "frame_id", what, ""), _str(data, "object", what, ""),  # type: ignore[arg-type]
        _str(data, "instruction", what, ""), _float(data, "stamp", what, 0.0), _str(data, "reason", what, ""),
    )


# ============================================================================ grounding/select
SELECTORS = ("left", "right", "middle", "nearest", "farthest", "ordinal", "index", "box", "only", "current")
"""How a `SelectionRequest` names the chosen candidate (see its docstring)."""


@dataclass(frozen=True)
class SelectionRequest:
    """`grounding/select`: the user chose which candidate is the object ("the left one").

    Grounding resolves it against the candidates of its last "ambiguous" answer (the ones it
    listed in `grounding/status` `candidate_boxes`, in that order) and then highlights and tracks
    the chosen instance as user-confirmed::

        {"version": 1, "selector": "left", "index": null, "box": null, "object": "my_mug",
         "generation": 7, "stamp": 12.5, "source": "user", "text": "the left one",
         "instruction": "bring my cup to the tray"}

    Args:
        selector: how the candidate is named: "left" / "right" / "middle" (image x of the box
            centre), "nearest" / "farthest" (distance to the camera from depth; without depth the
            largest / smallest box), "ordinal" (`index`-th from the left, 0-based; -1 = the last
            one), "index" (position `index` in the status's candidate list, e.g. a click), "box"
            (the candidate whose box overlaps `box` most, image px), "only" (the one candidate
            proposed: "yes, that one" when exactly one is proposed), "current" (confirm the
            object grounding has found now: "yes, that one").
        index: the rank ("ordinal") or list position ("index"); None otherwise.
        box: (x0, y0, x1, y1) image px of the chosen candidate ("box"), else None.
        object: name of the personal object the choice is about ("" = the first of the instruction).
        generation: grounding's generation of the answer the choice was made on (the status
            value "generation"); 0 = whatever is pending now. Another generation is stale.
        stamp: when the choice was made, s (sender clock).
        source: who chose ("user").
        text: what the user said or did, for logs.
        instruction: the task's instruction.
    """

    VERSION: ClassVar[int] = 1

    selector: str
    index: int | None = None
    box: tuple[float, float, float, float] | None = None
    object: str = ""
    generation: int = 0
    stamp: float = 0.0
    source: str = "user"
    text: str = ""
    instruction: str = ""

    def describe(self) -> str:
        """How the user named it, for logs and reasons ("the left one", "candidate #2")."""
        if self.selector == "ordinal":
            k = self.index if self.index is not None else 0
            word = "last" if k == -1 else ("first", "second", "third", "fourth", "fifth")[k] if 0 <= k < 5 else f"#{k + 1}"
            return f"the {word} one from the left"
        if self.selector == "index":
            return f"candidate #{self.index}"
        if self.selector == "box":
            return "the clicked box"
        if self.selector in ("only", "current"):
            return "this one"
        return f"the {self.selector} one"


def _box(value: Any, what: str) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    if (not isinstance(value, list | tuple) or len(value) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise ContractError(f"{what}: 'box' must be 4 finite numbers [x0, y0, x1, y1] (image px), got {value!r}")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not (x1 > x0 and y1 > y0):
        raise ContractError(f"{what}: 'box' must have x1 > x0 and y1 > y0, got {value!r}")
    return (x0, y0, x1, y1)


def encode_selection(request: SelectionRequest) -> str:
    """Compact JSON of a `SelectionRequest` (format above)."""
    return _dump(SelectionRequest.VERSION, {**asdict(request), "box": list(request.box) if request.box else None})


def parse_selection(text: str | bytes) -> SelectionRequest:
    """`grounding/select` JSON -> `SelectionRequest`. Raises ContractError with the reason."""
    what = "selection request"
    data = _load(text, what, SelectionRequest.VERSION)
    selector = _str(data, "selector", what).strip().lower()
    if selector not in SELECTORS:
        raise ContractError(f"{what}: 'selector' must be one of {SELECTORS}, got {selector!r}")
    index = _int(data, "index", what) if data.get("index") is not None else None
    box = _box(data.get("box"), what)
    if selector in ("ordinal", "index") and index is None:
        raise ContractError(f"{what}: selector {selector!r} needs an 'index'")
    if selector == "index" and index is not None and index < 0:
        raise ContractError(f"{what}: 'index' must be >= 0 for selector 'index', got {index}")
    if selector == "box" and box is None:
        raise ContractError(f"{what}: selector 'box' needs a 'box' [x0, y0, x1, y1]")
    generation = _int(data, "generation", what, 0)
    if generation < 0:
        raise ContractError(f"{what}: 'generation' must be >= 0, got {generation}")
    return SelectionRequest(selector, index, box, _str(data, "object", what, ""), generation,
                            _float(data, "stamp", what, 0.0), _str(data, "source", what, "user") or "user",
                            _str(data, "text", what, ""), _str(data, "instruction", what, ""))


# ============================================================================ task/feedback (click)
@dataclass(frozen=True)
class FeedbackClick:
    """A click on a candidate, sent as JSON on `task/feedback` (a dashboard; plain text is speech)::

        {"select": 1}                      # the candidate at position 1 of grounding's list
        {"select": {"box": [10, 20, 60, 90]}}  # the candidate under this box (image px)

    Args:
        index: position in grounding's candidate list (`candidate_boxes` order), or None.
        box: (x0, y0, x1, y1) image px, or None.
    """

    VERSION: ClassVar[int] = 1

    index: int | None = None
    box: tuple[float, float, float, float] | None = None


def encode_feedback_click(click: FeedbackClick) -> str:
    """JSON of a click (what a dashboard publishes on task/feedback)."""
    body: Any = click.index if click.box is None else {"box": list(click.box)}
    return _dump(FeedbackClick.VERSION, {"select": body})


def parse_feedback_click(text: object) -> FeedbackClick | None:
    """A click on `task/feedback`, or None when the text is not JSON (speech: "the left one").

    Raises:
        ContractError: text that looks like JSON ("{...}") but is not a valid click.
    """
    if not isinstance(text, str | bytes):
        return None
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if not raw.strip().startswith("{"):
        return None
    what = "feedback click"
    data = _load(raw, what, FeedbackClick.VERSION)
    if "select" not in data:
        raise ContractError(f"{what}: a JSON feedback needs 'select' (a candidate index or {{\"box\": [x0, y0, x1, y1]}}), "
                            f"got keys {sorted(data)}")
    value = data["select"]
    if isinstance(value, dict):
        box = _box(value.get("box"), what)
        index = _int(value, "index", what) if value.get("index") is not None else None
        if box is None and index is None:
            raise ContractError(f"{what}: 'select' needs an index or a box, got {value!r}")
    else:
        box, index = None, _int(data, "select", what)
    if index is not None and index < 0:
        raise ContractError(f"{what}: the candidate index must be >= 0, got {index}")
    return FeedbackClick(index, box)


# ============================================================================ grounding/enroll
@dataclass(frozen=True)
class EnrollRequest:
    """`grounding/enroll`: enrol a personal object at run time from reference images::

        {"version": 1, "name": "my_mug", "category": "cup", "images": ["/data/mug_0.png"],
         "aliases": ["my cup"], "overwrite": false, "not_mine": ["/data/other_mug.png"]}

    Args:
        name: the object's name in the personal memory.
        category: what it is ("cup"), the detector's class.
        images: paths of reference images, readable by the grounding node.
        aliases: other names the user may say.
        overwrite: replace an existing object of that name.
        not_mine: paths of photos of look-alikes that are *not* this object ("these are not
            mine"), used as negatives of its own decision rule (optional key).
    """

    VERSION: ClassVar[int] = 1

    name: str
    category: str
    images: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    overwrite: bool = False
    not_mine: tuple[str, ...] = ()


def encode_enroll(request: EnrollRequest) -> str:
    """Compact JSON of an `EnrollRequest`."""
    return _dump(EnrollRequest.VERSION, {**asdict(request), "images": list(request.images), "aliases": list(request.aliases),
                                         "not_mine": list(request.not_mine)})


def parse_enroll(text: str | bytes) -> EnrollRequest:
    """`grounding/enroll` JSON -> `EnrollRequest`. Raises ContractError with the reason."""
    what = "enrol request"
    data = _load(text, what, EnrollRequest.VERSION)
    name, category = _str(data, "name", what).strip(), _str(data, "category", what).strip()
    images = _strings(data, "images", what)
    if not name or not category or not images:
        raise ContractError(f"{what} needs a non-empty name, category and at least one image path")
    overwrite = data.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise ContractError(f"{what}: 'overwrite' must be true or false, got {overwrite!r}")
    return EnrollRequest(name, category, images, _strings(data, "aliases", what, ()), overwrite,
                         _strings(data, "not_mine", what, ()))


# ============================================================================ sim/reset
@dataclass(frozen=True)
class SimReset:
    """`sim/reset`: a new scene, robot at home (None = keep the simulator's current value)::

        {"version": 1, "seed": 3, "num_mugs": 3}

    An empty message (or `{}`) resets to the current scene configuration.

    Args:
        seed: scene seed.
        num_mugs: number of mugs on the table.
    """

    VERSION: ClassVar[int] = 1

    seed: int | None = None
    num_mugs: int | None = None


def encode_sim_reset(request: SimReset) -> str:
    """Compact JSON of a `SimReset` (None fields left out)."""
    return _dump(SimReset.VERSION, {k: v for k, v in asdict(request).items() if v is not None})


def parse_sim_reset(text: str | bytes) -> SimReset:
    """`sim/reset` JSON (or empty text) -> `SimReset`. Raises ContractError with the reason."""
    what = "sim/reset request"
    if isinstance(text, str) and not text.strip():
        return SimReset()
    data = _load(text, what, SimReset.VERSION)
    return SimReset(
        seed=_int(data, "seed", what) if data.get("seed") is not None else None,
        num_mugs=_int(data, "num_mugs", what) if data.get("num_mugs") is not None else None,
    )


# ============================================================================ sim/ground_truth
@dataclass(frozen=True)
class GroundTruth:
    """`sim/ground_truth` (latched, evaluation only: never fed to the stack).

    `SimRobot.ground_truth()` as a message, all in the base frame `frame_id`.

    Args:
        time: simulation time, s.
        seed: scene seed.
        frame_id: base frame of every pose.
        mine: simulator name of the user's own mug.
        mugs: per mug: name, texture_id, mine, segmentation_label, position (bottom centre, m),
            orientation_xyzw, yaw (handle direction about z, rad), upright, in_gripper, in_tray.
        mug_geometry: radius, height, handle_reach (m), mass (kg), grasp_depth (m).
        tray: position (floor centre, m), orientation_xyzw, half_size (x, y) m.
        tcp: position, orientation_xyzw of the tool centre point.
        gripper_width: finger opening, m.
        in_gripper: mug held by both fingers, or None.
        grasped: same as `in_gripper` (kept for older readers).
        segmentation_labels: object name -> label in `sim/ground_truth/segmentation`.
    """

    VERSION: ClassVar[int] = 1

    time: float
    seed: int
    frame_id: str
    mine: str
    mugs: tuple[dict[str, Any], ...]
    mug_geometry: dict[str, Any] = field(default_factory=dict)
    tray: dict[str, Any] = field(default_factory=dict)
    tcp: dict[str, Any] = field(default_factory=dict)
    gripper_width: float = 0.0
    in_gripper: str | None = None
    grasped: str | None = None
    segmentation_labels: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> GroundTruth:
        """From `SimRobot.ground_truth()` (or a parsed message). Raises ContractError."""
        what = "ground truth"
        mugs = data.get("mugs", [])
        if not isinstance(mugs, list | tuple) or not all(isinstance(m, dict) and isinstance(m.get("name"), str) for m in mugs):
            raise ContractError(f"{what}: 'mugs' must be a list of objects with a 'name', got {mugs!r}")
        held = data.get("in_gripper")
        grasped = data.get("grasped", held)
        for key, value in (("in_gripper", held), ("grasped", grasped)):
            if value is not None and not isinstance(value, str):
                raise ContractError(f"{what}: '{key}' must be a mug name or null, got {value!r}")
        return GroundTruth(
            time=_float(data, "time", what), seed=_int(data, "seed", what), frame_id=_str(data, "frame_id", what, ""),
            mine=_str(data, "mine", what, ""), mugs=tuple(dict(m) for m in mugs),
            mug_geometry=_object(data, "mug_geometry", what), tray=_object(data, "tray", what),
            tcp=_object(data, "tcp", what), gripper_width=_float(data, "gripper_width", what, 0.0),
            in_gripper=held, grasped=grasped, segmentation_labels=_object(data, "segmentation_labels", what),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, keys as in `SimRobot.ground_truth()` (for evaluation code that indexes it)."""
        return {**asdict(self), "mugs": [dict(m) for m in self.mugs]}

    def mug(self, name: str) -> dict[str, Any] | None:
        """The entry of mug `name`, or None."""
        return next((m for m in self.mugs if m.get("name") == name), None)


def encode_ground_truth(truth: GroundTruth) -> str:
    """Compact JSON of a `GroundTruth` (NaN refused: ValueError)."""
    return _dump(GroundTruth.VERSION, truth.to_dict())


def parse_ground_truth(text: str | bytes) -> GroundTruth:
    """`sim/ground_truth` JSON -> `GroundTruth`. Raises ContractError with the reason."""
    return GroundTruth.from_dict(_load(text, "ground truth", GroundTruth.VERSION))
