"""Text handling of the planner: garbage checks, interjections, slot extraction.

Pure Python (re only). Bad input is normal input: nothing here raises on odd text; the
functions return a reason or None instead.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

MAX_INSTRUCTION_CHARS = 500
"""Longer instructions are rejected as garbage."""

Interjection = Literal["stop", "wait", "continue", "cancel", "not_that_one", "put_back"]

_FILLERS_START = r"(?:(?:no|nope|hey|please|robot|ok|okay|oh|um|uh|sorry|actually|so|and|but|wait)\s+)*"
_FILLERS_END = r"(?:\s+(?:please|thanks|thank you|now|robot|then))*"

_INTERJECTIONS: tuple[tuple[Interjection, str], ...] = (
    ("not_that_one", r"not (?:that|this|the) (?:one|cup|mug|object|thing)|wrong (?:one|cup|mug|object)|"
                     r"(?:the )?other one|that'?s not (?:it|mine|my \w+|the right one)|not mine|pick the other one"),
    ("put_back", r"put (?:it|that|this|the \w+(?: \w+)?) back(?: where it was)?|return it|undo(?: that)?|"
                 r"put it where it was"),
    ("stop", r"stop(?: it| moving| that| now| right there)?|halt|freeze|emergency stop"),
    ("wait", r"wait(?: a (?:moment|second|minute|sec|bit))?|hold on|hang on|pause|one (?:moment|second|sec)|just a (?:moment|second)"),
    ("continue", r"continue|go on|resume|go ahead|carry on|keep going|proceed|you can continue|ok go"),
    ("cancel", r"cancel(?: (?:it|that|the task))?|abort|never ?mind|forget (?:it|that)|that'?s all|you can stop"),
)


def normalize_text(text: str) -> str:
    """Lower case, NFKC, punctuation except apostrophes/hyphens removed, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"[^\w'\-\s.]", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def classify_interjection(text: object) -> Interjection | None:
    """Which interjection `text` is ("no, not that one!" -> "not_that_one"), or None.

    Only whole utterances count (with fillers such as "no", "hey", "please" around them):
    "wait" is an interjection, "wait until the cup is dry" is not.
    """
    if not isinstance(text, str):
        return None
    norm = normalize_text(text)
    if not norm or len(norm) > 80:
        return None
    for kind, pattern in _INTERJECTIONS:
        if re.fullmatch(_FILLERS_START + f"(?:{pattern})" + _FILLERS_END, norm):
            return kind
    return None


def check_instruction_text(text: object) -> str | None:
    """Reason why `text` cannot be an instruction (not text, empty, binary junk, too long,
    no words), or None when it may be one. Whether it names a task is for the planner."""
    if not isinstance(text, str):
        return f"instruction is not text ({type(text).__name__})"
    stripped = text.strip()
    if not stripped:
        return "instruction is empty"
    if len(stripped) > MAX_INSTRUCTION_CHARS:
        return f"instruction is {len(stripped)} characters long (max {MAX_INSTRUCTION_CHARS})"
    if "\ufffd" in stripped or any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") and c not in "\t\n\r" for c in stripped):
        return "instruction contains binary or control characters"
    visible = [c for c in stripped if not c.isspace()]
    letters = [c for c in visible if c.isalpha()]
    if len(letters) < 2:
        return "instruction has no words"
    if len(letters) < 0.6 * len(visible):
        return f"instruction is mostly not letters ({len(letters)} of {len(visible)} characters)"
    words = re.findall(r"[^\W\d_]{2,}", stripped)
    if not any(re.search(r"[aeiouy]", w.lower()) for w in words) and all(w.isascii() for w in words):
        return "instruction has no pronounceable words"
    return None


_DETERMINERS = r"(?:the|a|an|my|our|your|his|her|their|this|that|these|those|some)"
_VERBS = (
    r"pick up|pick|grab|grasp|get|fetch|take|bring|move|put down|put|place|set down|set|carry|lift|hand|give|drop|hold"
)
_PREPOSITIONS = r"to|onto|on top of|on|into|inside|in|at|next to|near|beside|over|from|back"
_STOP = r"(?:\s+(?:and|then|please|now|for|with|so|while)\b|[,;]|$)"


