"""Families of look-alike mug textures: `name -> generator(num, seed) -> list[MugAppearance]`.

Each family is one rule for the `num` mugs of a scene (mug 0..num-1); which mug is the user's
("mine") is chosen by the scene exactly as before (`SceneConfig.mine_index`, else the scene seed),
never by the family, so every mug of a scene is a look-alike of every other under the family's rule.
Everything is generated offline from a seed (deterministic: same `(num, seed)`, same pixels) or
from images that ship in installed wheels; nothing is downloaded.

    procedural  today's generator (`mugs.procedural_appearances`): one colour family per scene, a different pattern each
    photo       crops of one real photograph per scene: each mug a different location, scale and rotation
    hue         one print per scene; the others are that print with hue rotated and/or saturation changed (luma kept)
    mirror      one asymmetric print per scene; the others are it mirrored, upside down, rotated 180° or turned around the mug
    text        one text/logo layout per scene; the mugs differ in the word or in the colours
    plain       plain mugs of one colour in slightly different shades, all with the same band

Image sources of `photo` (and of the photographic prints of `hue` / `mirror`), see `PHOTO_SOURCES`:
scikit-learn's two sample photos (`sklearn/datasets/images/china.jpg`, `flower.jpg`: CC BY 2.0,
Flickr users danielbuechele and vultilion, as the wheel's README.txt states) and photographic
textures of the pybullet wheel's `pybullet_data` (zlib licence of the pybullet wheel). Text is
drawn with Pillow's built-in scalable font (`ImageFont.load_default(size)`, Aileron, SIL OFL),
so no system font is needed.

Texture layout: `mugs.py` (the wall print is the top `PATTERN_FRACTION` of the rows; then the
inside and handle colour bands).
"""

from __future__ import annotations

import colorsys
import importlib.util
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from vla_stack.core.registry import Registry
from vla_stack.core.sim.mugs import (
    PATTERN_FRACTION,
    PATTERNS,
    TEXTURE_HEIGHT,
    TEXTURE_WIDTH,
    MugAppearance,
    _assemble,
    _pattern_mask,
    procedural_appearances,
)

DEFAULT_FAMILY = "procedural"
"""The family of today's scenes (`SceneConfig.family` default): behaviour unchanged."""

MAX_MUGS = 4
"""Largest number of mugs every family supports (the scene's limit)."""

WALL_ROWS = int(round(PATTERN_FRACTION * TEXTURE_HEIGHT))
"""Rows of the texture that wrap around the outer wall (the print)."""

FAMILIES = Registry("mug texture family")
"""Family name -> generator `(num, seed) -> list[MugAppearance]`; its docstring's first line describes it."""

Generator = Callable[[int, int], list[MugAppearance]]


@dataclass(frozen=True)
class PhotoSource:
    """A photograph shipped in an installed wheel.

    Args:
        package: importable top-level package holding it (located without importing it).
        path: path inside the package directory.
        licence: licence and attribution of the image.
    """

    package: str
    path: str
    licence: str


PHOTO_SOURCES: tuple[PhotoSource, ...] = (
    PhotoSource("sklearn", "datasets/images/flower.jpg", "CC BY 2.0, Flickr user vultilion (scikit-learn sample image)"),
    PhotoSource("sklearn", "datasets/images/china.jpg", "CC BY 2.0, Flickr user danielbuechele (scikit-learn sample image)"),
    PhotoSource("pybullet_data", "quadruped/t-motor.jpg", "zlib (pybullet wheel's pybullet_data)"),
    PhotoSource("pybullet_data", "racecar/meshes/wheel.jpg", "zlib (pybullet wheel's pybullet_data)"),
    PhotoSource("pybullet_data", "tray/tray.jpg", "zlib (pybullet wheel's pybullet_data)"),
    PhotoSource("pybullet_data", "heightmaps/gimp_overlay_out.png", "zlib (pybullet wheel's pybullet_data)"),
)
"""Photographs the `photo` family crops (and `hue` / `mirror` use for photographic prints)."""

