"""Look-alike mugs: one procedural shape (visual mesh with UVs + simple collision shapes) and
per-mug textures, either generated from a seed or loaded from a directory of images.

Mug frame: origin at the centre of the bottom face, z up along the body axis, handle on +x.
All lengths in m.

Texture layout (one RGB image per mug, `TEXTURE_HEIGHT x TEXTURE_WIDTH`): the top
`PATTERN_FRACTION` of the rows is wrapped around the outer wall (u = angle / 2π,
v = height); the next band is the inside colour (inner wall, rim, bottoms); the last band is
the handle colour. So one material per mug textures the whole mesh.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TEXTURE_WIDTH = 512
TEXTURE_HEIGHT = 256
PATTERN_FRACTION = 0.75
"""Fraction of the texture rows (from row 0) wrapped around the outer wall."""
_INSIDE_V = 0.8125  # v of the middle of the inside-colour band
_HANDLE_V = 0.9375  # v of the middle of the handle-colour band

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

PATTERNS = ("stripes", "dots", "checker", "zigzag", "band", "vertical_stripes", "rings", "waves", "grid")
"""Procedural pattern families; the mugs of one scene each get a different one."""


@dataclass(frozen=True)
class MugGeometry:
    """Shape shared by all mugs of a scene (m).

    Args:
        radius: outer radius of the body. The simulated gripper opens 0.08 m, so a body diameter up to
            ~0.07 m can be grasped across.
        height: body height.
        wall: wall thickness (visual only; the collision body is a solid cylinder).
        bottom: bottom thickness (visual only).
        handle_reach: how far the handle sticks out of the wall.
        handle_height: vertical extent of the handle (centre line).
        handle_thickness: radius of the handle's tube.
        mass: kg.
    """

    radius: float = 0.030
    height: float = 0.090
    wall: float = 0.004
    bottom: float = 0.006
    handle_reach: float = 0.026
    handle_height: float = 0.050
    handle_thickness: float = 0.0055
    mass: float = 0.25

    def __post_init__(self) -> None:
        if not 0.01 <= self.radius <= 0.037:
            raise ValueError(f"mug radius must be 0.01..0.037 m (the gripper opens 0.08 m), got {self.radius}")
        if not self.height > 2 * self.bottom:
            raise ValueError("mug height must exceed twice the bottom thickness")
        if not 0 < self.wall < self.radius:
            raise ValueError("mug wall must be thinner than the radius")
        if self.handle_height >= self.height:
            raise ValueError("handle must be shorter than the mug")

    @property
    def footprint_radius(self) -> float:
        """Radius of a circle around the axis that contains the mug including its handle, m."""
        return self.radius + self.handle_reach + self.handle_thickness

    @property
    def handle_center_z(self) -> float:
        """Height of the handle's middle, m."""
        return 0.55 * self.height


@dataclass
class MugMesh:
    """Triangle mesh with one texture coordinate per vertex.

    Args:
        vertices: (V, 3) m, mug frame.
        faces: (F, 3) vertex indices, counter-clockwise seen from outside.
        texcoords: (V, 2) u, v in [0, 1] (v = 0 is the first row of the texture image).
    """

    vertices: np.ndarray
    faces: np.ndarray
    texcoords: np.ndarray


@dataclass
class MugAppearance:
    """Texture of one mug.

    Args:
        texture_id: stable identifier ("proc:<pattern>:<seed>" or "file:<name>").
        image: (TEXTURE_HEIGHT, TEXTURE_WIDTH, 3) uint8 RGB in the layout described above.
        base_rgb: main colour of the mug, 0..1.
    """

    texture_id: str
    image: np.ndarray
    base_rgb: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0))


