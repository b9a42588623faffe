"""Personal-object memory: enrol, save/load round trip, list/remove, reference segmentation (core/grounding/memory.py)."""

import json

import cv2
import numpy as np
import pytest
from grounding_synthetic import Cylinder, dots, look_at, render, stripes

from vla_stack.core.grounding.embedders import AppearanceEmbedder
from vla_stack.core.grounding.imageops import mask_iou
from vla_stack.core.grounding.memory import PersonalObjectMemory, check_name, segment_reference
from vla_stack.core.types import CameraIntrinsics

BASE, ACCENT = (225, 215, 200), (170, 60, 40)


def reference_views(texture, n=4, size=160):
    """Close-up renders of one cylinder from n azimuths, on a plain dark-green table (+ exact masks)."""
    intr = CameraIntrinsics.from_fovy(size, size, 40.0)
    views, masks = [], []
    for i in range(n):
        az = 2 * np.pi * i / n
        pos = [0.3 * np.cos(az), 0.3 * np.sin(az), 0.15]
        rgb, _, lab = render([Cylinder(0.0, 0.0, texture=texture)], look_at(pos, [0, 0, 0.045]), intr,
                             table_color=(40, 90, 50), table_center=(0.0, 0.0), table_half=(2.0, 2.0), seed=i)
        views.append(rgb)
        masks.append(lab == 2)
    return views, masks


@pytest.fixture
def embedder():
    return AppearanceEmbedder()


def test_enroll_save_load_round_trip(tmp_path, embedder):
    views, masks = reference_views(dots(BASE, ACCENT))
    mem = PersonalObjectMemory(tmp_path / "objects")
    obj = mem.enroll("my_mug", views, "cup", embedder, aliases=["Bob", "the dotty mug", "Bob"], masks=masks)
    assert obj.directory == tmp_path / "objects" / "my_mug"
    assert obj.aliases == ("Bob", "the dotty mug")
    files = sorted(p.name for p in obj.directory.iterdir())
    assert "object.json" in files and "ref_00.png" in files and "ref_03_mask.png" in files
    assert any(f.startswith("emb_") and f.endswith(".npy") for f in files)
    meta = json.loads((obj.directory / "object.json").read_text())
    assert meta["category"] == "cup" and len(meta["references"]) == 4

    fresh = PersonalObjectMemory(tmp_path / "objects")
    assert fresh.names() == ["my_mug"] and "my_mug" in fresh
    loaded = fresh.get("my_mug")
    assert loaded.category == "cup" and loaded.aliases == obj.aliases
    assert len(loaded.crops) == 4
    for a, b in zip(loaded.crops, obj.crops, strict=True):
        np.testing.assert_array_equal(a.rgb, b.rgb)  # PNG is lossless
        np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_allclose(fresh.reference_embeddings("my_mug", embedder), obj.embeddings[embedder.version])


def test_several_objects_list_and_remove(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path)
    v1, m1 = reference_views(dots(BASE, ACCENT), n=2)
    v2, m2 = reference_views(stripes(BASE, ACCENT), n=2)
    mem.enroll("mug_a", v1, "cup", embedder, masks=m1)
    mem.enroll("plate-1", v2, "plate", embedder, masks=m2)
    assert mem.names() == ["mug_a", "plate-1"]
    assert [o.name for o in mem.objects()] == ["mug_a", "plate-1"]
    mem.remove("mug_a")
    assert mem.names() == ["plate-1"]
    with pytest.raises(KeyError, match="mug_a"):
        mem.get("mug_a")
    with pytest.raises(KeyError):
        mem.remove("mug_a")


def test_enroll_refuses_duplicates_unless_overwrite(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path)
    v, m = reference_views(dots(BASE, ACCENT), n=2)
    mem.enroll("mine", v, "cup", embedder, masks=m)
    with pytest.raises(ValueError, match="already exists"):
        mem.enroll("mine", v, "cup", embedder, masks=m)
    obj = mem.enroll("mine", v[:1], "mug", embedder, masks=m[:1], overwrite=True)
    assert len(PersonalObjectMemory(tmp_path).get("mine").crops) == 1 and obj.category == "mug"


@pytest.mark.parametrize("name", ["", "../evil", "a b", "x" * 65, "-dash", None, "ümlaut"])
def test_bad_names_are_rejected(name):
    with pytest.raises(ValueError):
        check_name(name)


