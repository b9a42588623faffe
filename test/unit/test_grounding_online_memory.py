"""Online confirmation in the personal-object memory (issue 13, build 5):
`PersonalObjectMemory.add_confirmed_view` / `add_negative_view` are bounded (the oldest online
view goes, the enrolled references never), re-derive the object's own rule, refuse bad crops with
the reason, and write the object as a whole (a failure leaves it as it was)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from grounding_synthetic import Cylinder, default_intrinsics, dots, look_at, render

from vla_stack.core.grounding import memory as memory_mod
from vla_stack.core.grounding.embedders import AppearanceEmbedder, ObjectCrop, crop_object
from vla_stack.core.grounding.memory import PersonalObjectMemory

BASE = (226, 214, 196)
MINE = dots(BASE, (176, 70, 46))
BLUE = dots(BASE, (46, 70, 176))


def view(texture, az: float, seed: int) -> ObjectCrop:
    intr = default_intrinsics(160, 160, 40.0)
    rgb, _, lab = render([Cylinder(0, 0, texture=texture)], look_at([0.3 * np.cos(az), 0.3 * np.sin(az), 0.17],
                         [0, 0, 0.045]), intr, table_color=(120, 120, 125), table_center=(0, 0), table_half=(2, 2),
                         seed=seed)
    return crop_object(rgb, lab == 2)


@pytest.fixture(scope="module")
def embedder():
    return AppearanceEmbedder()


@pytest.fixture
def memory(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path / "memory")
    crops = [view(MINE, 2 * np.pi * i / 4 + 0.3, i) for i in range(4)]
    mem.enroll("my_mug", [c.rgb for c in crops], "cup", embedder, masks=[c.mask for c in crops], self_calibrate=True)
    return mem


def meta(mem) -> dict:
    return json.loads((mem.root / "my_mug" / "object.json").read_text())


def test_confirmed_views_are_bounded_and_the_enrolled_references_stay(memory, embedder):
    enrolled = [c.rgb.copy() for c in memory.get("my_mug").crops]
    added = []
    for k in range(5):
        c = view(MINE, 0.9 + 0.4 * k, 100 + k)
        added.append(c)
        obj = memory.add_confirmed_view("my_mug", c, embedder, max_online=3, source=f"pick {k}")
        assert obj.online_views == min(k + 1, 3)
    obj = PersonalObjectMemory(memory.root).get("my_mug")  # as stored
    assert len(obj.crops) == 4 + 3 and obj.view_origins == ["enrolled"] * 4 + ["online"] * 3
    assert all(np.array_equal(a.rgb, b) for a, b in zip(obj.crops[:4], enrolled, strict=True))  # never dropped
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(obj.crops[4:], added[2:], strict=True))  # the newest 3
    assert obj.embeddings[embedder.version].shape[0] == 7
    m = meta(memory)
    assert [r.get("online", False) for r in m["references"]] == [False] * 4 + [True] * 3
    assert m["decision_rule"]["positives"] == 7 * 10  # re-derived on every view (held-out + 9 augmentations each)


def test_a_confirmed_view_re_derives_the_rule_and_is_used_for_matching(memory, embedder):
    before = memory.get("my_mug").rule
    obj = memory.add_confirmed_view("my_mug", view(MINE, 1.1, 50), embedder)
    assert obj.rule is not None and obj.rule.positives == before.positives + 10
    assert obj.rule.is_current(embedder.version, 2)
    refs = PersonalObjectMemory(memory.root).reference_embeddings("my_mug", embedder)
    assert refs.shape[0] == 5


def test_negatives_are_bounded_and_the_users_not_mine_photos_stay(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path / "memory")
    crops = [view(MINE, 2 * np.pi * i / 4 + 0.3, i) for i in range(4)]
    other = view(BLUE, 0.5, 40)
    mem.enroll("my_mug", [c.rgb for c in crops], "cup", embedder, masks=[c.mask for c in crops],
               not_mine=[np.dstack([other.rgb, other.mask.astype(np.uint8) * 255])], self_calibrate=True)
    negs_before = mem.get("my_mug").rule.negatives
    for k in range(3):
        obj = mem.add_negative_view("my_mug", view(BLUE, 1.0 + 0.5 * k, 60 + k), embedder, max_online=2, source="not that one")
    obj = PersonalObjectMemory(mem.root).get("my_mug")
    assert obj.negative_origins == ["enrolled", "online", "online"] and obj.online_negatives == 2
    assert obj.rule.negatives == negs_before + 2
    assert [n.get("online", False) for n in meta(mem)["negatives"]] == [False, True, True]


@pytest.mark.parametrize("bad, needle", [
    ("black", "is black"),
    ("blank", "is blank"),
    ("blurred", "is blurred"),
    ("duplicate", "duplicate"),
    ("empty_mask", "mask is empty"),
    ("not_a_crop", "not an object crop"),
])
def test_bad_confirmed_views_are_refused_and_nothing_is_written(memory, embedder, bad, needle):
    good = memory.get("my_mug").crops[0]
    crop = {
        "black": lambda: ObjectCrop(np.zeros_like(good.rgb), good.mask.copy()),
        "blank": lambda: ObjectCrop(np.full_like(good.rgb, 128), good.mask.copy()),
        "blurred": lambda: ObjectCrop(np.repeat(np.repeat(good.rgb[::16, ::16], 16, 0), 16, 1)[: good.rgb.shape[0],
                                                                                                 : good.rgb.shape[1]].copy(),
                                      good.mask.copy()),
        "duplicate": lambda: ObjectCrop(good.rgb.copy(), good.mask.copy()),
        "empty_mask": lambda: ObjectCrop(good.rgb.copy(), np.zeros_like(good.mask)),
        "not_a_crop": lambda: good.rgb,
    }[bad]()
    before = (memory.root / "my_mug" / "object.json").read_text()
    files = sorted(p.name for p in (memory.root / "my_mug").iterdir())
    with pytest.raises(ValueError, match=needle):
        memory.add_confirmed_view("my_mug", crop, embedder)
    assert (memory.root / "my_mug" / "object.json").read_text() == before
    assert sorted(p.name for p in (memory.root / "my_mug").iterdir()) == files
    assert memory.get("my_mug").online_views == 0 and len(memory.get("my_mug").crops) == 4


def test_a_negative_that_is_an_enrolled_view_is_refused_and_one_that_was_confirmed_online_is_withdrawn(memory, embedder):
    with pytest.raises(ValueError, match="one of the object's enrolled views"):
        memory.add_negative_view("my_mug", memory.get("my_mug").crops[1], embedder)
    wrong = view(BLUE, 0.7, 70)  # a look-alike the robot picked and confirmed...
    assert memory.add_confirmed_view("my_mug", wrong, embedder).online_views == 1
    obj = memory.add_negative_view("my_mug", wrong, embedder, source="user: not that one")  # ... then "not that one"
    assert obj.online_views == 0 and obj.online_negatives == 1 and len(obj.crops) == 4
    assert PersonalObjectMemory(memory.root).get("my_mug").online_views == 0


def test_a_failed_write_leaves_the_stored_object_whole(memory, embedder, monkeypatch):
    before = (memory.root / "my_mug" / "object.json").read_text()
    files = sorted(p.name for p in (memory.root / "my_mug").iterdir())

    def broken(self, obj, refs=None):
        raise OSError("disk full")

    monkeypatch.setattr(memory_mod.PersonalObjectMemory, "_write_meta", broken)
    with pytest.raises(OSError, match="disk full"):
        memory.add_confirmed_view("my_mug", view(MINE, 1.3, 80), embedder)
    monkeypatch.undo()
    assert (memory.root / "my_mug" / "object.json").read_text() == before
    assert sorted(p.name for p in (memory.root / "my_mug").iterdir()) == files
    assert not list(memory.root.glob(".my_mug.*"))  # no temporary directory left behind
    assert memory.get("my_mug").online_views == 0  # the cached object is the stored one
    assert PersonalObjectMemory(memory.root).get("my_mug").online_views == 0


def test_unknown_and_read_only_objects_are_refused(tmp_path, memory, embedder):
    with pytest.raises(KeyError):
        memory.add_confirmed_view("nobody", view(MINE, 1.0, 9), embedder)
    ro = PersonalObjectMemory(tmp_path / "elsewhere", read_only_roots=[memory.root])
    with pytest.raises(ValueError, match="outside the writable memory"):
        ro.add_confirmed_view("my_mug", view(MINE, 1.0, 9), embedder)
    with pytest.raises(ValueError, match="max_online"):
        memory.add_confirmed_view("my_mug", view(MINE, 1.0, 9), embedder, max_online=0)
