"""Colour channel of the appearance embedder (core/grounding/colour.py, AppearanceConfig.colour_*):
hue look-alikes separated, lighting changes tolerated, today's embeddings unchanged by default."""

import hashlib

import cv2
import numpy as np
import pytest
from grounding_synthetic import Cylinder, default_intrinsics, dots, look_at, plain, render, stripes

from vla_stack.core.grounding.colour import (
    colour_histogram,
    colour_similarity,
    estimate_illuminant,
    white_balance,
    white_balance_gains,
)
from vla_stack.core.grounding.embedders import (
    EMBEDDERS,
    AppearanceConfig,
    AppearanceEmbedder,
    ObjectCrop,
    crop_object,
)
from vla_stack.core.grounding.matching import cosine_matrix

INTR = default_intrinsics()
TEXTURES = {
    # cream cup with rust stripes; blue cup with yellow dots; white cup with green dots (mostly achromatic)
    "stripes": stripes((226, 214, 196), (176, 70, 46)),
    "dots": dots((40, 90, 170), (230, 200, 40)),
    "white_green_dots": dots((230, 230, 225), (40, 140, 90), radius=0.35),
}
WARM, COLD = (1.0, 0.88, 0.7), (0.75, 0.9, 1.0)
"""Per-channel gains of a warmer / colder light (or camera white balance), applied to the whole image."""


def hue_rotated(texture, degrees):
    """The same print with every colour's hue turned by `degrees` (HSV), as a colour-only look-alike."""

    def tex(theta, z):
        c = np.clip(texture(theta, z), 0, 255).astype(np.uint8)[:, None, :]
        hsv = cv2.cvtColor(c, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(round(degrees / 2))) % 180
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[:, 0, :].astype(float)

    return tex


def view(texture, yaw=0.3, gains=(1.0, 1.0, 1.0), light=1.0, seed=0, distance=1.0):
    """Crop of one textured cylinder; `gains` scale R, G, B of the rendered image (light colour)."""
    cam = look_at([0.45 * distance, 0.0, 0.25 * distance], [0, 0, 0.045])
    rgb, _, lab = render([Cylinder(0.0, 0.0, texture=texture, yaw=yaw)], cam, INTR, table_color=(150, 150, 150),
                         table_center=(0.0, 0.0), table_half=(2.0, 2.0), light=light, seed=seed)
    rgb = np.clip(rgb.astype(float) * np.asarray(gains), 0, 255).astype(np.uint8)
    return crop_object(rgb, lab == 2)


def colour_scores(embedder, reference, candidates):
    ref = embedder.colour_features([reference])[0]
    return [colour_similarity(ref, c) for c in embedder.colour_features(candidates)]


# ---- the colour feature --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TEXTURES))
def test_colour_separates_hue_rotated_copies_and_tolerates_lighting(name):
    """Same print: brightness and light-colour changes keep the colour score near 1; the same print
    with its hues turned (40, 90, 180 deg) under the same light scores far lower."""
    tex = TEXTURES[name]
    emb = AppearanceEmbedder(colour_weight=1.0)
    reference = view(tex, yaw=0.0, distance=0.6)  # close-up reference, as enrolment photos are
    same = colour_scores(emb, reference, [
        view(tex, yaw=1.0, seed=1),
        view(tex, yaw=2.0, light=0.65, seed=2),  # dimmer
        view(tex, yaw=1.5, gains=WARM, seed=3),  # warmer light
        view(tex, yaw=1.5, gains=COLD, seed=4),  # colder light
    ])
    rotated = colour_scores(emb, reference, [view(hue_rotated(tex, d), yaw=1.0, seed=1) for d in (40, 90)])
    assert min(same) >= 0.95, same
    assert max(rotated) <= 0.65, rotated
    assert min(same) - max(rotated) >= 0.35, (same, rotated)


def test_white_balance_is_what_makes_the_colour_score_tolerate_a_coloured_light():
    """Without colour constancy a warmer light tints the white cup and its score drops (a rule-enforcing
    check: if white balance stopped working, the lighting test above would fail the same way)."""
    tex = TEXTURES["white_green_dots"]
    reference = view(tex, yaw=0.0, distance=0.6)
    warm = view(tex, yaw=1.5, gains=WARM, seed=3)
    balanced = colour_scores(AppearanceEmbedder(colour_weight=1.0), reference, [warm])[0]
    raw = colour_scores(AppearanceEmbedder(colour_weight=1.0, colour_constancy="none"), reference, [warm])[0]
    assert balanced >= 0.95 and raw <= 0.8, (balanced, raw)


