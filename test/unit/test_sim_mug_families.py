"""Mug texture families (core/sim/mug_families.py): valid, deterministic textures; each family's look-alike rule;
names checked with suggestions; the scene and `vla-stack textures` use them."""

import argparse
import json

import numpy as np
import pytest

from vla_stack.core.sim.config import SceneConfig
from vla_stack.core.sim.mug_families import (
    DEFAULT_FAMILY,
    MIRROR_TRANSFORMS,
    PHOTO_SOURCES,
    WALL_ROWS,
    check_family,
    family_appearances,
    family_description,
    family_names,
    load_photo,
    luma,
    shift_hue,
)
from vla_stack.core.sim.mugs import (
    TEXTURE_HEIGHT,
    TEXTURE_WIDTH,
    appearances_from_directory,
    procedural_appearances,
)

FAMILIES = ("procedural", "photo", "hue", "mirror", "text", "plain")
SEEDS = (0, 1, 2, 5, 11)


def test_the_issue_families_are_registered_and_described():
    assert set(FAMILIES) <= set(family_names())
    for name in family_names():
        text = family_description(name)
        assert text and "\n" not in text and len(text) > 20


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("num", [2, 3, 4])
def test_every_family_generates_valid_distinct_textures(family, num):
    for seed in SEEDS[:3]:
        apps = family_appearances(family, num, seed)
        assert len(apps) == num
        for app in apps:
            assert app.image.shape == (TEXTURE_HEIGHT, TEXTURE_WIDTH, 3) and app.image.dtype == np.uint8
            assert len(app.base_rgb) == 3 and all(0.0 <= v <= 1.0 for v in app.base_rgb)
            assert app.texture_id.split(":")[0] in (family, "proc")
        assert len({a.texture_id for a in apps}) == num
        # look-alikes, not copies: every pair of mugs differs somewhere on the wall print
        for i in range(num):
            for k in range(i + 1, num):
                assert not np.array_equal(apps[i].image[:WALL_ROWS], apps[k].image[:WALL_ROWS]), (family, seed, i, k)


@pytest.mark.parametrize("family", FAMILIES)
def test_families_are_deterministic_per_seed_and_differ_between_seeds(family):
    a = family_appearances(family, 4, 7)
    b = family_appearances(family, 4, 7)
    assert [x.texture_id for x in a] == [x.texture_id for x in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    c = family_appearances(family, 4, 8)
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, c, strict=True))


def test_procedural_family_is_todays_generator_and_the_default():
    assert DEFAULT_FAMILY == "procedural" == SceneConfig().family
    for seed in (0, 3):
        new, old = family_appearances("procedural", 3, seed), procedural_appearances(3, seed)
        assert [a.texture_id for a in new] == [a.texture_id for a in old]
        assert all(np.array_equal(a.image, b.image) for a, b in zip(new, old, strict=True))


def test_shift_hue_keeps_luma_and_changes_colour():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for degrees, sat in ((90.0, 1.0), (180.0, 1.3), (0.0, 0.3), (250.0, 0.8)):
        out = shift_hue(img, degrees, sat)
        assert np.abs(luma(out) - luma(img)).max() <= 1.0
        assert np.abs(out.astype(int) - img.astype(int)).mean() > 5.0


@pytest.mark.parametrize("seed", SEEDS)
def test_hue_look_alikes_differ_only_in_hue_and_saturation(seed):
    """Same print, same luma (a grey-scale camera sees identical mugs), clearly different colour —
    whichever mug of the scene is "mine"."""
    apps = family_appearances("hue", 4, seed)
    for i in range(4):
        for k in range(i + 1, 4):
            a, b = apps[i].image, apps[k].image
            assert np.abs(luma(a) - luma(b)).max() <= 2.0, (seed, i, k)  # each within 1 level of the shared print
            assert np.abs(a.astype(int) - b.astype(int)).mean() > 4.0, (seed, i, k)  # but a visible colour change


def _transform(wall, tag):
    if tag == "fliplr":
        return wall[:, ::-1]
    if tag == "flipud":
        return wall[::-1]
    if tag == "rot180":
        return wall[::-1, ::-1]
    assert tag.startswith("roll")
    return np.roll(wall, int(tag[4:]), axis=1)


@pytest.mark.parametrize("seed", SEEDS)
def test_mirror_look_alikes_are_exact_flips_or_rolls_of_one_print(seed):
    apps = family_appearances("mirror", 4, seed)
    base = apps[0].image
    assert apps[0].texture_id.split(":")[2] == "none"
    tags = [a.texture_id.split(":")[2] for a in apps[1:]]
    kinds = ["roll" if t.startswith("roll") else t for t in tags]
    assert len(set(kinds)) == 3 and set(kinds) <= set(MIRROR_TRANSFORMS)  # three different transforms
    for app, tag in zip(apps[1:], tags, strict=True):
        np.testing.assert_array_equal(app.image[:WALL_ROWS], _transform(base[:WALL_ROWS], tag))
        np.testing.assert_array_equal(app.image[WALL_ROWS:], base[WALL_ROWS:])  # same inside and handle
        if tag.startswith("roll"):
            assert TEXTURE_WIDTH // 4 <= int(tag[4:]) <= 3 * TEXTURE_WIDTH // 4


