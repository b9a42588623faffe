"""Masks of the matched object.

Registry `SEGMENTERS`:

- `depth_refine` (offline default): starts from the proposal's depth-cluster mask and cleans
  it (closing, hole filling, largest component). For box-only proposals (learned detectors)
  it cuts the object out of the box with the table plane (pixels standing above the table) or,
  without a plane, with the nearest depth layer in the box; without depth it falls back to
  OpenCV GrabCut initialised with the box.
- `sam2` (learned): SAM2 prompted with the proposal's box; see `vla_stack.core.grounding.learned`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_stack.core.grounding.imageops import box_mask, check_depth, check_rgb, fill_holes, largest_component
from vla_stack.core.grounding.proposals import Proposal
from vla_stack.core.registry import Registry
from vla_stack.core.types import CameraIntrinsics

SEGMENTERS = Registry("segmenter")


class Segmenter(ABC):
    """Turns a proposal (box, maybe a rough mask) into a clean object mask."""

    @abstractmethod
    def segment(
        self,
        rgb: np.ndarray,
        depth: np.ndarray | None,
        intrinsics: CameraIntrinsics | None,
        proposal: Proposal,
        table_plane: np.ndarray | None = None,
    ) -> np.ndarray:
        """(H, W) bool mask of the proposal's object (may be empty when nothing is there).

        Args:
            rgb: (H, W, 3) uint8.
            depth: aligned depth (float m / uint16 mm) or None.
            intrinsics: camera model or None.
            proposal: the matched proposal.
            table_plane: (4,) table plane in the camera frame (see proposals.Detections) or None.
        """


@dataclass
class DepthRefineConfig:
    """Parameters of the `depth_refine` segmenter."""

    close_px: int = field(default=3, metadata={"help": "Kernel size of the morphological closing, px (0 = off)"})
    min_height_m: float = field(default=0.010, metadata={"help": "Height above the table that counts as object, m"})
    depth_layer_m: float = field(
        default=0.12, metadata={"help": "Without a table plane: keep pixels within this of the nearest depth layer, m"}
    )
    grabcut_iterations: int = field(default=3, metadata={"help": "GrabCut iterations when there is no depth"})

    def __post_init__(self) -> None:
        if self.close_px < 0 or self.close_px > 31:
            raise ValueError(f"close_px must be 0..31, got {self.close_px}")
        if self.min_height_m <= 0 or self.depth_layer_m <= 0:
            raise ValueError("min_height_m and depth_layer_m must be > 0")
        if not 1 <= self.grabcut_iterations <= 20:
            raise ValueError("grabcut_iterations must be 1..20")


def clean_mask(mask: np.ndarray, close_px: int = 3) -> np.ndarray:
    """Closing + hole filling + largest connected component of a binary mask."""
    import cv2

    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return m.copy()
    if close_px > 1:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px))
        m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_CLOSE, k).astype(bool)
    return largest_component(fill_holes(m))


@SEGMENTERS.register("depth_refine")
class DepthRefineSegmenter(Segmenter):
    """Mask from depth (see the module doc). No weights."""

    def __init__(self, config: DepthRefineConfig | None = None, **overrides: Any) -> None:
        base = config or DepthRefineConfig()
        if overrides:
            base = DepthRefineConfig(**{**base.__dict__, **overrides})
        self.config = base

    def segment(
        self,
        rgb: np.ndarray,
        depth: np.ndarray | None,
        intrinsics: CameraIntrinsics | None,
        proposal: Proposal,
        table_plane: np.ndarray | None = None,
    ) -> np.ndarray:
        """Clean mask of the proposal's object."""
        rgb = check_rgb(rgb)
        shape = rgb.shape[:2]
        if proposal.mask is not None and proposal.mask.shape == shape and proposal.mask.any():
            return clean_mask(proposal.mask, self.config.close_px)
        box = box_mask(proposal.bbox, shape)
        if depth is not None:
            d = check_depth(depth, shape)
            valid = box & (d > 0)
            if np.count_nonzero(valid) >= 20:
                if table_plane is not None and intrinsics is not None:
                    v, u = np.nonzero(valid)
                    z = d[v, u]
                    p = np.stack([(u - intrinsics.cx) * z / intrinsics.fx, (v - intrinsics.cy) * z / intrinsics.fy, z], 1)
                    h = p @ table_plane[:3] + table_plane[3]
                    m = np.zeros(shape, bool)
                    m[v[h > self.config.min_height_m], u[h > self.config.min_height_m]] = True
                else:
                    z = d[valid]
                    near = float(np.percentile(z, 5))
                    m = valid & (d <= near + self.config.depth_layer_m)
                m = clean_mask(m, self.config.close_px)
                if m.any():
                    return m
        return self._grabcut(rgb, proposal)

    def _grabcut(self, rgb: np.ndarray, proposal: Proposal) -> np.ndarray:
        import cv2

        x0, y0, x1, y1 = proposal.bbox
        h, w = rgb.shape[:2]
        if x1 - x0 < 4 or y1 - y0 < 4 or (x1 - x0) >= w - 1 and (y1 - y0) >= h - 1:
            return box_mask(proposal.bbox, (h, w))
        gc_mask = np.zeros((h, w), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        try:
            cv2.grabCut(bgr, gc_mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, self.config.grabcut_iterations,
                        cv2.GC_INIT_WITH_RECT)
        except cv2.error:
            return box_mask(proposal.bbox, (h, w))
        m = (gc_mask == cv2.GC_FGD) | (gc_mask == cv2.GC_PR_FGD)
        m = clean_mask(m, self.config.close_px)
        return m if m.any() else box_mask(proposal.bbox, (h, w))


@SEGMENTERS.register("sam2")
def _sam2(**kwargs: Any) -> Segmenter:
    from vla_stack.core.grounding.learned import Sam2Segmenter

    return Sam2Segmenter(**kwargs)