def test_white_balance_undoes_per_channel_gains_within_the_clamp():
    rng = np.random.default_rng(0)
    rgb = rng.integers(40, 200, (32, 32, 3)).astype(np.float64)
    mask = np.ones((32, 32), bool)
    for method in ("gray_world", "shades_of_gray", "max_rgb"):
        a = white_balance(rgb, mask, method)
        b = white_balance(rgb * np.array([1.3, 1.0, 0.7]), mask, method)
        chroma = lambda x: x / x.sum(axis=2, keepdims=True)  # noqa: E731
        np.testing.assert_allclose(chroma(a), chroma(b), atol=0.02, err_msg=method)
    g = white_balance_gains(np.full((8, 8, 3), (200.0, 20.0, 20.0)), np.ones((8, 8), bool), "gray_world", max_gain=2.0)
    assert g.max() <= 2.0 + 1e-9 and g.min() >= 0.5 - 1e-9  # a plain red object is not turned grey
    np.testing.assert_array_equal(white_balance_gains(rgb, mask, "none"), np.ones(3))
    with pytest.raises(ValueError, match="non-empty"):
        estimate_illuminant(rgb, np.zeros((32, 32), bool))


def test_colour_histogram_is_a_unit_vector_and_white_objects_agree():
    """Two white cups (only hue noise) look alike in colour; a white and a coloured one do not."""
    rng = np.random.default_rng(1)
    mask = np.ones((24, 24), bool)
    white1 = np.clip(220 + rng.normal(0, 4, (24, 24, 3)), 0, 255)
    white2 = np.clip(200 + rng.normal(0, 4, (24, 24, 3)), 0, 255)
    red = np.clip(np.array([200.0, 40, 40]) + rng.normal(0, 4, (24, 24, 3)), 0, 255)
    h1, h2, hr = (colour_histogram(x, mask) for x in (white1, white2, red))
    for h in (h1, h2, hr):
        assert np.linalg.norm(h) == pytest.approx(1.0, abs=1e-9)
    assert colour_similarity(h1, h2) >= 0.98
    assert colour_similarity(h1, hr) <= 0.2


