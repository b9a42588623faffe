"""Instruction understanding: find personal references ("my cup", "my red mug", "our kettle",
"the mug of mine", registered names and aliases), map them to enrolled personal objects, and
rewrite them into the highlight phrase the policy understands:

    "bring my cup to the tray"  ->  "bring the red-highlighted cup to the tray"

Instructions without a personal reference pass through unchanged (the grounding stage then
grounds nothing). Garbage (not text, empty, binary junk, absurdly long) is reported as invalid
with a reason instead of raising, because bad input is normal input for a node.

Pure Python (re only): no image or model dependencies.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

MAX_INSTRUCTION_CHARS = 500
"""Longer instructions are rejected as garbage (a sentence to a robot is not a page)."""

POSSESSIVES = ("my", "our")
"""Words that make the following noun phrase personal."""

POSSESSIVE_PRONOUNS = ("mine", "ours")
"""Stand-alone personal pronouns ("the cup of mine", "bring mine")."""

MAX_MODIFIERS = 3
"""At most this many words between the possessive and the noun ("my favourite blue coffee mug")."""

CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "cup": ("cup", "mug", "teacup", "beaker"),
    "bottle": ("bottle", "flask", "thermos"),
    "glass": ("glass", "tumbler"),
    "plate": ("plate", "dish", "saucer"),
    "bowl": ("bowl",),
    "kettle": ("kettle", "teapot"),
    "can": ("can", "tin"),
}
"""Words that name the same kind of object, keyed by a canonical category."""

# Words that end a noun phrase when looking for the noun after "my".
_STOP_WORDS = frozenset(
    "to on onto in into from at by with and or then please near next beside behind under over "
    "of for the a an it that this is are was be up down off out away back here there".split()
)
_TOKEN_RE = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d+|[^\sA-Za-z\d]")


class EnrolledObject(Protocol):
    """What the parser needs to know about an enrolled personal object (memory.PersonalObject has it)."""

    name: str
    category: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class PersonalReference:
    """One personal reference found in an instruction.

    Args:
        text: the words as written ("my red mug").
        start, end: character span in the (sanitised) instruction.
        noun: the object word to keep in the rewrite ("mug"); the category word when the
            reference was a bare name or alias.
        modifiers: words between the possessive and the noun ("red").
        object_name: enrolled object it refers to, or None when unresolved.
        reason: why it is unresolved ("" when resolved).
    """

    text: str
    start: int
    end: int
    noun: str
    modifiers: tuple[str, ...] = ()
    object_name: str | None = None
    reason: str = ""

    @property
    def resolved(self) -> bool:
        """True when the reference maps to exactly one enrolled object."""
        return self.object_name is not None


@dataclass(frozen=True)
class ParsedInstruction:
    """Result of `parse_instruction`.

    Args:
        original: the instruction as received (any type is tolerated; str() of it here).
        text: the sanitised instruction (control characters removed, whitespace collapsed).
        valid: False for garbage; then `reason` says why and nothing is grounded.
        reason: "" when valid.
        references: personal references in order of appearance (resolved or not).
    """

    original: str
    text: str
    valid: bool
    reason: str = ""
    references: tuple[PersonalReference, ...] = field(default_factory=tuple)

    @property
    def object_names(self) -> list[str]:
        """Enrolled objects the instruction refers to, in order, without duplicates."""
        out: list[str] = []
        for ref in self.references:
            if ref.object_name is not None and ref.object_name not in out:
                out.append(ref.object_name)
        return out

    @property
    def has_personal_reference(self) -> bool:
        """True when at least one personal reference (resolved or not) was found."""
        return bool(self.references)


def canonical_category(word: str) -> str:
    """Canonical category of a noun ("mug" -> "cup", "mugs" -> "cup"); unknown words stay themselves."""
    w = word.lower().strip()
    for canon, words in CATEGORY_SYNONYMS.items():
        if w in words:
            return canon
    for singular in _singulars(w):
        for canon, words in CATEGORY_SYNONYMS.items():
            if singular in words:
                return canon
    return w


def _singulars(word: str) -> list[str]:
    out = []
    if word.endswith("es") and len(word) > 3:
        out.append(word[:-2])
    if word.endswith("s") and len(word) > 2:
        out.append(word[:-1])
    return out


def category_words(category: str) -> set[str]:
    """All nouns that may name an object of `category` (synonyms and simple plurals)."""
    canon = canonical_category(category)
    words = set(CATEGORY_SYNONYMS.get(canon, ())) | {category.lower(), canon}
    return words | {w + "s" for w in words} | {w + "es" for w in words if w.endswith(("s", "sh", "ch", "x"))}


def sanitize(text: object) -> tuple[str, str]:
    """(sanitised text, reason) where reason is "" when the text is usable.

    Control and format characters are dropped, whitespace collapsed. Reasons: not a string,
    empty, too long, no letters, mostly symbols.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return "", "instruction is not valid UTF-8 text"
    if not isinstance(text, str):
        return "", f"instruction must be text, got {type(text).__name__}"
    cleaned = "".join(
        ch if not unicodedata.category(ch).startswith("C") else " " for ch in text
    )
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        return "", "instruction is empty"
    if len(cleaned) > MAX_INSTRUCTION_CHARS:
        return cleaned[:MAX_INSTRUCTION_CHARS], (
            f"instruction is {len(cleaned)} characters long (limit {MAX_INSTRUCTION_CHARS})"
        )
    letters = sum(ch.isalpha() for ch in cleaned)
    if letters == 0:
        return cleaned, "instruction contains no words"
    visible = sum(not ch.isspace() for ch in cleaned)
    if letters < 0.5 * visible:
        return cleaned, "instruction is mostly symbols, not words"
    words = re.findall(r"[A-Za-z]{2,}", cleaned)
    if not words:
        return cleaned, "instruction contains no words"
    return cleaned, ""


