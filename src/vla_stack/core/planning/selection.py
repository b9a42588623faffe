"""Which candidate the user means: "the left one", "the second one", "the nearest cup", "yes,
that one", or a click ({"select": 1} on task/feedback), when grounding cannot tell which
instance is "mine" (status "ambiguous") or asks about the one it proposes.

Pure Python (re only), ROS-free. `parse_choice(text)` says whether an utterance is a choice and
which (`Choice.selector` is a `contracts.SELECTORS` word; grounding resolves it spatially
against its candidates); `describe_candidates` names candidates by position for the question
the planner asks ("left 0.91, right 0.90").

Bad input is normal input: nothing raises. A phrase shaped like a choice that names nothing we
can resolve ("the purple one", "the fifth one" among three) comes back as not understood with
a reason saying what to say instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from vla_stack.core.contracts import ContractError, parse_feedback_click
from vla_stack.core.planning.text import normalize_text

ChoiceKind = Literal["choice", "not_understood", "none"]

_FILLER = (r"(?:(?:no|nope|hey|please|robot|ok|okay|oh|um|uh|sorry|actually|so|and|but|well|i mean|i meant|"
           r"it'?s|it is|that'?s|that is|mine is|my \w+ is|i want|i'd like|i would like|take|pick|grab|get|use|choose|"
           r"select|go for)\s+)*")
_END = r"(?:\s+(?:please|thanks|thank you|then|robot|is mine|is my \w+|is it|there))*"
_NOUN = r"(?:one|cup|mug|glass|bottle|object|thing|item|\w+)"
_THE = r"(?:the |that |this )?"

_ORDINALS = {
    "first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3, "fifth": 4, "5th": 4,
    "last": -1,
}
_NUMBERS = {"one": 0, "1": 0, "two": 1, "2": 1, "three": 2, "3": 2, "four": 3, "4": 3, "five": 4, "5": 4}

_SPATIAL: tuple[tuple[str, str], ...] = (
    ("left", r"left(?:most)?|left-most|leftmost"),
    ("right", r"right(?:most)?|right-most|rightmost"),
    ("middle", r"middle|center|centre|central|in-between|in between"),
    ("nearest", r"nearest|closest|near|close|front(?:most)?|closer|nearer"),
    ("farthest", r"farthest|furthest|far|back(?:most)?|farther|further|rear"),
)
_SPATIAL_WORDS = {w for _, alts in _SPATIAL for w in re.findall(r"[a-z\-]+", alts)}

_YES = (r"(?:yes|yeah|yep|yup|correct|exactly|right|sure)(?:\s+(?:that|this|it|the)?\s*(?:one|cup|mug|object)?)?"
        r"|(?:yes|yeah|yep|yup)?\s*(?:that|this) (?:one|cup|mug|object|thing)|that'?s (?:it|the one|mine|my \w+)"
        r"|it'?s (?:that|this) one|this is (?:it|mine|the one)|that is (?:it|mine|the one)")


@dataclass(frozen=True)
class Choice:
    """What an utterance (or click) says about which candidate.

    Args:
        kind: "choice" (understood: `selector` and maybe `index`/`box`), "not_understood" (shaped
            like a choice but naming nothing resolvable: `reason` says why), "none" (not a choice
            at all: an instruction or other feedback).
        selector: `contracts.SELECTORS` word ("left", "ordinal", "index", "box", "only", ...).
        index: rank from the left for "ordinal" (0-based, -1 = last), list position for "index".
        box: (x0, y0, x1, y1) image px for "box".
        confirm: the utterance is a plain "yes / this one" (selector "only": the single proposed
            candidate, or the object grounding has found now).
        reason: why it was not understood.
        text: the original text.
    """

    kind: ChoiceKind
    selector: str = ""
    index: int | None = None
    box: tuple[float, float, float, float] | None = None
    confirm: bool = False
    reason: str = ""
    text: str = ""

    @property
    def understood(self) -> bool:
        return self.kind == "choice"


NOT_A_CHOICE = Choice("none")
HOW_TO_CHOOSE = ("say 'the left one', 'the right one', 'the middle one', 'the nearest one', 'the farthest one', "
                 "'the first/second/third one' (from the left), or click a candidate")


def _whole(pattern: str, text: str) -> re.Match[str] | None:
    return re.fullmatch(_FILLER + f"(?:{pattern})" + _END, text)


def parse_choice(text: object) -> Choice:
    """Which candidate `text` chooses (see the module doc). Never raises."""
    if not isinstance(text, str | bytes):
        return NOT_A_CHOICE
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        click = parse_feedback_click(raw)
    except ContractError as exc:
        return Choice("not_understood", reason=f"click not understood: {exc}", text=raw[:200])
    if click is not None:
        if click.box is not None:
            return Choice("choice", "box", click.index, click.box, text=raw[:200])
        return Choice("choice", "index", click.index, text=raw[:200])
    norm = normalize_text(raw)
    if not norm or len(norm) > 80:
        return NOT_A_CHOICE
    # spatial: "the left one", "the one on the left", "the cup on the right", "left", "the leftmost mug"
    for selector, words in _SPATIAL:
        pats = (
            rf"{_THE}(?:{words})(?: {_NOUN})?(?: one)?",
            rf"{_THE}(?:{_NOUN}) (?:on|at|to|in) the (?:{words})(?: side)?",
            rf"{_THE}(?:{_NOUN}) (?:in (?:the )?|at the )?(?:{words})(?: (?:to|of) (?:you|me|the robot|the camera))?",
            rf"(?:the )?(?:{words})(?: one)? (?:to|of) (?:you|me|the robot|the camera)",
            rf"(?:on|at|to|in) the (?:{words})",
        )
        if any(_whole(p, norm) for p in pats):
            return Choice("choice", selector, text=raw[:200])
    # ordinal: "the second one", "the 2nd cup", "number two", "the last one", "the second from the left"
    m = _whole(rf"{_THE}(first|1st|second|2nd|third|3rd|fourth|4th|fifth|5th|last)(?: {_NOUN})?(?: from the left)?", norm)
    if m:
        return Choice("choice", "ordinal", _ORDINALS[m.group(1)], text=raw[:200])
    m = _whole(r"(?:the )?(?:number|no|#) ?(one|two|three|four|five|[1-5])|(?:cup|mug|candidate|object) (one|two|three|four|five|[1-5])", norm)
    if m:
        return Choice("choice", "ordinal", _NUMBERS[m.group(1) or m.group(2)], text=raw[:200])
    m = _whole(r"(?:the )?(first|second|third|1st|2nd|3rd) from the right", norm)
    if m:
        k = _ORDINALS[m.group(1)]
        return Choice("not_understood", reason=f"'{raw.strip()[:60]}': count from the left please "
                      f"(the {m.group(1)} from the right depends on how many there are); {HOW_TO_CHOOSE}", text=raw[:200]) \
            if k > 0 else Choice("choice", "ordinal", -1, text=raw[:200])
    # "yes", "this one", "that's it"
    if _whole(_YES, norm):
        return Choice("choice", "only", confirm=True, text=raw[:200])
    # shaped like a choice, naming nothing we know: "the purple one", "the big one", "the one with dots"
    if _whole(rf"{_THE}(?:[\w\-']+ ){{1,2}}one|the one (?:with|that|which|on|in|near|next to) .+|{_THE}(?:[\w\-']+) (?:cup|mug)",
              norm) and not re.search(r"\b(?:bring|put|place|pick|give|hand|move|take|fetch|carry)\b", norm):
        return Choice("not_understood", reason=f"'{raw.strip()[:60]}' is not a choice I can resolve (I tell the "
                      f"candidates apart by position only); {HOW_TO_CHOOSE}", text=raw[:200])
    return NOT_A_CHOICE


def box_centre_x(box: Sequence[float]) -> float:
    return 0.5 * (float(box[0]) + float(box[2]))


def positional_labels(boxes: Sequence[Sequence[float]]) -> list[str]:
    """A position word per box, by image x of its centre: left/right for 2, left/middle/right for 3,
    "1st from the left".. for more (same order as `boxes`)."""
    n = len(boxes)
    order = sorted(range(n), key=lambda i: box_centre_x(boxes[i]))
    names: list[str] = [""] * n
    words = {1: ["only"], 2: ["left", "right"], 3: ["left", "middle", "right"]}.get(n)
    for rank, i in enumerate(order):
        if words is not None:
            names[i] = words[rank]
        else:
            suffix = {0: "st", 1: "nd", 2: "rd"}.get(rank, "th")
            names[i] = f"{rank + 1}{suffix} from the left"
    return names


def describe_candidates(boxes: Sequence[Sequence[float]], scores: Sequence[float]) -> str:
    """"left 0.91, right 0.90" (left to right)."""
    labels = positional_labels(boxes)
    order = sorted(range(len(boxes)), key=lambda i: box_centre_x(boxes[i]))
    return ", ".join(f"{labels[i]} {float(scores[i]):.2f}" for i in order)


def check_choice(choice: Choice, count: int) -> str | None:
    """Why `choice` cannot apply to `count` candidates (None: it can, as far as positions go;
    grounding resolves it and may still refuse it, e.g. stale)."""
    if not choice.understood:
        return choice.reason or "not a choice"
    s = choice.selector
    if count <= 0:
        return "there are no candidates to choose from"
    if s in ("left", "right", "nearest", "farthest") and count < 2:
        return "there is only one candidate: say 'yes, that one' to confirm it"
    if s == "middle" and count != 3 and count % 2 == 0:
        return f"there is no middle one among {count} candidates; {HOW_TO_CHOOSE}"
    if s == "ordinal" and choice.index is not None and choice.index >= count:
        return f"there are only {count} candidates (asked for #{choice.index + 1} from the left)"
    if s == "index" and choice.index is not None and not 0 <= choice.index < count:
        return f"candidate #{choice.index} does not exist (candidates #0..#{count - 1})"
    return None


@dataclass(frozen=True)
class GroundingChoice:
    """The candidates grounding asks the user to choose from (its status "ambiguous", or a lone
    candidate it would not accept on its own), from the status values `candidate_boxes`,
    `generation`, `object`, `category`.

    Args:
        status: grounding's status ("ambiguous" / "not_found").
        boxes: (x0, y0, x1, y1) image px per candidate, in grounding's list order.
        scores: match score per candidate.
        object: the personal object's name ("my_mug").
        category: its category word ("cup"), "" when not given.
        generation: grounding's generation of the answer (0 = not given).
    """

    status: str
    boxes: tuple[tuple[float, float, float, float], ...]
    scores: tuple[float, ...]
    object: str = ""
    category: str = ""
    generation: int = 0

    @property
    def count(self) -> int:
        return len(self.boxes)

    def question(self, noun: str = "") -> str:
        """What the planner asks ("I can't tell which cup is yours: 2 candidates, left 0.91, right 0.90 — which one?")."""
        what = noun or self.category or "object"
        if self.count == 1:
            return (f"I see one {what} but I am not sure it is yours (score {self.scores[0]:.2f}) — is it this one? "
                    "(say 'yes, that one' or 'not that one')")
        return (f"I can't tell which {what} is yours: {self.count} candidates, "
                f"{describe_candidates(self.boxes, self.scores)} — which one?")


def grounding_choice_from_report(reports: dict[str, dict]) -> GroundingChoice | None:
    """The candidates of a grounding status report (`ros.conversions.diagnostics_to_dict` form)
    when it asks which one (status ambiguous, or not_found with one candidate), else None.
    Malformed values give None (never raises)."""
    for report in reports.values():
        values = report.get("values", {}) or {}
        status = str(values.get("status", "")).strip().lower()
        raw = str(values.get("candidate_boxes", "") or "").strip()
        if status not in ("ambiguous", "not_found") or not raw:
            continue
        boxes, scores = [], []
        try:
            for item in raw.split(";"):
                coords, score = item.split(":")
                x0, y0, x1, y1 = (float(v) for v in coords.split(","))
                boxes.append((x0, y0, x1, y1))
                scores.append(float(score))
            generation = int(float(values.get("generation", 0) or 0))
        except ValueError:
            return None
        if status == "not_found" and len(boxes) != 1:
            return None
        return GroundingChoice(status, tuple(boxes), tuple(scores), str(values.get("object", "")),
                               str(values.get("category", "")), max(0, generation))
    return None
