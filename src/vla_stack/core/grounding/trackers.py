"""Mask tracking between detections.

Detection + matching is the expensive part; between two detections the object's mask is
carried from frame to frame by a tracker. The pipeline re-detects periodically and whenever
the tracker's confidence drops, and uses `associate` (IoU) to snap the tracked mask onto the
fresh proposal it overlaps most.

Registry `TRACKERS`:

- `optical_flow` (offline default): pyramidal Lucas-Kanade flow of corner features inside the
  mask (OpenCV), forward-backward checked, a RANSAC similarity transform (translation,
  rotation, scale) of the survivors, and the mask warped with it. Work is limited to a region
  around the object, so a step costs a few milliseconds at 640x480. Confidence = share of the
  features that survived as inliers.
- `sam2` (learned): the same flow propagates the box, SAM2 re-segments the object in it; see
  `vla_stack.core.grounding.learned`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_stack.core.grounding.imageops import BBox, check_rgb, mask_bbox, mask_iou, pad_bbox
from vla_stack.core.registry import Registry

TRACKERS = Registry("tracker")


@dataclass(frozen=True)
class TrackState:
    """Tracker output for one frame.

    Args:
        mask: (H, W) bool, the tracked object's mask (empty when lost).
        bbox: box of `mask`, or None when lost.
        confidence: 0..1; below the pipeline's threshold it re-detects.
        lost: True when the tracker cannot follow the object any more.
    """

    mask: np.ndarray
    bbox: BBox | None
    confidence: float
    lost: bool = False


class Tracker(ABC):
    """Carries an object mask from frame to frame."""

    @abstractmethod
    def init(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        """Start tracking the object `mask` (H, W bool) of frame `rgb` (H, W, 3 uint8)."""

    @abstractmethod
    def update(self, rgb: np.ndarray) -> TrackState:
        """Mask of the object in the next frame `rgb`. Call `init` first (RuntimeError otherwise)."""

    @property
    @abstractmethod
    def active(self) -> bool:
        """True between a successful `init` and losing the object (or `reset`)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the object."""


@dataclass
class OpticalFlowConfig:
    """Parameters of the `optical_flow` tracker."""

    max_features: int = field(default=80, metadata={"help": "Corner features tracked inside the mask"})
    min_features: int = field(default=6, metadata={"help": "Fewer surviving features than this = lost"})
    search_margin_px: int = field(default=40, metadata={"help": "The flow is computed in the object box grown by this, px"})
    window_px: int = field(default=15, metadata={"help": "Lucas-Kanade window size, px"})
    pyramid_levels: int = field(default=3, metadata={"help": "Lucas-Kanade pyramid levels"})
    forward_backward_px: float = field(default=1.0, metadata={"help": "Max forward-backward error of a kept feature, px"})
    ransac_px: float = field(default=2.0, metadata={"help": "RANSAC reprojection threshold of the similarity fit, px"})
    max_scale_change: float = field(default=0.25, metadata={"help": "Per-frame scale change beyond this = lost"})

    def __post_init__(self) -> None:
        if not 4 <= self.max_features <= 1000:
            raise ValueError(f"max_features must be 4..1000, got {self.max_features}")
        if not 3 <= self.min_features <= self.max_features:
            raise ValueError("min_features must be >= 3 and <= max_features")
        if self.search_margin_px < 4 or self.window_px < 5 or not 0 <= self.pyramid_levels <= 6:
            raise ValueError("search_margin_px >= 4, window_px >= 5, pyramid_levels 0..6 required")
        if self.forward_backward_px <= 0 or self.ransac_px <= 0 or not 0 < self.max_scale_change < 1:
            raise ValueError("forward_backward_px, ransac_px > 0 and 0 < max_scale_change < 1 required")


def _grey(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


@TRACKERS.register("optical_flow")
class OpticalFlowTracker(Tracker):
    """Lucas-Kanade feature flow + similarity warp of the mask (see the module doc). No weights."""

    def __init__(self, config: OpticalFlowConfig | None = None, **overrides: Any) -> None:
        base = config or OpticalFlowConfig()
        if overrides:
            base = OpticalFlowConfig(**{**base.__dict__, **overrides})
        self.config = base
        self.reset()

    def reset(self) -> None:
        """Forget the object."""
        self._grey: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._points: np.ndarray | None = None  # (N, 2) float32, image coordinates
        self._n_init = 0
        self._active = False

    @property
    def active(self) -> bool:
        """True while an object is being tracked."""
        return self._active

    def _seed_points(self, grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import cv2

        cfg = self.config
        bbox = mask_bbox(mask)
        if bbox is None:
            return np.zeros((0, 2), np.float32)
        x0, y0, x1, y1 = bbox
        roi_mask = cv2.erode(mask[y0:y1, x0:x1].astype(np.uint8), np.ones((3, 3), np.uint8))
        if not roi_mask.any():
            roi_mask = mask[y0:y1, x0:x1].astype(np.uint8)
        pts = cv2.goodFeaturesToTrack(
            grey[y0:y1, x0:x1], maxCorners=cfg.max_features, qualityLevel=0.01, minDistance=3, mask=roi_mask, blockSize=3
        )
        pts = np.zeros((0, 2), np.float32) if pts is None else pts.reshape(-1, 2)
        if len(pts) < 2 * cfg.min_features:
            # Texture-poor object: add a grid of points inside the mask (LK still follows its edges).
            vv, uu = np.nonzero(roi_mask)
            step = max(1, len(vv) // (cfg.max_features // 2 or 1))
            grid = np.stack([uu[::step], vv[::step]], axis=1).astype(np.float32)
            pts = np.concatenate([pts, grid[: cfg.max_features]])
        return (pts + np.array([x0, y0], np.float32)).astype(np.float32)

    def init(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        """Start tracking `mask` in `rgb`; an empty mask leaves the tracker inactive."""
        rgb = check_rgb(rgb)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != rgb.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image {rgb.shape[:2]}")
        self.reset()
        if not mask.any():
            return
        grey = _grey(rgb)
        pts = self._seed_points(grey, mask)
        if len(pts) < self.config.min_features:
            return
        self._grey, self._mask, self._points = grey, mask.copy(), pts
        self._n_init = len(pts)
        self._active = True

    def update(self, rgb: np.ndarray) -> TrackState:
        """Follow the object into `rgb` (see the module doc)."""
        import cv2

        if self._grey is None or self._mask is None or self._points is None:
            raise RuntimeError("OpticalFlowTracker.update called before init")
        cfg = self.config
        rgb = check_rgb(rgb)
        grey = _grey(rgb)
        h, w = grey.shape
        if grey.shape != self._grey.shape:
            self._active = False
            return TrackState(np.zeros((h, w), bool), None, 0.0, True)
        bbox = mask_bbox(self._mask)
        if bbox is None or not self._active:
            self._active = False
            return TrackState(np.zeros((h, w), bool), None, 0.0, True)
        size = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
        margin = max(cfg.search_margin_px, size // 2)
        rx0, ry0, rx1, ry1 = pad_bbox(bbox, 0.0, w, h)
        rx0, ry0 = max(0, rx0 - margin), max(0, ry0 - margin)
        rx1, ry1 = min(w, rx1 + margin), min(h, ry1 + margin)
        off = np.array([rx0, ry0], np.float32)
        prev_roi = self._grey[ry0:ry1, rx0:rx1]
        cur_roi = grey[ry0:ry1, rx0:rx1]
        p0 = (self._points - off).reshape(-1, 1, 2)
        lk = dict(winSize=(cfg.window_px, cfg.window_px), maxLevel=cfg.pyramid_levels,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev_roi, cur_roi, p0, None, **lk)
        p0r, st2, _ = cv2.calcOpticalFlowPyrLK(cur_roi, prev_roi, p1, None, **lk)
        fb = np.linalg.norm((p0 - p0r).reshape(-1, 2), axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < cfg.forward_backward_px)
        src = p0.reshape(-1, 2)[good] + off
        dst = p1.reshape(-1, 2)[good] + off
        lost_state = TrackState(np.zeros((h, w), bool), None, 0.0, True)
        if len(src) < cfg.min_features:
            self._active = False
            return lost_state
        M, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=cfg.ransac_px)
        if M is None or inliers is None:
            self._active = False
            return lost_state
        scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
        n_in = int(inliers.sum())
        if n_in < cfg.min_features or abs(scale - 1.0) > cfg.max_scale_change:
            self._active = False
            return lost_state
        new_mask = _warp_mask(self._mask, bbox, M)
        new_bbox = mask_bbox(new_mask)
        if new_bbox is None:
            self._active = False
            return lost_state
        confidence = float(min(1.0, n_in / max(self._n_init, 1)))
        keep = dst[inliers.ravel().astype(bool)]
        self._grey, self._mask = grey, new_mask
        inside = new_mask[np.clip(keep[:, 1].astype(int), 0, h - 1), np.clip(keep[:, 0].astype(int), 0, w - 1)]
        self._points = keep[inside].astype(np.float32)
        if len(self._points) < max(cfg.min_features, self._n_init // 2):
            # Refresh the features (keeps the confidence of the last step; the count restarts).
            self._points = self._seed_points(grey, new_mask)
            self._n_init = max(len(self._points), 1)
        return TrackState(new_mask, new_bbox, confidence, False)


def _warp_mask(mask: np.ndarray, bbox: BBox, M: np.ndarray) -> np.ndarray:
    """`mask` warped by the 2x3 affine `M` (nearest neighbour), computed only over the box the
    object's box `bbox` maps to: pixels outside it come from outside the object, so they are
    False anyway. Same result as warping the whole image, at a fraction of the cost."""
    import cv2

    h, w = mask.shape
    x0, y0, x1, y1 = bbox
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
    mapped = corners @ M[:, :2].T + M[:, 2]
    dx0 = int(max(0, np.floor(mapped[:, 0].min()) - 2))
    dy0 = int(max(0, np.floor(mapped[:, 1].min()) - 2))
    dx1 = int(min(w, np.ceil(mapped[:, 0].max()) + 2))
    dy1 = int(min(h, np.ceil(mapped[:, 1].max()) + 2))
    out = np.zeros((h, w), bool)
    if dx1 <= dx0 or dy1 <= dy0:
        return out
    # local affine: dst_local = A (src_local + src_offset) + t - dst_offset
    local = M.astype(np.float64).copy()
    local[:, 2] = M[:, :2] @ np.array([x0, y0], np.float64) + M[:, 2] - np.array([dx0, dy0], np.float64)
    roi = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)
    out[dy0:dy1, dx0:dx1] = cv2.warpAffine(roi, local, (dx1 - dx0, dy1 - dy0), flags=cv2.INTER_NEAREST,
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    return out


def associate(mask: np.ndarray, candidate_masks: Sequence[np.ndarray | None], min_iou: float = 0.3) -> int | None:
    """Index of the candidate mask overlapping `mask` most (IoU >= min_iou), else None."""
    best, best_iou = None, min_iou
    for i, cm in enumerate(candidate_masks):
        if cm is None or cm.shape != mask.shape:
            continue
        iou = mask_iou(mask, cm)
        if iou >= best_iou:
            best, best_iou = i, iou
    return best


@TRACKERS.register("sam2")
def _sam2_tracker(**kwargs: Any) -> Tracker:
    from vla_stack.core.grounding.learned import Sam2BoxTracker

    return Sam2BoxTracker(**kwargs)
