"""Instruction parsing and rewriting for personal references (core/grounding/instruction.py)."""

from dataclasses import dataclass

import pytest

from vla_stack.core.grounding.instruction import (
    canonical_category,
    parse_instruction,
    rewrite_instruction,
    sanitize,
)


@dataclass
class Obj:
    name: str
    category: str
    aliases: tuple[str, ...] = ()


CUP = Obj("my_mug", "cup")
PLATE = Obj("blue_plate", "plate", ("grandma's plate",))
KETTLE = Obj("kettle", "kettle")
RED = {"my_mug": "red", "blue_plate": "green", "kettle": "blue", "work_mug": "yellow"}


def rewrite(text, objects):
    parsed = parse_instruction(text, objects)
    return parsed, rewrite_instruction(parsed, RED)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("bring my cup to the tray", "bring the red-highlighted cup to the tray"),
        ("Bring my mug to the tray", "Bring the red-highlighted mug to the tray"),
        ("My cup is dirty, wash it", "The red-highlighted cup is dirty, wash it"),
        ("pick up my red mug", "pick up the red-highlighted mug"),
        ("hand me my favourite blue coffee mug please", "hand me the red-highlighted mug please"),
        ("put our cup in the sink", "put the red-highlighted cup in the sink"),
        ("grab the cup of mine", "grab the red-highlighted cup"),
        ("move the mug that is mine next to the tray", "move the red-highlighted mug next to the tray"),
        ("bring MY CUP", "bring the red-highlighted CUP"),
        ("bring my cups", "bring the red-highlighted cups"),
        ("bring   my\tcup ", "bring the red-highlighted cup"),
        ("bring mine to me", "bring the red-highlighted cup to me"),
        ("bring my mug_", "bring the red-highlighted mug_"),
    ],
)
def test_rewrites_personal_cup_phrasings(text, expected):
    parsed, out = rewrite(text, [CUP])
    assert parsed.valid, parsed.reason
    assert parsed.object_names == ["my_mug"], parsed.references
    assert out == expected


@pytest.mark.parametrize(
    "text",
    [
        "bring the cup to the tray",
        "bring me a mug",
        "pick up the red mug on the left",
        "mystery cup goes to the tray",  # "my" inside a word
        "put it in the cupboard",
        "move everything to the left",
    ],
)
def test_instructions_without_personal_reference_pass_through_unchanged(text):
    parsed, out = rewrite(text, [CUP, PLATE])
    assert parsed.valid
    assert parsed.references == ()
    assert parsed.object_names == []
    assert out == text


def test_several_objects_ground_both_with_their_colours():
    parsed, out = rewrite("put my cup on my plate", [CUP, PLATE])
    assert parsed.object_names == ["my_mug", "blue_plate"]
    assert out == "put the red-highlighted cup on the green-highlighted plate"


def test_alias_and_registered_name_resolve():
    parsed, out = rewrite("put the cup on grandma's plate", [CUP, PLATE])
    assert parsed.object_names == ["blue_plate"]
    assert out == "put the cup on the green-highlighted plate"
    parsed, out = rewrite("fill the blue plate", [CUP, PLATE])  # name "blue_plate" as words
    assert parsed.object_names == ["blue_plate"]
    assert out == "fill the green-highlighted plate"


def test_generic_name_equal_to_category_does_not_make_every_cup_personal():
    parsed, _ = rewrite("bring the kettle", [KETTLE])
    assert parsed.references == ()
    parsed, out = rewrite("switch on our kettle", [KETTLE])
    assert parsed.object_names == ["kettle"]
    assert out == "switch on the blue-highlighted kettle"


def test_unenrolled_personal_object_is_reported_and_left_unchanged():
    parsed, out = rewrite("bring my phone to the tray", [CUP])
    assert parsed.valid and parsed.has_personal_reference
    (ref,) = parsed.references
    assert not ref.resolved and "phone" in ref.reason and "my_mug" in ref.reason
    assert out == "bring my phone to the tray"


def test_two_enrolled_mugs_need_a_distinguishing_word():
    home = Obj("home_mug", "cup")
    work = Obj("work_mug", "cup", ("office mug", "white mug"))
    parsed, _ = rewrite("bring my mug", [home, work])
    assert parsed.object_names == [] and "several" in parsed.references[0].reason
    parsed, out = rewrite("bring my white mug", [home, work])
    assert parsed.object_names == ["work_mug"]
    assert out == "bring the yellow-highlighted mug"
    parsed, _ = rewrite("bring my office mug", [home, work])
    assert parsed.object_names == ["work_mug"]


def test_standalone_mine_is_ambiguous_with_several_objects():
    parsed, out = rewrite("give me mine", [CUP, PLATE])
    assert parsed.object_names == [] and "ambiguous" in parsed.references[0].reason
    assert out == "give me mine"


def test_rewrite_only_grounded_objects():
    parsed = parse_instruction("put my cup on my plate", [CUP, PLATE])
    assert rewrite_instruction(parsed, RED, grounded=["blue_plate"]) == "put my cup on the green-highlighted plate"
    assert rewrite_instruction(parsed, RED, grounded=[]) == "put my cup on my plate"


@pytest.mark.parametrize(
    "garbage, why",
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        (None, "text"),
        (42, "text"),
        (b"\xff\xfe\x00", "UTF-8"),
        ("%$#@!&*()_+{}|:<>?", "no words"),
        ("\x00\x01\x02\x03", "empty"),
        ("a" * 2000, "characters long"),
        ("@@@ ## my $$$ %%% ^^^ &&&", "symbols"),
    ],
)
def test_garbage_is_invalid_with_reason_and_never_raises(garbage, why):
    parsed = parse_instruction(garbage, [CUP])
    assert not parsed.valid
    assert why in parsed.reason
    assert parsed.references == ()
    assert rewrite_instruction(parsed, RED) == ""


def test_bytes_utf8_instruction_is_decoded():
    parsed, out = rewrite(b"bring my cup", [CUP])
    assert parsed.valid and out == "bring the red-highlighted cup"


def test_control_characters_are_removed():
    text, reason = sanitize("bring\x00 my\x07 cup")
    assert reason == "" and text == "bring my cup"


def test_no_objects_enrolled():
    parsed, out = rewrite("bring my cup", [])
    assert parsed.valid and parsed.object_names == []
    assert "none" in parsed.references[0].reason
    assert out == "bring my cup"


def test_canonical_category_synonyms():
    assert canonical_category("Mug") == "cup"
    assert canonical_category("mugs") == "cup"
    assert canonical_category("teapot") == "kettle"
    assert canonical_category("phone") == "phone"
