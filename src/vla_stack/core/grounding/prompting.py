"""Visual prompting: draw the grounded object(s) as a semi-transparent colour with an outline,
and produce the matching rewritten instruction.

The policy sees the highlighted image and "the red-highlighted cup"; the colour word and the
drawn colour come from the same `HighlightStyle`, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.grounding.imageops import NAMED_COLORS, check_rgb, mask_bbox, resolve_color
from vla_stack.core.grounding.instruction import ParsedInstruction, rewrite_instruction


@dataclass
class HighlightStyle:
    """How a grounded object is drawn.

    The first colour goes to the first personal object of the instruction, the next to the
    second, and so on ("put my cup on my plate": red cup, green plate).
    """

    colors: tuple[str, ...] = field(
        default=("red", "green", "blue", "yellow"),
        metadata={"help": "Highlight colour words, one per personal object in order (see imageops.NAMED_COLORS)"},
    )
    alpha: float = field(default=0.45, metadata={"help": "Opacity of the colour fill on the mask, 0..1"})
    outline_px: int = field(default=2, metadata={"help": "Outline thickness in pixels (0 = no outline)"})

    def __post_init__(self) -> None:
        if not self.colors:
            raise ValueError("HighlightStyle.colors needs at least one colour")
        for c in self.colors:
            if c.lower() not in NAMED_COLORS:
                raise ValueError(f"unknown highlight colour '{c}' (known: {sorted(NAMED_COLORS)})")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in 0..1, got {self.alpha}")
        if not 0 <= self.outline_px <= 20:
            raise ValueError(f"outline_px must be 0..20, got {self.outline_px}")
        self.colors = tuple(c.lower() for c in self.colors)

    def color_for(self, index: int) -> str:
        """Colour word of the `index`-th personal object (cycles when there are more objects than colours)."""
        return self.colors[index % len(self.colors)]


def highlight(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: str | tuple[int, int, int] = "red",
    alpha: float = 0.45,
    outline_px: int = 2,
) -> np.ndarray:
    """A copy of `rgb` with `mask` filled by a semi-transparent `color` and outlined.

    Args:
        rgb: (H, W, 3) uint8.
        mask: (H, W) bool, same size as `rgb`.
        color: colour word or RGB triple.
        alpha: fill opacity 0..1 (0 = outline only).
        outline_px: outline thickness, px (0 = none).

    Returns:
        (H, W, 3) uint8; `rgb` is not modified.
    """
    import cv2

    rgb = check_rgb(rgb)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {rgb.shape[:2]}")
    out = rgb.copy()
    bbox = mask_bbox(mask)
    if bbox is None:
        return out
    # work in the mask's box (plus the outline) only: a few hundred pixels, not the whole image
    h, w = mask.shape
    pad = outline_px + 2
    x0, y0 = max(0, bbox[0] - pad), max(0, bbox[1] - pad)
    x1, y1 = min(w, bbox[2] + pad), min(h, bbox[3] + pad)
    roi, m = out[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    col = np.array(resolve_color(color), dtype=np.float32)
    roi[m] = np.clip((1.0 - alpha) * roi[m].astype(np.float32) + alpha * col, 0, 255).astype(np.uint8)
    if outline_px > 0:
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(roi, contours, -1, tuple(int(v) for v in col), outline_px, lineType=cv2.LINE_AA)
    return out


def highlight_objects(
    rgb: np.ndarray, masks: Mapping[str, np.ndarray], colors: Mapping[str, str], style: HighlightStyle
) -> np.ndarray:
    """Draw every object of `masks` (name -> mask) in its colour from `colors` (name -> colour word)."""
    out = check_rgb(rgb).copy()
    for name, mask in masks.items():
        out = highlight(out, mask, colors[name], style.alpha, style.outline_px)
    return out


def assign_colors(object_names: Sequence[str], style: HighlightStyle) -> dict[str, str]:
    """Colour word per object in instruction order (name -> "red", ...)."""
    return {name: style.color_for(i) for i, name in enumerate(object_names)}


def prompt_instruction(parsed: ParsedInstruction, colors: Mapping[str, str], grounded: Sequence[str]) -> str:
    """Rewritten instruction for the objects actually highlighted (see `rewrite_instruction`)."""
    return rewrite_instruction(parsed, colors, grounded)
