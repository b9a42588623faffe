"""Object proposals for a category: the first stage of grounding.

Registry `DETECTORS` (pick one by name in `GroundingConfig.detector`):

- `depth_clusters` (offline default, no weights): the table is found as the dominant plane of
  the depth point cloud (Open3D RANSAC after voxel downsampling); points above it are
  clustered (DBSCAN), small fragments (a handle seen edge-on) are merged into their nearest
  larger neighbour; every full-resolution pixel above the table is assigned to its nearest
  cluster, which gives one image mask and box per object. Objects that touch each other
  merge into one cluster (and then usually fail the size prior): a known limit of geometry-only
  segmentation. Clusters that do not stand on the
  table or do not fit the category's size prior are dropped. Category-agnostic apart from the
  size prior, so every mug-sized object is a "cup" proposal: telling *which* cup is the job of
  the embedding and matching stages.
- `grounding_dino`, `owlv2` (learned, open vocabulary): see `vla_stack.core.grounding.learned`;
  their weights must be on disk (local directory or the local Hugging Face cache).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_stack.core.grounding.imageops import BBox, check_depth, check_rgb, largest_component, mask_bbox
from vla_stack.core.grounding.instruction import canonical_category
from vla_stack.core.registry import Registry
from vla_stack.core.types import CameraIntrinsics

DETECTORS = Registry("detector")


@dataclass
class Proposal:
    """One candidate object in an image.

    Args:
        bbox: (x0, y0, x1, y1) px, x1/y1 exclusive.
        mask: (H, W) bool, or None for box-only detectors (a segmenter makes one).
        score: detector confidence 0..1 (depth clusters: 1 for every cluster that fits the size prior).
        label: category word the proposal was made for.
        centroid_camera: (3,) mean of its 3D points in the camera optical frame, m (None without depth).
        source: name of the detector.
    """

    bbox: BBox
    mask: np.ndarray | None
    score: float
    label: str
    centroid_camera: np.ndarray | None = None
    source: str = ""


@dataclass
class Detections:
    """Output of a detector for one image.

    Args:
        proposals: candidates, in a stable order (left to right for depth clusters).
        table_plane: (4,) plane (n, d) in the camera frame with n·p + d = height above the
            table (m) and the camera on the positive side; None when not estimated.
        reason: why there are no proposals ("" otherwise), for the status message.
    """

    proposals: list[Proposal]
    table_plane: np.ndarray | None = None
    reason: str = ""


class Detector(ABC):
    """Proposes candidate objects of given categories in an RGB(-D) image."""

    needs_depth: bool = False
    """True when `detect` cannot work without an aligned depth image and intrinsics."""

    @abstractmethod
    def detect(
        self,
        rgb: np.ndarray,
        depth: np.ndarray | None,
        intrinsics: CameraIntrinsics | None,
        categories: Sequence[str],
    ) -> Detections:
        """Candidates of `categories` in the image.

        Args:
            rgb: (H, W, 3) uint8.
            depth: (H, W) aligned depth (float m or uint16 mm) or None.
            intrinsics: camera model of the images, or None.
            categories: category words ("cup", "kettle").

        Returns:
            Detections.

        Raises:
            InvalidImage: unusable input (empty, wrong shape, depth missing when needed).
        """


@dataclass(frozen=True)
class SizePrior:
    """Plausible size of a category standing on a table, m."""

    min_height: float
    max_height: float
    max_width: float
    min_width: float = 0.015


SIZE_PRIORS: dict[str, SizePrior] = {
    "cup": SizePrior(0.04, 0.22, 0.20),
    "glass": SizePrior(0.05, 0.25, 0.15),
    "bottle": SizePrior(0.08, 0.40, 0.15),
    "bowl": SizePrior(0.025, 0.15, 0.30),
    "plate": SizePrior(0.005, 0.06, 0.35, 0.08),
    "kettle": SizePrior(0.10, 0.35, 0.35),
    "can": SizePrior(0.05, 0.25, 0.12),
}
GENERIC_PRIOR = SizePrior(0.02, 0.45, 0.45, 0.01)
"""Used for categories without an entry in SIZE_PRIORS."""


def size_prior(category: str) -> SizePrior:
    """Size prior of a category word (synonyms map to the same prior: "mug" -> "cup")."""
    return SIZE_PRIORS.get(canonical_category(category), GENERIC_PRIOR)


@dataclass
class DepthClusterConfig:
    """Parameters of the `depth_clusters` detector."""

    pixel_stride: int = field(default=2, metadata={"help": "Use every n-th pixel (both axes) for the plane and clusters"})
    voxel_size_m: float = field(default=0.006, metadata={"help": "Voxel size of the downsampled cloud, m"})
    min_depth_m: float = field(default=0.1, metadata={"help": "Ignore depth closer than this, m"})
    max_depth_m: float = field(default=3.0, metadata={"help": "Ignore depth farther than this, m"})
    plane_distance_m: float = field(default=0.008, metadata={"help": "RANSAC inlier distance of the table plane, m"})
    plane_iterations: int = field(default=300, metadata={"help": "RANSAC iterations for the table plane"})
    min_plane_fraction: float = field(
        default=0.15, metadata={"help": "The table plane must hold at least this fraction of the points"}
    )
    min_height_m: float = field(default=0.010, metadata={"help": "A point this high above the table is an object point, m"})
    max_height_m: float = field(default=0.50, metadata={"help": "Points higher than this above the table are ignored, m"})
    cluster_eps_m: float = field(default=0.018, metadata={"help": "DBSCAN neighbourhood radius, m"})
    cluster_min_points: int = field(default=8, metadata={"help": "DBSCAN core point neighbour count"})
    assign_radius_m: float = field(
        default=0.02, metadata={"help": "A full-resolution pixel joins the nearest cluster point within this radius, m"}
    )
    merge_distance_m: float = field(
        default=0.03, metadata={"help": "A small cluster this close to a larger one is merged into it (handles), m"}
    )
    fragment_extent_m: float = field(
        default=0.06, metadata={"help": "Clusters smaller than this (largest side) may be merged into a neighbour, m"}
    )
    support_gap_m: float = field(
        default=0.03, metadata={"help": "An object's lowest point must be within this of the table (it stands on it), m"}
    )
    min_mask_pixels: int = field(default=60, metadata={"help": "Drop clusters whose image mask is smaller, px"})
    use_size_prior: bool = field(default=True, metadata={"help": "Drop clusters that do not fit the category's size"})
    seed: int = field(default=0, metadata={"help": "Seed of Open3D's RANSAC (deterministic planes)"})

    def __post_init__(self) -> None:
        if not 1 <= self.pixel_stride <= 16:
            raise ValueError(f"pixel_stride must be 1..16, got {self.pixel_stride}")
        for name in ("voxel_size_m", "plane_distance_m", "cluster_eps_m", "assign_radius_m", "min_height_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.min_depth_m < self.max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {self.min_depth_m}, {self.max_depth_m}")
        if self.max_height_m <= self.min_height_m:
            raise ValueError("max_height_m must exceed min_height_m")
        if self.plane_iterations < 10 or self.cluster_min_points < 1 or self.min_mask_pixels < 1:
            raise ValueError("plane_iterations >= 10, cluster_min_points >= 1, min_mask_pixels >= 1 required")
        if not 0.0 < self.min_plane_fraction < 1.0:
            raise ValueError(f"min_plane_fraction must be in (0, 1), got {self.min_plane_fraction}")


def _import_open3d() -> Any:
    try:
        import open3d as o3d
    except ImportError as exc:  # pragma: no cover - open3d is a hard dependency of this backend
        raise ImportError(
            "the depth_clusters detector needs Open3D: pip install open3d (and apt install libusb-1.0-0)"
        ) from exc
    return o3d


_O3D_LOCK = threading.Lock()  # Open3D's RANSAC seed is process-global


@DETECTORS.register("depth_clusters")
class DepthClusterDetector(Detector):
    """Tabletop segmentation from depth: RANSAC table plane + DBSCAN clusters above it."""

    needs_depth = True

    def __init__(self, config: DepthClusterConfig | None = None, **overrides: Any) -> None:
        base = config or DepthClusterConfig()
        if overrides:
            base = DepthClusterConfig(**{**base.__dict__, **overrides})
        self.config = base
        self._rays_key: tuple | None = None
        self._rays: np.ndarray | None = None

    def _ray_grid(self, intr: CameraIntrinsics) -> np.ndarray:
        key = (intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy)
        if self._rays_key != key or self._rays is None:
            u = (np.arange(intr.width, dtype=np.float32) - intr.cx) / intr.fx
            v = (np.arange(intr.height, dtype=np.float32) - intr.cy) / intr.fy
            rays = np.empty((intr.height, intr.width, 3), np.float32)
            rays[:, :, 0] = u[None, :]
            rays[:, :, 1] = v[:, None]
            rays[:, :, 2] = 1.0
            self._rays, self._rays_key = rays, key
        return self._rays

    def fit_table_plane(self, depth: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[np.ndarray | None, str]:
        """Dominant plane (n, d) of the depth cloud with the camera on its positive side, or (None, reason)."""
        cfg = self.config
        o3d = _import_open3d()
        rays = self._ray_grid(intrinsics)
        s = cfg.pixel_stride
        z = depth[::s, ::s]
        ok = (z > cfg.min_depth_m) & (z < cfg.max_depth_m)
        if np.count_nonzero(ok) < 50:
            return None, f"only {int(np.count_nonzero(ok))} valid depth pixels (need 50 within {cfg.min_depth_m}..{cfg.max_depth_m} m)"
        pts = (rays[::s, ::s][ok] * z[ok][:, None]).astype(np.float64)
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
        pcd = pcd.voxel_down_sample(cfg.voxel_size_m)
        n_ds = len(pcd.points)
        if n_ds < 30:
            return None, f"only {n_ds} points after voxel downsampling"
        with _O3D_LOCK:
            o3d.utility.random.seed(cfg.seed)
            model, inliers = pcd.segment_plane(cfg.plane_distance_m, 3, cfg.plane_iterations)
        if len(inliers) < cfg.min_plane_fraction * n_ds:
            return None, (
                f"no table plane: the largest plane holds {len(inliers)}/{n_ds} points "
                f"(< {cfg.min_plane_fraction:.0%}); is the table in view?"
            )
        plane = np.asarray(model, dtype=np.float64)
        plane /= np.linalg.norm(plane[:3])
        if plane[3] < 0:  # camera (origin) must be on the positive side
            plane = -plane
        return plane, ""

    def detect(
        self,
        rgb: np.ndarray,
        depth: np.ndarray | None,
        intrinsics: CameraIntrinsics | None,
        categories: Sequence[str],
    ) -> Detections:
        """Mask proposals of objects standing on the table (see the module doc)."""
        from vla_stack.core.grounding.imageops import InvalidImage

        cfg = self.config
        rgb = check_rgb(rgb)
        if depth is None or intrinsics is None:
            raise InvalidImage("depth_clusters needs an aligned depth image and camera intrinsics")
        depth = check_depth(depth, rgb.shape[:2])
        if (intrinsics.height, intrinsics.width) != depth.shape:
            raise InvalidImage(
                f"camera_info is for {intrinsics.width}x{intrinsics.height} but depth is {depth.shape[1]}x{depth.shape[0]}"
            )
        label = categories[0] if categories else "object"
        priors = [size_prior(c) for c in categories] or [GENERIC_PRIOR]
        plane, reason = self.fit_table_plane(depth, intrinsics)
        if plane is None:
            return Detections([], None, reason)

        o3d = _import_open3d()
        from scipy.spatial import cKDTree

        rays = self._ray_grid(intrinsics)
        valid = (depth > cfg.min_depth_m) & (depth < cfg.max_depth_m)
        # Height above the table of every valid pixel (full resolution).
        height = np.full(depth.shape, -np.inf, np.float32)
        pix = rays[valid] * depth[valid][:, None]
        height[valid] = pix @ plane[:3].astype(np.float32) + np.float32(plane[3])
        above = (height > cfg.min_height_m) & (height < cfg.max_height_m)
        if np.count_nonzero(above) < cfg.min_mask_pixels:
            return Detections([], plane, "nothing stands on the table")

        s = cfg.pixel_stride
        sub_above = above[::s, ::s]
        sub_pts = (rays[::s, ::s][sub_above] * depth[::s, ::s][sub_above][:, None]).astype(np.float64)
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(sub_pts)).voxel_down_sample(cfg.voxel_size_m)
        ds = np.asarray(pcd.points)
        if len(ds) < cfg.cluster_min_points:
            return Detections([], plane, "too few points above the table to form an object")
        labels = np.asarray(pcd.cluster_dbscan(cfg.cluster_eps_m, cfg.cluster_min_points))
        keep = labels >= 0
        if not keep.any():
            return Detections([], plane, "no object clusters above the table")
        ds, labels = ds[keep], labels[keep]
        labels = self._merge_fragments(ds, labels)

        # Every full-resolution pixel above the table joins its nearest cluster point.
        vv, uu = np.nonzero(above)
        p_full = rays[vv, uu] * depth[vv, uu][:, None]
        dist, idx = cKDTree(ds).query(p_full, k=1, distance_upper_bound=cfg.assign_radius_m)
        hit = np.isfinite(dist)
        label_img = np.full(depth.shape, -1, np.int32)
        label_img[vv[hit], uu[hit]] = labels[idx[hit]]

        import cv2

        close_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        proposals: list[Proposal] = []
        n_clusters = int(labels.max()) + 1
        h_img, w_img = depth.shape
        for k in range(n_clusters):
            mask = label_img == k
            count = int(np.count_nonzero(mask))
            if count < cfg.min_mask_pixels:
                continue
            # close small depth holes (sensor dropouts) before keeping the main component
            mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, close_kernel).astype(bool)
            mask = largest_component(mask)
            bbox = mask_bbox(mask)
            if bbox is None:
                continue
            kv, ku = np.nonzero(mask & valid)
            if len(kv) < 10:
                continue
            pts = rays[kv, ku] * depth[kv, ku][:, None]
            h = pts @ plane[:3] + plane[3]
            low, top = float(np.percentile(h, 1)), float(np.percentile(h, 99))
            if low > cfg.support_gap_m:
                continue  # floating (an arm above the table), not standing on it
            flat = pts - np.outer(h, plane[:3])
            flat_c = flat - flat.mean(axis=0)
            try:
                _, sv, vt = np.linalg.svd(flat_c, full_matrices=False)
                proj = flat_c @ vt[:2].T
                extent = np.percentile(proj, 98, axis=0) - np.percentile(proj, 2, axis=0)
                width = float(np.max(extent))
            except np.linalg.LinAlgError:
                width = 0.0
            if cfg.use_size_prior and not any(
                p.min_height <= top <= p.max_height and p.min_width <= width <= p.max_width for p in priors
            ):
                continue
            touches_border = bbox[0] == 0 or bbox[1] == 0 or bbox[2] == w_img or bbox[3] == h_img
            score = 0.5 if touches_border else 1.0  # cut off by the image edge: less trustworthy
            proposals.append(Proposal(bbox, mask, score, label, pts.mean(axis=0).astype(np.float64), "depth_clusters"))
        proposals.sort(key=lambda p: (p.bbox[0], p.bbox[1]))
        reason = "" if proposals else f"no cluster above the table fits the size of a {label}"
        return Detections(proposals, plane, reason)


    def _merge_fragments(self, pts: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Merge small clusters (a mug handle seen edge-on, a rim split off by a depth step) into
        the nearest larger cluster within `merge_distance_m`; returns relabelled 0..K-1."""
        from scipy.spatial import cKDTree

        cfg = self.config
        ids, counts = np.unique(labels, return_counts=True)
        if len(ids) < 2:
            return labels
        order = ids[np.argsort(counts)]  # smallest first
        trees = {int(i): cKDTree(pts[labels == i]) for i in ids}
        size = dict(zip(ids.tolist(), counts.tolist(), strict=True))
        for small in order.tolist():
            if size.get(small, 0) == 0:
                continue
            small_pts = pts[labels == small]
            extent = float(np.max(np.ptp(small_pts, axis=0))) if len(small_pts) > 1 else 0.0
            if extent > cfg.fragment_extent_m:
                continue
            best, best_d = None, cfg.merge_distance_m
            for other in ids.tolist():
                if other == small or size.get(other, 0) <= size[small]:
                    continue
                d, _ = trees[other].query(small_pts, k=1)
                if float(d.min()) < best_d:
                    best, best_d = other, float(d.min())
            if best is not None:
                labels = np.where(labels == small, best, labels)
                size[best] += size[small]
                size[small] = 0
                trees[best] = cKDTree(pts[labels == best])
        _, relabelled = np.unique(labels, return_inverse=True)
        return relabelled


@DETECTORS.register("grounding_dino")
def _grounding_dino(**kwargs: Any) -> Detector:
    from vla_stack.core.grounding.learned import GroundingDinoDetector

    return GroundingDinoDetector(**kwargs)


@DETECTORS.register("owlv2")
def _owlv2(**kwargs: Any) -> Detector:
    from vla_stack.core.grounding.learned import Owlv2Detector

    return Owlv2Detector(**kwargs)
