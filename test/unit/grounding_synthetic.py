"""Synthetic RGB-D tabletop scenes for the grounding tests: ray-cast upright textured cylinders
("mugs") on a table plane, seen by a pinhole camera with a known pose. Exact ground truth:
per-pixel object labels and the cylinders' geometry.

Frames: base frame z up, table top z = 0; the camera pose is T_base_camera of the optical
frame (z forward, x right, y down).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla_stack.core.types import CameraIntrinsics

Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(theta rad, z m) arrays -> (N, 3) float RGB 0..255."""


def look_at(position, target) -> np.ndarray:
    """4x4 T_base_camera of an optical frame at `position` looking at `target` (image y down ~ world -z)."""
    p, t = np.asarray(position, float), np.asarray(target, float)
    z = t - p
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = p
    return T


def stripes(base, accent, n=5, vertical=False) -> Texture:
    """Horizontal (or vertical) stripes."""
    base, accent = np.asarray(base, float), np.asarray(accent, float)

    def tex(theta, z):
        phase = (theta / (2 * np.pi) * n * 3) if vertical else (z / 0.09 * n)
        on = (np.floor(phase) % 2).astype(bool)
        return np.where(on[:, None], accent, base)

    return tex


def dots(base, accent, rows=3, cols=10, radius=0.3) -> Texture:
    """A grid of dots."""
    base, accent = np.asarray(base, float), np.asarray(accent, float)

    def tex(theta, z):
        a = (theta / (2 * np.pi) * cols) % 1.0 - 0.5
        b = (z / 0.09 * rows) % 1.0 - 0.5
        on = a**2 + b**2 < radius**2
        return np.where(on[:, None], accent, base)

    return tex


def plain(color) -> Texture:
    """One colour."""
    c = np.asarray(color, float)
    return lambda theta, z: np.broadcast_to(c, (len(theta), 3))


@dataclass
class Cylinder:
    """Upright cylinder standing on the table: centre of its bottom (x, y) m, radius, height m."""

    x: float
    y: float
    radius: float = 0.03
    height: float = 0.09
    texture: Texture = plain((220, 220, 220))
    yaw: float = 0.0


def default_intrinsics(width=640, height=480, fovy=50.0) -> CameraIntrinsics:
    """Intrinsics like the simulated scene camera."""
    return CameraIntrinsics.from_fovy(width, height, fovy)


def render(
    cylinders: list[Cylinder],
    T_base_cam: np.ndarray,
    intrinsics: CameraIntrinsics,
    table_color=(170, 140, 110),
    light=1.0,
    noise=2.0,
    seed=0,
    table_half=(0.7, 0.7),
    table_center=(0.45, 0.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb uint8 (H, W, 3), depth float32 m (H, W), labels int32 (H, W): 0 background, 1 table, 2+i cylinder i)."""
    h, w = intrinsics.height, intrinsics.width
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays_c = np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy, np.ones_like(u, float)], -1)
    R, o = T_base_cam[:3, :3], T_base_cam[:3, 3]
    d = rays_c.reshape(-1, 3) @ R.T
    n = d.shape[0]
    best_t = np.full(n, np.inf)
    label = np.zeros(n, np.int32)
    color = np.zeros((n, 3))
    # table
    with np.errstate(divide="ignore", invalid="ignore"):
        t_tab = -o[2] / d[:, 2]
    px, py = o[0] + t_tab * d[:, 0], o[1] + t_tab * d[:, 1]
    on_table = (t_tab > 0) & (np.abs(px - table_center[0]) < table_half[0]) & (np.abs(py - table_center[1]) < table_half[1])
    best_t[on_table] = t_tab[on_table]
    label[on_table] = 1
    color[on_table] = table_color
    for i, c in enumerate(cylinders):
        ox, oy = o[0] - c.x, o[1] - c.y
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = 2 * (ox * d[:, 0] + oy * d[:, 1])
        cc = ox**2 + oy**2 - c.radius**2
        disc = b**2 - 4 * a * cc
        ok = disc >= 0
        sq = np.sqrt(np.where(ok, disc, 0.0))
        t1 = (-b - sq) / (2 * a)
        z1 = o[2] + t1 * d[:, 2]
        side = ok & (t1 > 0) & (z1 >= 0) & (z1 <= c.height) & (t1 < best_t)
        # top cap
        with np.errstate(divide="ignore", invalid="ignore"):
            t_cap = (c.height - o[2]) / d[:, 2]
        cx_, cy_ = o[0] + t_cap * d[:, 0] - c.x, o[1] + t_cap * d[:, 1] - c.y
        cap = (t_cap > 0) & (cx_**2 + cy_**2 <= c.radius**2) & (t_cap < best_t) & (t_cap < np.where(side, t1, np.inf))
        idx = np.flatnonzero(side)
        if idx.size:
            hx, hy = ox + t1[idx] * d[idx, 0], oy + t1[idx] * d[idx, 1]
            theta = np.mod(np.arctan2(hy, hx) - c.yaw, 2 * np.pi)
            normal = np.stack([hx, hy], 1) / c.radius
            view = -d[idx, :2] / np.linalg.norm(d[idx], axis=1, keepdims=True)
            shade = 0.55 + 0.45 * np.clip((normal * view).sum(1) / np.maximum(np.linalg.norm(view, axis=1), 1e-9), 0, 1)
            color[idx] = c.texture(theta, z1[idx]) * shade[:, None]
            best_t[idx] = t1[idx]
            label[idx] = 2 + i
        idx = np.flatnonzero(cap)
        if idx.size:
            color[idx] = np.asarray(c.texture(np.zeros(1), np.array([c.height - 1e-4])))[0] * 0.8
            best_t[idx] = t_cap[idx]
            label[idx] = 2 + i
    depth = np.where(np.isfinite(best_t), best_t, 0.0).reshape(h, w).astype(np.float32)  # rays_c z = 1: t is depth
    rng = np.random.default_rng(seed)
    rgb = np.clip(color.reshape(h, w, 3) * light + rng.normal(0, noise, (h, w, 3)), 0, 255).astype(np.uint8)
    return rgb, depth, label.reshape(h, w)


def default_camera() -> np.ndarray:
    """Camera like the simulator's scene camera: ~1 m from the table, looking down ~35 degrees."""
    return look_at([1.15, 0.0, 0.65], [0.45, 0.0, 0.02])