TEXT_WORDS = (
    "COFFEE", "TEA", "LAB", "MORNING", "BOSS", "HELLO", "ROBOT", "DATA", "MUG", "LATTE", "MONDAY", "CHILL",
    "DREAM", "SMILE", "FOCUS", "TEAM", "CODE", "PYTHON", "SCIENCE", "HAPPY", "CAFE", "MOCHA", "BREW", "RELAX",
)
"""Words of the `text` family's prints."""

MIRROR_TRANSFORMS = ("fliplr", "flipud", "rot180", "roll")
"""How a `mirror` look-alike's wall print derives from the scene's print: mirrored around the mug
(columns reversed), upside down (rows reversed), rotated 180° (both), turned around the mug
relative to the handle (columns rolled by 1/4..3/4 of the circumference)."""


# ---- registry access -------------------------------------------------------------------------------
def family_names() -> list[str]:
    """Registered family names, sorted."""
    return FAMILIES.names()


def check_family(name: str) -> str:
    """`name` if it is a registered family; ValueError with the known names and a "did you mean" otherwise."""
    try:
        FAMILIES.get(name)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    return name


def family_description(name: str) -> str:
    """One-line description of family `name` (ValueError if unknown)."""
    gen = FAMILIES.get(check_family(name))
    return (gen.__doc__ or name).strip().splitlines()[0]


def family_appearances(name: str, num: int, seed: int) -> list[MugAppearance]:
    """The `num` mug textures of family `name` for scene `seed` (deterministic).

    Raises:
        ValueError: unknown family (with suggestions) or `num` outside 1..`MAX_MUGS`.
        FileNotFoundError: a photograph the family needs is not installed (says which package).
    """
    gen = FAMILIES.get(check_family(name))
    if not 1 <= num <= MAX_MUGS:
        raise ValueError(f"num must be 1..{MAX_MUGS}, got {num}")
    out = gen(num, seed)
    assert len(out) == num
    return out


def _rng(family: str, seed: int, *more: int) -> np.random.Generator:
    """Seeded generator of one family (a family-specific stream: families do not share draws)."""
    return np.random.default_rng([zlib.crc32(family.encode()), seed, *more])


# ---- image helpers -----------------------------------------------------------------------------------
@lru_cache(maxsize=len(PHOTO_SOURCES))
def load_photo(index: int) -> np.ndarray:
    """Photograph `PHOTO_SOURCES[index]` as (H, W, 3) uint8 RGB (read once, cached; do not modify).

    Raises:
        FileNotFoundError: its package is not installed or the file is missing (names the package).
    """
    import cv2

    src = PHOTO_SOURCES[index]
    spec = importlib.util.find_spec(src.package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"photo source {src.package}/{src.path} needs the '{src.package}' package "
                                f"(pip install {'scikit-learn' if src.package == 'sklearn' else 'pybullet'})")
    path = Path(list(spec.submodule_search_locations)[0]) / src.path
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"photo source {path} is missing or unreadable")
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    rgb.setflags(write=False)
    return rgb