# ---- fusion with the metric ----------------------------------------------------------------------
def test_fused_score_is_the_documented_mix_of_metric_and_colour_scores():
    """cosine of fused embeddings = (metric_score + w * colour_score) / (1 + w), exactly."""
    tex = TEXTURES["stripes"]
    crops = [view(tex, yaw=0.0, distance=0.6), view(tex, yaw=1.0, seed=1), view(hue_rotated(tex, 90), seed=2)]
    w = 0.7
    off, on = AppearanceEmbedder(), AppearanceEmbedder(colour_weight=w)
    metric = cosine_matrix(off.embed_crops(crops), off.embed_crops(crops))
    colour = on.colour_features(crops) @ on.colour_features(crops).T
    fused_emb = on.embed_crops(crops)
    assert fused_emb.shape == (3, on.dim) and on.dim == off.dim + on.colour_dim
    np.testing.assert_allclose(np.linalg.norm(fused_emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(cosine_matrix(fused_emb, fused_emb), (metric + w * colour) / (1 + w), atol=1e-5)


def test_colour_channel_ranks_my_cup_above_its_hue_rotated_copy_when_the_metric_is_hue_blind():
    """A descriptor that cannot see hue (the raw appearance descriptor with its colour blocks weighted
    0: texture only, as a metric that discarded hue) scores the hue-rotated copy about as high as
    my cup under a warmer, dimmer light; with the colour channel my cup wins by a clear margin."""
    tex = TEXTURES["stripes"]
    reference = [view(tex, yaw=0.0, distance=0.6)]
    mine = view(tex, yaw=1.2, gains=WARM, light=0.85, seed=1)
    copies = [view(hue_rotated(tex, d), yaw=1.2, seed=1) for d in (60, 120)]
    blind = dict(projection="none", weights=(0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0))
    margins = {}
    for w in (0.0, 1.0):
        emb = AppearanceEmbedder(colour_weight=w, **blind)
        s = cosine_matrix(emb.embed_crops([mine, *copies]), emb.embed_crops(reference))[:, 0]
        margins[w] = float(s[0] - s[1:].max())
    assert margins[0.0] < 0.02, margins  # hue-blind: no useful margin
    assert margins[1.0] >= 0.2, margins


# ---- default unchanged ---------------------------------------------------------------------------
def _regression_crops():
    """Three deterministic striped object crops (what the golden hashes below were computed from)."""
    rng = np.random.default_rng(1313)
    out = []
    yy, xx = np.mgrid[0:96, 0:64]
    mask = ((xx - 32) / 26.0) ** 2 + ((yy - 48) / 44.0) ** 2 <= 1.0
    for k in range(3):
        base = np.array([220, 200, 180]) if k != 1 else np.array([60, 90, 160])
        accent = np.array([180, 60, 40]) if k != 2 else np.array([40, 160, 70])
        stripe = ((yy // (6 + 3 * k)) % 2 == 0)[..., None]
        img = np.where(stripe, accent, base) + rng.normal(0, 6, (96, 64, 3))
        img[~mask] = (120, 120, 120)
        out.append(ObjectCrop(np.clip(img, 0, 255).astype(np.uint8), mask.copy()))
    return out


# Computed with the code before the colour channel existed (main at e84cbbd), shipped metric and raw.
GOLDEN = {
    "default": ("appearance-v4:appearance-blocks-v1:h48:wt0.4:whs36x6:hs18x4:c35:r1,2,3:m10:p0d1ffd884f",
                "b44a989380ee8f99dd714fd66e5b91f0150beb0344f2bd93370e469a7c0f47a9"),
    "none": ("appearance-v3:appearance-blocks-v1:h48:wt0.4:whs36x6:hs18x4:c35:r1,2,3:m10:w0,0,0,0.5,1,1,0.5",
             "66d3a37e3b651dae96c976d19eca485f236f6da73bdcead83ad3cbb6d5f17e15"),
}


@pytest.mark.parametrize("projection", sorted(GOLDEN))
def test_default_config_gives_bit_identical_embeddings_to_before(projection):
    """Colour channel off (the default; any colour_constancy setting is inert then): same version
    string, same dimension, same bytes as before this feature."""
    version, digest = GOLDEN[projection]
    for emb in (AppearanceEmbedder(projection=projection),
                AppearanceEmbedder(projection=projection, colour_weight=0.0, colour_constancy="gray_world")):
        out = emb.embed_crops(_regression_crops())
        assert emb.version == version
        assert hashlib.sha256(out.tobytes()).hexdigest() == digest


def test_colour_settings_change_the_version_so_memory_re_embeds():
    off, on = AppearanceEmbedder(), AppearanceEmbedder(colour_weight=0.5)
    assert on.version != off.version and on.version.startswith(off.version + ":colour-v1")
    assert AppearanceEmbedder(colour_weight=0.5, colour_hue_bins=18).version != on.version
    assert AppearanceEmbedder(colour_weight=0.5, colour_constancy="none").version != on.version


def test_white_balancing_the_metric_input_is_another_layout(caplog):
    """colour_constancy_scope 'all' changes what the shipped metric was fitted on: it is not applied."""
    emb = AppearanceEmbedder(colour_constancy_scope="all")
    assert emb.layout != AppearanceEmbedder().layout and emb.projection is None
    assert "shipped metric" in caplog.text
    assert AppearanceEmbedder(colour_constancy_scope="all", colour_constancy="none").projection is not None


@pytest.mark.parametrize("bad, match", [
    ({"colour_weight": -0.1}, "colour_weight"),
    ({"colour_weight": float("nan")}, "colour_weight"),
    ({"colour_weight": 11.0}, "colour_weight"),
    ({"colour_constancy": "retinex"}, "colour_constancy must be one of"),
    ({"colour_constancy_p": 0.5}, "colour_constancy_p"),
    ({"colour_max_gain": 0.9}, "colour_max_gain"),
    ({"colour_constancy_scope": "crop"}, "colour_constancy_scope"),
    ({"colour_hue_bins": 2}, "colour_hue_bins"),
    ({"colour_sat_bins": 0}, "colour_sat_bins"),
    ({"colour_min_saturation": 1.0}, "colour_min_saturation"),
])
def test_colour_config_is_validated(bad, match):
    with pytest.raises(ValueError, match=match):
        AppearanceConfig(**bad)
    with pytest.raises(ValueError, match=match):
        EMBEDDERS.create("appearance", **bad)


def test_plain_colour_cups_of_other_hues_are_told_apart():
    reference = view(plain((200, 60, 50)), yaw=0.0, distance=0.6)
    emb = AppearanceEmbedder(colour_weight=1.0)
    same, green, blue = colour_scores(emb, reference, [view(plain((200, 60, 50)), light=0.7, seed=1),
                                                       view(plain((60, 190, 70)), seed=1),
                                                       view(plain((50, 80, 200)), seed=1)])
    assert same >= 0.95 and max(green, blue) <= 0.5, (same, green, blue)


def test_appearance_colour_is_a_selectable_backend_name():
    """`embedder: appearance_colour` (node parameter, eval-grounding --embedder) turns the channel on."""
    emb = EMBEDDERS.create("appearance_colour")
    assert isinstance(emb, AppearanceEmbedder) and emb.name == "appearance"
    assert emb.config.colour_weight > 0 and emb.colour_dim > 0
    assert EMBEDDERS.create("appearance_colour", colour_weight=2.0).config.colour_weight == 2.0
    assert EMBEDDERS.create("appearance").config.colour_weight == 0.0