@dataclass(frozen=True)
class Slots:
    """Slot values found in an instruction.

    Args:
        object: noun phrase of the object to act on, determiners removed ("red-highlighted cup").
        target: noun phrase of the place ("tray"), "me" when the user is the target.
        recipient: "me" for "hand me ...", "give me ...", "bring me ...".
        seconds: a duration found in the text, s.
    """

    object: str | None = None
    target: str | None = None
    recipient: str | None = None
    seconds: float | None = None


def _clean_phrase(phrase: str) -> str | None:
    words = [w for w in phrase.strip(" .,'").split() if w]
    while words and re.fullmatch(_DETERMINERS, words[0]):
        words = words[1:]
    while words and words[-1] in ("up", "down", "please", "it", "back", "away"):
        words = words[:-1]
    text = " ".join(words).strip()
    if not text or text in ("it", "them", "that", "this", "one"):
        return None
    return text


_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10, "a": 1, "an": 1}


def extract_slots(text: str) -> Slots:
    """Find object, target, recipient and duration in an instruction (plain regexes).

    "bring the red-highlighted cup to the tray" -> object "red-highlighted cup", target "tray";
    "hand me my cup" -> object "cup", recipient "me"; "wait 3 seconds" -> seconds 3.
    Missing slots are None (the planner fills them from grounding or leaves them generic).
    """
    norm = normalize_text(text) if isinstance(text, str) else ""
    obj = target = recipient = None
    seconds = None
    m = re.search(
        rf"\b(?:{_VERBS})\s+(?:(me|us)\s+)?(?:up\s+)?(.+?)(?=\s+(?:{_PREPOSITIONS})\b|\s+up\b|{_STOP})", norm
    )
    if m:
        recipient = "me" if m.group(1) else None
        obj = _clean_phrase(m.group(2))
        if obj and re.fullmatch(r"(?:the )?gripper|(?:the )?hand", obj):
            obj = None
    t = re.search(rf"\b(?:to|onto|on top of|on|into|inside|in|at|next to|near|beside)\s+(.+?)(?={_STOP})", norm)
    if t:
        phrase = _clean_phrase(t.group(1))
        if phrase in ("me", "us"):
            recipient = "me"
        elif phrase and phrase not in ("top",):
            target = phrase
    s = re.search(r"\b(\d+(?:\.\d+)?|one|two|three|four|five|ten|a|an)\s*(?:s|sec|secs|second|seconds|min|minute|minutes)\b", norm)
    if s:
        raw = s.group(1)
        seconds = float(_NUMBER_WORDS.get(raw, raw) if raw in _NUMBER_WORDS else raw)
        if re.search(r"\bmin(?:ute)?s?\b", s.group(0)):
            seconds *= 60.0
    elif re.search(r"\ba (?:moment|bit)\b", norm):
        seconds = 2.0
    return Slots(obj, target, recipient, seconds)


_REWRITE_IGNORED = frozenset("my our mine ours your the a an of".split())


def rewrite_matches(raw: str, rewritten: str, min_overlap: float = 0.6) -> bool:
    """True when `rewritten` (grounding's version) is a rewrite of `raw`.

    Compares content words: possessives, articles and "*highlighted*" words are ignored;
    at least `min_overlap` of the raw instruction's remaining words must appear in the
    rewrite. "bring my cup to the tray" ~ "bring the red-highlighted cup to the tray";
    a stale rewrite of an earlier instruction does not match.
    """
    def words(text: str) -> set[str]:
        return {w for w in normalize_text(text).split() if w not in _REWRITE_IGNORED and "highlight" not in w}

    a, b = words(raw), words(rewritten)
    if not a:
        return not b
    return len(a & b) / len(a) >= min_overlap