# ---- mesh ------------------------------------------------------------------------------------
class _MeshBuilder:
    def __init__(self) -> None:
        self.v: list[np.ndarray] = []
        self.t: list[np.ndarray] = []
        self.f: list[np.ndarray] = []
        self.n = 0

    def grid(self, points: np.ndarray, uv: np.ndarray, flip: bool = False) -> None:
        """Add a (rows, cols) grid of points (rows, cols, 3) with uv (rows, cols, 2) as quads."""
        r, c = points.shape[:2]
        idx = self.n + np.arange(r * c).reshape(r, c)
        a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
        d, e = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
        tri1 = np.stack([a, b, e], axis=1)
        tri2 = np.stack([a, e, d], axis=1)
        faces = np.concatenate([tri1, tri2])
        if flip:
            faces = faces[:, ::-1]
        self.v.append(points.reshape(-1, 3))
        self.t.append(uv.reshape(-1, 2))
        self.f.append(faces)
        self.n += r * c

    def build(self) -> MugMesh:
        return MugMesh(
            np.concatenate(self.v).astype(np.float64),
            np.concatenate(self.f).astype(np.int32),
            np.concatenate(self.t).astype(np.float64),
        )


def mug_mesh(geom: MugGeometry, segments: int = 40) -> MugMesh:
    """Visual mesh of a mug: outer wall, rim, inner wall, inner and outer bottom, handle tube.

    Args:
        geom: dimensions.
        segments: segments around the circumference.
    """
    mb = _MeshBuilder()
    ang = np.linspace(0.0, 2.0 * np.pi, segments + 1)  # seam duplicated for the texture wrap
    cos, sin = np.cos(ang), np.sin(ang)
    r_out, r_in, h = geom.radius, geom.radius - geom.wall, geom.height

    def ring(radius: float, z: float) -> np.ndarray:
        return np.stack([radius * cos, radius * sin, np.full_like(cos, z)], axis=1)

    u = ang / (2.0 * np.pi)
    # Outer wall: rows bottom -> top; v runs over the pattern band (0 at the top edge of the mug).
    zs = np.linspace(0.0, h, 8)
    pts = np.stack([ring(r_out, z) for z in zs])
    uv = np.stack([np.stack([u, np.full_like(u, PATTERN_FRACTION * (1.0 - z / h))], axis=1) for z in zs])
    mb.grid(pts, uv)
    inside_uv = lambda shape: np.stack(  # noqa: E731
        [np.full(shape, 0.5), np.full(shape, _INSIDE_V)], axis=-1
    )
    # Rim (annulus at the top, facing up): outer ring -> inner ring.
    pts = np.stack([ring(r_out, h), ring(r_in, h)])
    mb.grid(pts, inside_uv(pts.shape[:2]))
    # Inner wall (faces the axis): top -> bottom.
    zs = np.linspace(h, geom.bottom, 6)
    pts = np.stack([ring(r_in, z) for z in zs])
    mb.grid(pts, inside_uv(pts.shape[:2]))
    # Inner bottom (facing up): ring -> centre.
    pts = np.stack([ring(r_in, geom.bottom), ring(0.0, geom.bottom)])
    mb.grid(pts, inside_uv(pts.shape[:2]))
    # Outer bottom (facing down).
    pts = np.stack([ring(r_out, 0.0), ring(0.0, 0.0)])
    mb.grid(pts, inside_uv(pts.shape[:2]), flip=True)
    # Handle: a tube along a half ellipse in the xz plane, from the lower to the upper joint.
    phi = np.linspace(-np.pi / 2, np.pi / 2, 16)
    zc, a, b = geom.handle_center_z, geom.handle_reach, geom.handle_height / 2.0
    x0 = r_out - 0.4 * geom.wall  # start just inside the wall: no visible gap
    centre = np.stack([x0 + a * np.cos(phi), np.zeros_like(phi), zc + b * np.sin(phi)], axis=1)
    tangent = np.stack([-a * np.sin(phi), np.zeros_like(phi), b * np.cos(phi)], axis=1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    side = np.array([0.0, 1.0, 0.0])
    normal = np.cross(side, tangent)  # in the xz plane, pointing away from the ellipse centre
    psi = np.linspace(0.0, 2.0 * np.pi, 13)
    t = geom.handle_thickness
    pts = (
        centre[:, None, :]
        + t * np.cos(psi)[None, :, None] * normal[:, None, :]
        + t * np.sin(psi)[None, :, None] * side[None, None, :]
    )
    uv = np.stack(
        [np.broadcast_to(psi[None, :] / (2 * np.pi), pts.shape[:2]), np.full(pts.shape[:2], _HANDLE_V)], axis=-1
    )
    mb.grid(pts, uv, flip=True)
    return mb.build()


def mug_collision_capsules(geom: MugGeometry, n: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Capsule segments (start, end) in the mug frame approximating the handle, m."""
    phi = np.linspace(-np.pi / 2, np.pi / 2, n + 1)
    zc, a, b = geom.handle_center_z, geom.handle_reach, geom.handle_height / 2.0
    x0 = geom.radius - geom.handle_thickness
    pts = np.stack([x0 + a * np.cos(phi), np.zeros_like(phi), zc + b * np.sin(phi)], axis=1)
    return [(pts[i], pts[i + 1]) for i in range(n)]


# ---- textures --------------------------------------------------------------------------------
def _rgb(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))))


def _pattern_mask(kind: str, rng: np.random.Generator, hgt: int, wid: int) -> np.ndarray:
    """Float mask (hgt, wid) in [0, 1] of the accent colour for a pattern family."""
    yy, xx = np.mgrid[0:hgt, 0:wid].astype(np.float64)
    y, x = yy / hgt, xx / wid  # y: 0 top .. 1 bottom of the wall; x: 0..1 around (wraps)
    if kind == "stripes":
        n = int(rng.integers(3, 7))
        duty = rng.uniform(0.25, 0.5)
        return ((y * n + rng.uniform()) % 1.0 < duty).astype(float)
    if kind == "vertical_stripes":
        n = int(rng.integers(8, 20))  # integer count: seamless wrap
        duty = rng.uniform(0.3, 0.5)
        return ((x * n) % 1.0 < duty).astype(float)
    if kind == "dots":
        cols, rows = int(rng.integers(8, 14)), int(rng.integers(3, 6))
        rad = rng.uniform(0.22, 0.38)
        shift = (np.floor(y * rows) % 2) * 0.5  # staggered rows
        gx, gy = ((x * cols + shift) % 1.0) - 0.5, (y * rows) % 1.0 - 0.5
        return ((gx**2 * (wid / cols) ** 2 + gy**2 * (hgt / rows) ** 2) < (rad * min(wid / cols, hgt / rows)) ** 2).astype(float)
    if kind == "checker":
        cols, rows = int(rng.integers(6, 12)), int(rng.integers(3, 6))
        return ((np.floor(x * cols) + np.floor(y * rows)) % 2).astype(float)
    if kind == "zigzag":
        n = int(rng.integers(6, 12))
        amp = rng.uniform(0.05, 0.1)
        centre = rng.uniform(0.35, 0.65)
        tri = np.abs(((x * n) % 1.0) - 0.5) * 2.0 * amp
        return (np.abs(y - centre - tri + amp / 2) < rng.uniform(0.05, 0.09)).astype(float)
    if kind == "band":
        c, w = rng.uniform(0.3, 0.7), rng.uniform(0.12, 0.25)
        thin = np.abs(y - c) < w / 2
        edge = (np.abs(y - c - w / 2 - 0.06) < 0.015) | (np.abs(y - c + w / 2 + 0.06) < 0.015)
        return (thin | edge).astype(float)
    if kind == "rings":
        n = int(rng.integers(2, 4))
        centres = np.sort(rng.uniform(0.1, 0.9, n))
        m = np.zeros_like(y)
        for c in centres:
            m = np.maximum(m, (np.abs(y - c) < 0.025).astype(float))
        return m
    if kind == "waves":
        n = int(rng.integers(2, 5))
        k = int(rng.integers(3, 7))
        phase = rng.uniform(0, 2 * np.pi)
        m = np.zeros_like(y)
        for i in range(n):
            yc = (i + 0.5) / n + 0.06 * np.sin(2 * np.pi * k * x + phase)
            m = np.maximum(m, (np.abs(y - yc) < 0.03).astype(float))
        return m
    if kind == "grid":
        cols, rows = int(rng.integers(8, 16)), int(rng.integers(4, 8))
        return (((x * cols) % 1.0 < 0.12) | ((y * rows) % 1.0 < 0.12)).astype(float)
    raise ValueError(f"unknown pattern '{kind}' (known: {PATTERNS})")


def _assemble(wall: np.ndarray, inside_rgb: np.ndarray, handle_rgb: np.ndarray) -> np.ndarray:
    """Full texture from a wall image (rows_pattern, W, 3) uint8 and the two band colours."""
    img = np.empty((TEXTURE_HEIGHT, TEXTURE_WIDTH, 3), np.uint8)
    rows_pattern = int(round(PATTERN_FRACTION * TEXTURE_HEIGHT))
    img[:rows_pattern] = wall
    rows_inside = int(round(0.875 * TEXTURE_HEIGHT))
    img[rows_pattern:rows_inside] = np.clip(inside_rgb * 255, 0, 255).astype(np.uint8)
    img[rows_inside:] = np.clip(handle_rgb * 255, 0, 255).astype(np.uint8)
    return img


def procedural_appearances(num: int, seed: int) -> list[MugAppearance]:
    """`num` look-alike mug textures: one base colour family per scene, a different pattern each.

    The base colour (hue, light/dark) is drawn once per seed; every mug then gets a pattern
    family not used by the others, a slightly varied base tint and an accent colour of a
    nearby hue, so mugs resemble each other but differ in their pattern.
    """
    if not 1 <= num <= len(PATTERNS):
        raise ValueError(f"num must be 1..{len(PATTERNS)}, got {num}")
    rng = np.random.default_rng(seed)
    hue = rng.uniform()
    light_base = rng.uniform() < 0.6
    kinds = rng.choice(PATTERNS, size=num, replace=False)
    rows_pattern = int(round(PATTERN_FRACTION * TEXTURE_HEIGHT))
    out: list[MugAppearance] = []
    for i, kind in enumerate(kinds):
        mug_rng = np.random.default_rng([seed, i])
        if light_base:
            base = _rgb(hue + mug_rng.normal(0, 0.02), mug_rng.uniform(0.08, 0.2), mug_rng.uniform(0.88, 0.97))
            accent = _rgb(hue + mug_rng.normal(0, 0.05), mug_rng.uniform(0.55, 0.8), mug_rng.uniform(0.45, 0.7))
        else:
            base = _rgb(hue + mug_rng.normal(0, 0.02), mug_rng.uniform(0.5, 0.7), mug_rng.uniform(0.45, 0.6))
            accent = _rgb(hue + mug_rng.normal(0, 0.05), mug_rng.uniform(0.05, 0.2), mug_rng.uniform(0.85, 0.97))
        mask = _pattern_mask(str(kind), mug_rng, rows_pattern, TEXTURE_WIDTH)[..., None]
        noise = mug_rng.normal(0.0, 0.012, (rows_pattern, TEXTURE_WIDTH, 1))  # glaze variation
        wall = (1 - mask) * base + mask * accent + noise
        wall8 = np.clip(wall * 255, 0, 255).astype(np.uint8)
        inside = base * 0.92
        out.append(MugAppearance(f"proc:{kind}:{seed}:{i}", _assemble(wall8, inside, base), tuple(base.tolist())))
    return out


def list_texture_images(texture_dir: str | Path) -> list[Path]:
    """Image files in `texture_dir` (sorted by name). FileNotFoundError if none."""
    d = Path(texture_dir).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"texture_dir {d} is not a directory")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"texture_dir {d} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def appearances_from_directory(texture_dir: str | Path, num: int) -> list[MugAppearance]:
    """Mug textures from the first `num` images of `texture_dir` (sorted by file name).

    Each image is stretched around the outer wall (its width wraps around the mug, its height
    spans the wall); inside and handle take the image's mean colour.

    Raises:
        FileNotFoundError: no such directory or no images in it.
        ValueError: fewer images than mugs, or an unreadable image.
    """
    import cv2

    files = list_texture_images(texture_dir)
    if len(files) < num:
        raise ValueError(f"texture_dir {texture_dir} has {len(files)} image(s) but {num} mugs were requested")
    rows_pattern = int(round(PATTERN_FRACTION * TEXTURE_HEIGHT))
    out = []
    for path in files[:num]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {path}")
        wall = cv2.resize(bgr[..., ::-1], (TEXTURE_WIDTH, rows_pattern), interpolation=cv2.INTER_AREA)
        mean = wall.reshape(-1, 3).mean(0) / 255.0
        out.append(MugAppearance(f"file:{path.name}", _assemble(wall, mean * 0.9, mean), tuple(mean.tolist())))
    return out