def _photo_crop(photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A wall print (WALL_ROWS, TEXTURE_WIDTH, 3) uint8 cut from `photo`: random centre, scale and rotation.

    The crop has the wall's physical aspect (circumference 2πr : wall height ≈ 2.1 : 1 for the
    default mug), so the photo is not distorted much once wrapped.
    """
    import cv2

    h, w = photo.shape[:2]
    aspect = 2.1
    crop_w = rng.uniform(0.35, 0.9) * min(w, aspect * h)  # source pixels across the crop
    crop_h = crop_w / aspect
    angle = np.deg2rad(rng.uniform(-35.0, 35.0))
    half = 0.5 * np.hypot(crop_w, crop_h)
    cx = rng.uniform(min(half, w / 2), max(w - half, w / 2))
    cy = rng.uniform(min(half, h / 2), max(h - half, h / 2))
    sx, sy = crop_w / TEXTURE_WIDTH, crop_h / WALL_ROWS
    c, s = np.cos(angle), np.sin(angle)
    # destination (u, v) -> source (x, y): rotate the scaled, centred destination grid about the crop centre
    m = np.array([[c * sx, -s * sy, 0.0], [s * sx, c * sy, 0.0]])
    m[:, 2] = np.array([cx, cy]) - m[:, :2] @ np.array([TEXTURE_WIDTH / 2, WALL_ROWS / 2])
    wall = cv2.warpAffine(photo, m, (TEXTURE_WIDTH, WALL_ROWS), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)
    return wall, f"c{cx:.0f},{cy:.0f}s{crop_w:.0f}r{np.rad2deg(angle):.0f}"


def _from_wall(texture_id: str, wall: np.ndarray) -> MugAppearance:
    """Appearance with wall print `wall` (uint8); inside and handle take its mean colour (as `appearances_from_directory`)."""
    mean = wall.reshape(-1, 3).mean(0) / 255.0
    return MugAppearance(texture_id, _assemble(wall, mean * 0.9, mean), tuple(float(v) for v in mean))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))))


# YIQ (NTSC): Y is the luma that stays fixed; hue rotates in the (I, Q) plane.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 RGB image, float 0..255 (what `shift_hue` keeps)."""
    return image.astype(np.float64) @ _RGB_TO_YIQ[0]


def shift_hue(image: np.ndarray, degrees: float, saturation: float = 1.0) -> np.ndarray:
    """`image` (…, 3) uint8 RGB with its hue rotated by `degrees` and its chroma scaled by
    `saturation`, keeping each pixel's luma (BT.601) — so a grey-scale view of the result equals
    that of `image` (up to rounding, ≤ 1 level): only hue and saturation differ.

    Colours the rotation pushes outside the RGB cube have their chroma shortened (towards grey of
    the same luma) until they fit, instead of being clipped per channel, which would change luma.
    """
    rgb = image.astype(np.float64) / 255.0
    yiq = rgb @ _RGB_TO_YIQ.T
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * saturation
    yiq[..., 1:] = yiq[..., 1:] @ rot.T
    y = yiq[..., :1]
    chroma = yiq @ _YIQ_TO_RGB.T - y  # zero-luma offset of each channel from grey
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(chroma > 0, (1.0 - y) / chroma, np.where(chroma < 0, -y / chroma, np.inf))
    t = np.clip(room.min(axis=-1, keepdims=True), 0.0, 1.0)
    out = y + t * chroma
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _boost_chroma(wall: np.ndarray, target: float = 0.16) -> np.ndarray:
    """`wall` with its chroma scaled up (≤ 3x, luma kept) so its mean chroma is about `target`
    (YIQ units on 0..1 RGB): a print with colour to rotate."""
    gain = float(np.clip(target / max(_chroma(wall), 1e-3), 1.0, 3.0))
    return shift_hue(wall, 0.0, gain)


# ---- families --------------------------------------------------------------------------------------
@FAMILIES.register("procedural")
def procedural_family(num: int, seed: int) -> list[MugAppearance]:
    """Today's generator: one colour family per scene, a different geometric pattern on each mug."""
    return procedural_appearances(num, seed)


@FAMILIES.register("photo")
def photo_family(num: int, seed: int) -> list[MugAppearance]:
    """Real photographs (scikit-learn samples, pybullet_data textures): one photo per scene, each mug a different crop, scale and rotation of it."""
    rng = _rng("photo", seed)
    index = int(rng.integers(len(PHOTO_SOURCES)))
    photo = load_photo(index)
    name = Path(PHOTO_SOURCES[index].path).stem
    out = []
    for i in range(num):
        wall, how = _photo_crop(photo, _rng("photo", seed, i))
        out.append(_from_wall(f"photo:{name}:{how}:{seed}:{i}", wall))
    return out