def test_bad_inputs_are_rejected(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path)
    v, m = reference_views(dots(BASE, ACCENT), n=1)
    with pytest.raises(ValueError, match="1..64"):
        mem.enroll("a", [], "cup", embedder)
    with pytest.raises(ValueError, match="category"):
        mem.enroll("a", v, "", embedder, masks=m)
    with pytest.raises(ValueError, match="does not exist"):
        mem.enroll("a", [tmp_path / "missing.png"], "cup", embedder)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read"):
        mem.enroll("a", [junk], "cup", embedder)
    with pytest.raises(ValueError, match="masks"):
        mem.enroll("a", v, "cup", embedder, masks=[])
    empty = [np.zeros(v[0].shape[:2], bool)]
    with pytest.raises(ValueError, match="reference 0"):
        mem.enroll("a", v, "cup", embedder, masks=empty)
    assert mem.names() == []  # nothing half-written


def test_enroll_from_files_with_alpha_and_plain_background(tmp_path, embedder):
    views, masks = reference_views(dots(BASE, ACCENT), n=2)
    rgba = np.dstack([views[0], masks[0].astype(np.uint8) * 255])
    p_alpha = tmp_path / "alpha.png"
    cv2.imwrite(str(p_alpha), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    p_plain = tmp_path / "plain.png"
    cv2.imwrite(str(p_plain), views[1][:, :, ::-1])
    mem = PersonalObjectMemory(tmp_path / "mem")
    obj = mem.enroll("from_files", [p_alpha, p_plain], "cup", embedder)
    assert len(obj.crops) == 2
    # the alpha channel gives the exact mask; the plain photo is segmented from its background
    assert obj.crops[0].mask.sum() == pytest.approx(masks[0].sum(), rel=0.02)


def test_segment_reference_on_plain_background():
    views, masks = reference_views(stripes(BASE, ACCENT), n=3)
    for v, m in zip(views, masks, strict=True):
        assert mask_iou(segment_reference(v), m) > 0.85
    # A crop inside the object (no background) is taken whole.
    ys, xs = np.nonzero(masks[0])
    cy, cx = int(ys.mean()), int(xs.mean())
    inside = views[0][cy - 10 : cy + 10, cx - 6 : cx + 6]
    assert segment_reference(inside).all()


def test_embeddings_of_another_embedder_are_recomputed_and_stored(tmp_path, embedder):
    mem = PersonalObjectMemory(tmp_path)
    v, m = reference_views(dots(BASE, ACCENT), n=2)
    mem.enroll("mine", v, "cup", embedder, masks=m)
    other = AppearanceEmbedder(lbp_margin=3.0)
    e = mem.reference_embeddings("mine", other)
    assert e.shape == (2, other.dim)
    meta = json.loads((tmp_path / "mine" / "object.json").read_text())
    assert set(meta["embeddings"]) == {embedder.version, other.version}
    np.testing.assert_allclose(PersonalObjectMemory(tmp_path).reference_embeddings("mine", other), e)


def test_empty_memory_root_lists_nothing(tmp_path):
    assert PersonalObjectMemory(tmp_path / "nothing here").names() == []
    assert PersonalObjectMemory(tmp_path / "nothing here").objects() == []


def test_stale_appearance_embeddings_are_not_used(tmp_path, embedder):
    """A memory written by an older descriptor version (appearance-v2) is re-embedded, never compared as is."""
    mem = PersonalObjectMemory(tmp_path)
    v, m = reference_views(stripes(BASE, ACCENT), n=2)
    mem.enroll("mine", v, "cup", embedder, masks=m)
    meta_path = tmp_path / "mine" / "object.json"
    meta = json.loads(meta_path.read_text())
    (fname,) = meta["embeddings"].values()
    stale = np.ones((2, 130), np.float32) / np.sqrt(130)
    np.save(tmp_path / "mine" / fname, stale)
    meta["embeddings"] = {"appearance-v2:h48:hs18x4:c35:r1,2,3:m10:w0.25,1.5,0.25,0.5": fname}
    meta_path.write_text(json.dumps(meta))
    fresh = PersonalObjectMemory(tmp_path)
    assert embedder.version.startswith("appearance-v")
    e = fresh.reference_embeddings("mine", embedder)
    assert e.shape == (2, embedder.dim)
    np.testing.assert_allclose(e, embedder.embed_crops(fresh.get("mine").crops), atol=1e-6)