@dataclass
class _Token:
    text: str
    lower: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    return [_Token(m.group(0), m.group(0).lower().replace("’", "'"), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def _phrase_tokens(phrase: str) -> list[str]:
    return [t.lower().replace("’", "'") for t in _TOKEN_RE.findall(phrase.replace("_", " "))]


def _object_phrases(obj: EnrolledObject) -> list[list[str]]:
    """Token lists that name `obj` directly: its aliases and its name (underscores as spaces)."""
    phrases = [_phrase_tokens(a) for a in obj.aliases if a.strip()]
    name_tokens = _phrase_tokens(obj.name)
    # A bare name that is just a category word ("mug") would make every "the mug" personal.
    if name_tokens and not (len(name_tokens) == 1 and canonical_category(name_tokens[0]) == canonical_category(obj.category)):
        phrases.append(name_tokens)
    return [p for p in phrases if p]


def _resolve(noun: str, modifiers: Sequence[str], objects: Sequence[EnrolledObject]) -> tuple[str | None, str]:
    """Map a possessive noun phrase to one enrolled object: (name or None, reason)."""
    noun_l = noun.lower()
    candidates = [o for o in objects if noun_l in category_words(o.category)]
    candidates += [o for o in objects if o not in candidates and any(noun_l in p for p in _object_phrases(o))]
    if not candidates:
        enrolled = ", ".join(sorted(f"{o.name} ({o.category})" for o in objects)) or "none"
        return None, f"no enrolled personal object is a '{noun}' (enrolled: {enrolled})"
    if len(candidates) == 1:
        return candidates[0].name, ""
    mods = {m.lower() for m in modifiers}
    scored = []
    for o in candidates:
        words = {w for p in _object_phrases(o) for w in p}
        scored.append((len(mods & words), o.name))
    scored.sort(reverse=True)
    if scored[0][0] > 0 and (len(scored) == 1 or scored[0][0] > scored[1][0]):
        return scored[0][1], ""
    names = ", ".join(sorted(o.name for o in candidates))
    return None, f"'{noun}' could mean several enrolled objects ({names}); name one or register an alias"


def parse_instruction(text: object, objects: Sequence[EnrolledObject]) -> ParsedInstruction:
    """Find the personal references of an instruction and map them to enrolled objects.

    Recognised forms (case-insensitive): "my/our [up to 3 words] NOUN", "the/a/that NOUN of
    mine/ours", "the NOUN that is mine", a stand-alone "mine"/"ours" (only when exactly one
    object is enrolled), and any registered alias or (non-generic) name of an enrolled object,
    with an optional "my/our/the" in front.

    Args:
        text: the instruction (any type; non-text is reported invalid).
        objects: the enrolled personal objects (name, category, aliases).

    Returns:
        ParsedInstruction; never raises on bad input.
    """
    original = text if isinstance(text, str) else repr(text)
    cleaned, reason = sanitize(text)
    if reason:
        return ParsedInstruction(original=original, text=cleaned, valid=False, reason=reason)
    toks = _tokens(cleaned)
    used = [False] * len(toks)
    refs: list[PersonalReference] = []

    def add(i0: int, i1: int, noun: str, mods: Sequence[str], name: str | None, why: str) -> None:
        for k in range(i0, i1 + 1):
            used[k] = True
        start, end = toks[i0].start, toks[i1].end
        refs.append(PersonalReference(cleaned[start:end], start, end, noun, tuple(mods), name, why))

    # 1) Aliases and names, longest first (they are the most specific).
    phrases = sorted(
        ((p, o) for o in objects for p in _object_phrases(o)), key=lambda po: len(po[0]), reverse=True
    )
    for phrase, obj in phrases:
        n = len(phrase)
        for i in range(len(toks) - n + 1):
            if any(used[i : i + n]) or [t.lower for t in toks[i : i + n]] != phrase:
                continue
            i0 = i
            if i > 0 and not used[i - 1] and toks[i - 1].lower in (*POSSESSIVES, "the", "a", "that", "this"):
                i0 = i - 1
            noun = phrase[-1] if phrase[-1] in category_words(obj.category) else obj.category
            add(i0, i + n - 1, noun, phrase[:-1] if noun == phrase[-1] else phrase, obj.name, "")

    # 2) "the NOUN of mine" / "the NOUN that is mine".
    for i, t in enumerate(toks):
        if used[i] or t.lower not in POSSESSIVE_PRONOUNS:
            continue
        j = i - 1
        if j >= 1 and toks[j].lower == "of":
            noun_i = j - 1
        elif j >= 2 and toks[j].lower in ("is", "'s") and toks[j - 1].lower in ("that", "which"):
            noun_i = j - 2
        else:
            continue
        if noun_i < 0 or used[noun_i] or not toks[noun_i].lower.isalpha() or toks[noun_i].lower in _STOP_WORDS:
            continue
        i0 = noun_i - 1 if noun_i >= 1 and toks[noun_i - 1].lower in ("the", "a", "an", "that", "this") else noun_i
        name, why = _resolve(toks[noun_i].text, (), objects)
        add(i0, i, toks[noun_i].text, (), name, why)

    # 3) "my/our ... NOUN".
    for i, t in enumerate(toks):
        if used[i] or t.lower not in POSSESSIVES:
            continue
        window: list[int] = []
        for k in range(i + 1, min(len(toks), i + 2 + MAX_MODIFIERS)):
            if used[k] or not toks[k].lower[0].isalpha():
                break
            window.append(k)
            if toks[k].lower in _STOP_WORDS:
                window.pop()
                break
        if not window:
            continue
        noun_k = None
        for k in window:  # the first word that names an enrolled category wins
            if any(toks[k].lower in category_words(o.category) for o in objects):
                noun_k = k
                break
        if noun_k is None:
            noun_k = window[-1]  # unresolved: the last word of the phrase is the best guess of the noun
        mods = [toks[k].text for k in window if k < noun_k]
        name, why = _resolve(toks[noun_k].text, mods, objects)
        add(i, noun_k, toks[noun_k].text, mods, name, why)

    # 4) A stand-alone "mine"/"ours": only meaningful with exactly one enrolled object.
    for i, t in enumerate(toks):
        if used[i] or t.lower not in POSSESSIVE_PRONOUNS:
            continue
        if len(objects) == 1:
            add(i, i, objects[0].category, (), objects[0].name, "")
        else:
            add(i, i, t.text, (), None, f"'{t.text}' is ambiguous with {len(objects)} enrolled objects")

    refs.sort(key=lambda r: r.start)
    return ParsedInstruction(original=original, text=cleaned, valid=True, references=tuple(refs))


def rewrite_instruction(
    parsed: ParsedInstruction,
    colors: Mapping[str, str],
    grounded: Sequence[str] | None = None,
) -> str:
    """The instruction with each grounded personal reference replaced by its highlight phrase.

    Args:
        parsed: output of `parse_instruction`.
        colors: colour word per enrolled object name ("red"), as drawn by the prompting stage.
        grounded: names of objects actually highlighted in the image; references to other
            objects (not found, ambiguous, unresolved) are left as written so the text never
            points at a highlight that is not there. None = all resolved references.

    Returns:
        The rewritten text; the sanitised original when nothing is rewritten, "" for garbage.
    """
    if not parsed.valid:
        return ""
    text = parsed.text
    for ref in sorted(parsed.references, key=lambda r: r.start, reverse=True):
        if ref.object_name is None or ref.object_name not in colors:
            continue
        if grounded is not None and ref.object_name not in grounded:
            continue
        article = "The" if (ref.start == 0 or text[: ref.start].rstrip().endswith((".", "!", "?"))) and ref.text[:1].isupper() else "the"
        phrase = f"{article} {colors[ref.object_name]}-highlighted {ref.noun}"
        text = text[: ref.start] + phrase + text[ref.end :]
    return text
