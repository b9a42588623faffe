"""Small image helpers shared by the grounding stages: input checks, boxes, masks, colours.

Conventions used across `vla_stack.core.grounding`:
- RGB images are (H, W, 3) uint8, channel order R, G, B.
- Depth images are (H, W) float32 in metres (0, NaN or inf = no return); (H, W) uint16 in
  millimetres is accepted and converted.
- Masks are (H, W) bool, aligned with the RGB image.
- Boxes are (x0, y0, x1, y1) integer pixels, x1/y1 exclusive (numpy slicing order
  `image[y0:y1, x0:x1]`).
"""

from __future__ import annotations

import numpy as np

BBox = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in pixels, x1 and y1 exclusive."""

NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 35),
    "green": (30, 200, 60),
    "blue": (30, 90, 240),
    "yellow": (250, 220, 20),
    "magenta": (230, 40, 220),
    "cyan": (20, 220, 230),
    "orange": (255, 140, 0),
}
"""Highlight colours by the word used in the rewritten instruction ("the red-highlighted cup")."""


class InvalidImage(ValueError):
    """An input image is empty, has the wrong shape/dtype, or holds no usable pixels."""


def check_rgb(rgb: object, name: str = "rgb") -> np.ndarray:
    """Return `rgb` as a contiguous (H, W, 3) uint8 array or raise InvalidImage saying why.

    Accepts (H, W, 4) RGBA (alpha dropped) and (H, W) mono (replicated to 3 channels).
    """
    if not isinstance(rgb, np.ndarray):
        raise InvalidImage(f"{name} must be a numpy array, got {type(rgb).__name__}")
    if rgb.size == 0:
        raise InvalidImage(f"{name} is empty (shape {rgb.shape})")
    if rgb.dtype != np.uint8:
        raise InvalidImage(f"{name} must be uint8, got {rgb.dtype}")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise InvalidImage(f"{name} must have shape (H, W, 3), got {rgb.shape}")
    if rgb.shape[2] == 4:
        rgb = rgb[:, :, :3]
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise InvalidImage(f"{name} is too small ({rgb.shape[1]}x{rgb.shape[0]} px, need at least 8x8)")
    return np.ascontiguousarray(rgb)


def check_depth(depth: object, shape: tuple[int, int] | None = None, name: str = "depth") -> np.ndarray:
    """Return depth as (H, W) float32 metres with invalid pixels set to 0, or raise InvalidImage.

    Args:
        depth: (H, W) float (m) or uint16 (mm) image; (H, W, 1) is squeezed.
        shape: expected (H, W) (the RGB image's), checked when given.
    """
    if not isinstance(depth, np.ndarray):
        raise InvalidImage(f"{name} must be a numpy array, got {type(depth).__name__}")
    if depth.size == 0:
        raise InvalidImage(f"{name} is empty (shape {depth.shape})")
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise InvalidImage(f"{name} must have shape (H, W), got {depth.shape}")
    if shape is not None and depth.shape != tuple(shape):
        raise InvalidImage(f"{name} shape {depth.shape} does not match the colour image {tuple(shape)} (not aligned?)")
    if depth.dtype == np.uint16:
        out = depth.astype(np.float32) * 0.001
    elif np.issubdtype(depth.dtype, np.floating):
        out = depth.astype(np.float32, copy=True)
    else:
        raise InvalidImage(f"{name} must be float (m) or uint16 (mm), got {depth.dtype}")
    out[~np.isfinite(out) | (out < 0)] = 0.0
    return out


def mask_bbox(mask: np.ndarray) -> BBox | None:
    """Tight box around the True pixels of `mask`, or None when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def clip_bbox(bbox: BBox | np.ndarray | list[float], width: int, height: int) -> BBox | None:
    """Round and clip a box to the image; None when nothing of it is left."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not all(np.isfinite([x0, y0, x1, y1])):
        return None
    x0i, y0i = int(np.floor(max(0.0, x0))), int(np.floor(max(0.0, y0)))
    x1i, y1i = int(np.ceil(min(float(width), x1))), int(np.ceil(min(float(height), y1)))
    if x1i <= x0i or y1i <= y0i:
        return None
    return x0i, y0i, x1i, y1i


def pad_bbox(bbox: BBox, pad: float, width: int, height: int) -> BBox:
    """Grow `bbox` by `pad` times its size on each side (clipped to the image)."""
    x0, y0, x1, y1 = bbox
    dx, dy = pad * (x1 - x0), pad * (y1 - y0)
    out = clip_bbox((x0 - dx, y0 - dy, x1 + dx, y1 + dy), width, height)
    return out if out is not None else bbox


def bbox_iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two boxes (0 when disjoint)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter) / float(union) if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of the same shape (0 when both empty)."""
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / float(union) if union else 0.0


def box_mask(bbox: BBox, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask that is True inside `bbox`."""
    m = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = bbox
    m[y0:y1, x0:x1] = True
    return m


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected component of `mask` (empty stays empty)."""
    import cv2

    if not mask.any():
        return mask.copy()
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a binary mask (regions not connected to the image border)."""
    import cv2

    if not mask.any():
        return mask.copy()
    m = mask.astype(np.uint8)
    h, w = m.shape
    flood = np.zeros((h + 2, w + 2), np.uint8)
    flood[1:-1, 1:-1] = m
    ff_mask = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return mask | holes


def resolve_color(color: str | tuple[int, int, int] | list[int]) -> tuple[int, int, int]:
    """RGB triple of a colour given by name (see NAMED_COLORS) or as a triple 0..255."""
    if isinstance(color, str):
        try:
            return NAMED_COLORS[color.lower()]
        except KeyError:
            raise ValueError(f"unknown highlight colour '{color}' (known: {sorted(NAMED_COLORS)})") from None
    vals = tuple(int(v) for v in color)
    if len(vals) != 3 or not all(0 <= v <= 255 for v in vals):
        raise ValueError(f"a colour triple needs 3 values in 0..255, got {color!r}")
    return vals  # type: ignore[return-value]