def test_photo_family_crops_differ_per_mug_and_the_sources_are_installed():
    for i, src in enumerate(PHOTO_SOURCES):
        img = load_photo(i)
        assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256, src.path
        assert src.licence
    apps = family_appearances("photo", 4, 0)
    photo = {a.texture_id.split(":")[1] for a in apps}
    assert len(photo) == 1  # one photograph per scene
    walls = [a.image[:WALL_ROWS].astype(float) for a in apps]
    assert min(np.abs(walls[i] - walls[k]).mean() for i in range(4) for k in range(i + 1, 4)) > 3.0


def test_plain_family_differs_in_shade_only():
    import colorsys

    for seed in SEEDS:
        apps = family_appearances("plain", 4, seed)
        hsv = [colorsys.rgb_to_hsv(*a.base_rgb) for a in apps]
        values = sorted(v for _, _, v in hsv)
        assert min(b - a for a, b in zip(values, values[1:], strict=False)) > 0.05  # distinct shades
        assert max(v for _, _, v in hsv) - min(v for _, _, v in hsv) < 0.5  # ... of one colour
        hues = [h for h, s, _ in hsv if s > 0.1]
        if len(hues) > 1:
            d = max(min(abs(a - b), 1 - abs(a - b)) for a in hues for b in hues)
            assert d < 0.06


def test_text_family_keeps_the_layout_and_changes_word_or_colours():
    for seed in SEEDS:
        apps = family_appearances("text", 4, seed)
        assert apps[0].texture_id.split(":")[2] == "base"
        base_word = apps[0].texture_id.split(":")[1]
        for app in apps[1:]:
            word, change = app.texture_id.split(":")[1:3]
            assert change in ("word", "colour")
            assert (word != base_word) == (change == "word")


def test_unknown_family_is_refused_with_suggestions(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'photo'"):
        check_family("phto")
    with pytest.raises(ValueError, match=r"known: \[.*'hue'.*\]"):
        family_appearances("colour", 3, 0)
    with pytest.raises(ValueError, match="did you mean 'mirror'"):
        SceneConfig(family="miror")
    with pytest.raises(ValueError, match="texture_dir"):
        SceneConfig(family="hue", texture_dir=str(tmp_path))
    with pytest.raises(ValueError, match="num"):
        family_appearances("hue", 5, 0)
    assert SceneConfig(family="text").family == "text"


def test_sim_node_yaml_declares_the_family_with_the_default():
    from vla_stack.bringup import node_parameters
    from vla_stack.paths import config_path

    assert node_parameters(config_path("sim_node.yaml"), "sim_node")["family"] == SceneConfig().family


def test_scene_uses_the_family_and_picks_mine_and_the_layout_as_before():
    """The family only changes the textures: "mine" and the mug placement are the scene seed's, as before."""
    pytest.importorskip("mujoco")
    from vla_stack.core.sim import SimRobot

    for seed in (1, 4, 6):
        layout = {}
        for family in ("procedural", "hue", "photo"):
            robot = SimRobot(SceneConfig(seed=seed, num_mugs=4, family=family))
            try:
                gt = robot.ground_truth()
            finally:
                robot.close()
            assert [m["texture_id"] for m in gt["mugs"]] == [a.texture_id for a in family_appearances(family, 4, seed)]
            layout[family] = (gt["mine"], [np.round(m["position"], 6).tolist() for m in gt["mugs"]])
        assert layout["hue"] == layout["procedural"] == layout["photo"], seed


def _textures_args(argv):
    from vla_stack.lab.grounding import textures

    p = argparse.ArgumentParser()
    textures.add_textures_arguments(p)
    return textures, p.parse_args(argv)


def test_textures_command_writes_pngs_that_objects_dir_loads_unchanged(tmp_path, capsys):
    out = tmp_path / "mirror_3"
    textures, args = _textures_args(["--family", "mirror", "--seed", "3", "--mugs", "3", "-o", str(out)])
    assert textures.textures_main(args) == 0
    manifest = json.loads((out / "textures.json").read_text())
    apps = family_appearances("mirror", 3, 3)
    assert [m["texture_id"] for m in manifest["mugs"]] == [a.texture_id for a in apps]
    loaded = appearances_from_directory(out, 3)
    for got, want in zip(loaded, apps, strict=True):
        np.testing.assert_array_equal(got.image[:WALL_ROWS], want.image[:WALL_ROWS])
    # a directory with other images would mix them in with --objects: refused
    (tmp_path / "mixed").mkdir()
    (out / "mug_0.png").rename(tmp_path / "mixed" / "holiday.png")
    textures, args = _textures_args(["--family", "hue", "-o", str(tmp_path / "mixed")])
    assert textures.textures_main(args) == 2
    textures, args = _textures_args(["--family", "hew", "-o", str(tmp_path / "x")])
    assert textures.textures_main(args) == 2
    assert "did you mean 'hue'" in capsys.readouterr().err
    textures, args = _textures_args(["--list"])
    assert textures.textures_main(args) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in FAMILIES)