def _chroma(wall: np.ndarray) -> float:
    """Mean chroma of a uint8 RGB image (YIQ units on 0..1 RGB; ~0.03 greyish, > 0.1 colourful)."""
    yiq = (wall.astype(np.float64) / 255.0) @ _RGB_TO_YIQ.T
    return float(np.hypot(yiq[..., 1], yiq[..., 2]).mean())


def _colour_print(family: str, seed: int) -> tuple[np.ndarray, str]:
    """A colourful wall print for `hue`: a chroma-boosted photo crop, or a saturated two-colour pattern
    (also when the crop stays too grey for a hue change to show)."""
    rng = _rng(family, seed, 99)
    if rng.uniform() < 0.5:
        index = int(rng.integers(len(PHOTO_SOURCES)))
        wall, _ = _photo_crop(load_photo(index), rng)
        wall = _boost_chroma(wall)
        if _chroma(wall) >= 0.1:
            return wall, f"photo-{Path(PHOTO_SOURCES[index].path).stem}"
    kind = str(rng.choice(PATTERNS))
    hue = rng.uniform()
    base = _hsv(hue, rng.uniform(0.45, 0.8), rng.uniform(0.55, 0.9))
    accent = _hsv(hue + rng.uniform(0.25, 0.5) * rng.choice([-1, 1]), rng.uniform(0.6, 0.9), rng.uniform(0.45, 0.85))
    mask = _pattern_mask(kind, rng, WALL_ROWS, TEXTURE_WIDTH)[..., None]
    wall = (1 - mask) * base + mask * accent + rng.normal(0.0, 0.012, (WALL_ROWS, TEXTURE_WIDTH, 1))
    return np.clip(wall * 255, 0, 255).astype(np.uint8), f"pattern-{kind}"


@FAMILIES.register("hue")
def hue_family(num: int, seed: int) -> list[MugAppearance]:
    """Colour-only look-alikes: one print per scene, the other mugs carry it with hue rotated and/or saturation changed (same luma, same print)."""
    wall, what = _colour_print("hue", seed)
    base = _from_wall("", wall)
    rng = _rng("hue", seed)
    out = [MugAppearance(f"hue:{what}:rot0:sat1.00:{seed}:0", base.image, base.base_rgb)]
    sat_only_done = False
    for i in range(1, num):
        if not sat_only_done and num > 2 and rng.uniform() < 0.3:  # same hue, lower saturation
            sat_only_done = True
            degrees, sat = 0.0, float(rng.uniform(0.25, 0.45))  # washed out (more saturation would hit the gamut)
        else:  # evenly spread hue rotations (≥ 60° apart for up to 4 mugs), some saturation change
            degrees = float(i * 360.0 / num + rng.uniform(-15.0, 15.0))
            sat = float(rng.uniform(0.75, 1.25))
        image = shift_hue(base.image, degrees, sat)
        rgb = image[:WALL_ROWS].reshape(-1, 3).mean(0) / 255.0
        out.append(MugAppearance(f"hue:{what}:rot{degrees:.0f}:sat{sat:.2f}:{seed}:{i}", image,
                                 tuple(float(v) for v in rgb)))
    return out


def _text_wall(word: str, background: tuple[np.ndarray, np.ndarray], ink: np.ndarray, layout: dict) -> np.ndarray:
    """A wall print: `word` and a logo in `ink` on a plain or two-tone background, printed on both sides of the mug."""
    from PIL import Image, ImageDraw, ImageFont

    top, bottom = (tuple(int(v) for v in np.clip(c * 255, 0, 255)) for c in background)
    fill = tuple(int(v) for v in np.clip(ink * 255, 0, 255))
    img = Image.new("RGB", (TEXTURE_WIDTH, WALL_ROWS), top)
    draw = ImageDraw.Draw(img)
    if layout["two_tone"]:
        draw.rectangle((0, int(layout["split"] * WALL_ROWS), TEXTURE_WIDTH, WALL_ROWS), fill=bottom)
    size = layout["font_size"]
    room = TEXTURE_WIDTH // 2 - layout["logo_size"] - 8 - int(layout["x"] * TEXTURE_WIDTH) - 6  # one side's width, px
    font = ImageFont.load_default(size=size)
    while size > 12 and draw.textlength(word, font=font) > room:  # long words: smaller type, same layout
        size -= 2
        font = ImageFont.load_default(size=size)
    for side in (0.0, 0.5):  # a print on each side of the mug, as most printed mugs have
        x0 = int((layout["x"] + side) * TEXTURE_WIDTH)
        y0 = int(layout["y"] * WALL_ROWS)
        r = layout["logo_size"] // 2
        cx, cy = x0 + r, y0 + layout["font_size"] // 2 + 4
        box = (cx - r, cy - r, cx + r, cy + r)
        if layout["logo"] == "circle":
            draw.ellipse(box, fill=fill)
        elif layout["logo"] == "square":
            draw.rectangle(box, fill=fill)
        elif layout["logo"] == "triangle":
            draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
        else:  # ring
            draw.ellipse(box, outline=fill, width=max(2, r // 3))
        draw.text((x0 + 2 * r + 8, y0), word, font=font, fill=fill)
    return np.asarray(img, np.uint8).copy()


@FAMILIES.register("text")
def text_family(num: int, seed: int) -> list[MugAppearance]:
    """Text/logo prints (Pillow's built-in font) on plain or two-tone backgrounds: same layout per scene, different words or colours."""
    rng = _rng("text", seed)
    layout = {
        "two_tone": bool(rng.uniform() < 0.5), "split": float(rng.uniform(0.55, 0.8)),
        "font_size": int(rng.integers(48, 80)), "x": float(rng.uniform(0.02, 0.12)), "y": float(rng.uniform(0.1, 0.4)),
        "logo": str(rng.choice(["circle", "square", "triangle", "ring"])), "logo_size": int(rng.integers(30, 50)),
    }
    words = [str(w) for w in rng.choice(TEXT_WORDS, size=num, replace=False)]
    hue = rng.uniform()

    def colours(r: np.random.Generator, h: float) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        bg = _hsv(h, r.uniform(0.0, 0.3), r.uniform(0.85, 0.97))
        bg2 = _hsv(h + r.uniform(-0.1, 0.1), r.uniform(0.3, 0.7), r.uniform(0.5, 0.8))
        ink = _hsv(h + r.uniform(0.3, 0.7), r.uniform(0.6, 0.9), r.uniform(0.2, 0.5))
        return (bg, bg2), ink

    scheme = colours(rng, hue)
    out = []
    for i in range(num):
        mug_rng = _rng("text", seed, i)
        change = "base" if i == 0 else str(mug_rng.choice(["word", "colour"]))
        word = words[i] if change == "word" else words[0]
        # a colour change moves the whole scheme's hue by 0.2..0.8 of the circle (clearly different inks)
        background, ink = colours(mug_rng, hue + mug_rng.uniform(0.2, 0.8)) if change == "colour" else scheme
        wall = _text_wall(word, background, ink, layout)
        wall = np.clip(wall + mug_rng.normal(0.0, 3.0, wall.shape), 0, 255).astype(np.uint8)  # glaze variation
        app = _from_wall(f"text:{word}:{change}:{seed}:{i}", wall)
        out.append(app)
    return out


@FAMILIES.register("mirror")
def mirror_family(num: int, seed: int) -> list[MugAppearance]:
    """Mirror look-alikes: one asymmetric print per scene (photo crop or text), the others mirrored, upside down, rotated 180° or turned around the mug."""
    rng = _rng("mirror", seed)
    if rng.uniform() < 0.5:
        index = int(rng.integers(len(PHOTO_SOURCES)))
        wall, _ = _photo_crop(load_photo(index), rng)
        what = f"photo-{Path(PHOTO_SOURCES[index].path).stem}"
    else:
        word = str(rng.choice(TEXT_WORDS))
        layout = {"two_tone": bool(rng.uniform() < 0.5), "split": float(rng.uniform(0.55, 0.8)),
                  "font_size": int(rng.integers(48, 80)), "x": float(rng.uniform(0.02, 0.12)),
                  "y": float(rng.uniform(0.1, 0.3)), "logo": "triangle", "logo_size": int(rng.integers(30, 50))}
        hue = rng.uniform()
        background = (_hsv(hue, 0.15, 0.92), _hsv(hue + 0.1, 0.5, 0.7))
        wall = _text_wall(word, background, _hsv(hue + 0.5, 0.8, 0.35), layout)
        what = f"text-{word}"
    kinds = [str(k) for k in rng.choice(MIRROR_TRANSFORMS, size=num - 1, replace=False)]
    out = [_from_wall(f"mirror:{what}:none:{seed}:0", wall)]
    base = out[0]
    for i, kind in enumerate(kinds, start=1):
        shift = int(rng.integers(TEXTURE_WIDTH // 4, 3 * TEXTURE_WIDTH // 4 + 1)) if kind == "roll" else 0
        image = base.image.copy()
        image[:WALL_ROWS] = mirror_wall(base.image[:WALL_ROWS], kind, shift)
        tag = f"roll{shift}" if kind == "roll" else kind
        out.append(MugAppearance(f"mirror:{what}:{tag}:{seed}:{i}", image, base.base_rgb))
    return out


def mirror_wall(wall: np.ndarray, kind: str, shift: int = 0) -> np.ndarray:
    """`wall` (rows, cols, 3) transformed by `kind` (one of `MIRROR_TRANSFORMS`; `shift` columns for "roll")."""
    if kind == "fliplr":
        return wall[:, ::-1].copy()
    if kind == "flipud":
        return wall[::-1].copy()
    if kind == "rot180":
        return wall[::-1, ::-1].copy()
    if kind == "roll":
        return np.roll(wall, shift, axis=1)
    raise ValueError(f"unknown mirror transform '{kind}' (known: {MIRROR_TRANSFORMS})")


@FAMILIES.register("plain")
def plain_family(num: int, seed: int) -> list[MugAppearance]:
    """Plain mugs of one colour in slightly different shades (value steps of ~0.09), all with the same band."""
    rng = _rng("plain", seed)
    hue, sat, value = rng.uniform(), rng.uniform(0.25, 0.75), rng.uniform(0.4, 0.72)
    steps = rng.choice(np.arange(-2, 3), size=num, replace=False) * 0.09 + rng.uniform(-0.015, 0.015, num)
    band_centre, band_width = rng.uniform(0.2, 0.8), rng.uniform(0.06, 0.16)
    band = _hsv(hue + 0.5, rng.uniform(0.0, 0.4), 0.95) if value < 0.6 else _hsv(hue, rng.uniform(0.3, 0.8), 0.2)
    rows = (np.arange(WALL_ROWS) + 0.5) / WALL_ROWS
    in_band = (np.abs(rows - band_centre) < band_width / 2)[:, None, None]
    out = []
    for i in range(num):
        mug_rng = _rng("plain", seed, i)
        body = _hsv(hue + mug_rng.normal(0, 0.008), sat + mug_rng.normal(0, 0.03), value + float(steps[i]))
        wall = np.where(in_band, band, body) + mug_rng.normal(0.0, 0.012, (WALL_ROWS, TEXTURE_WIDTH, 1))
        wall8 = np.clip(wall * 255, 0, 255).astype(np.uint8)
        out.append(MugAppearance(f"plain:v{float(steps[i]):+.2f}:{seed}:{i}", _assemble(wall8, body * 0.92, body),
                                 tuple(float(v) for v in body)))
    return out
