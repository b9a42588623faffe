"""Where to put the object down: locate a flat support ("the tray", "the plate") from depth.

The instruction's place phrase ("... to the tray") names a support, not a personal object, so it
is found generically: among the depth clusters standing on the table (the same proposals the
object detector makes, without a size prior), a support is a cluster that is low (its top at most
`max_height_m` above the table) and wide (its horizontal extent at least `min_extent_m`); the
widest one wins. Its footprint centre (the middle of the bounding box of its points in the base
frame, robust to the perspective that makes a tray's far rim look denser than its near rim) and
its surface height give the place point.

The place point is published for the policy as *where the grasp point of the held object goes*:
surface height + the grasp point's height above the table when the object was grounded (the
object is put down upright as it stood). Without a camera pose everything stays in the camera
frame and no place point is given (the table's "up" in a camera frame would be a guess).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.grounding.proposals import Detections
from vla_stack.core.grounding.target import backproject, pose_to_matrix
from vla_stack.core.types import CameraIntrinsics, Pose


@dataclass
class PlaceConfig:
    """Parameters of support (place) localisation."""

    max_height_m: float = field(default=0.06, metadata={"help": "A support's top is at most this above the table, m"})
    min_extent_m: float = field(default=0.12, metadata={"help": "A support is at least this wide (largest horizontal extent), m"})
    surface_percentile: float = field(
        default=10.0, metadata={"help": "Surface height = this percentile of the support's point heights (floor, not rim)"}
    )

    def __post_init__(self) -> None:
        if not self.max_height_m > 0 or not self.min_extent_m > 0:
            raise ValueError("max_height_m and min_extent_m must be > 0")
        if not 0.0 <= self.surface_percentile <= 100.0:
            raise ValueError(f"surface_percentile must be in 0..100, got {self.surface_percentile}")


@dataclass(frozen=True)
class PlaceEstimate:
    """A located support.

    Args:
        center: (3,) footprint centre on the support surface, base frame, m.
        extent: (2,) footprint size along base x and y, m.
        surface_height: surface height above the table, m.
        table_z: table height under the support in the base frame, m.
    """

    center: np.ndarray
    extent: np.ndarray
    surface_height: float
    table_z: float

    def place_point(self, grasp_height: float) -> np.ndarray:
        """Where the grasp point of an object goes when it stands on the support, base frame (3,)."""
        return self.center + np.array([0.0, 0.0, float(grasp_height)])


def locate_support(detections: Detections, depth: np.ndarray, intrinsics: CameraIntrinsics,
                   camera_pose: Pose | np.ndarray, config: PlaceConfig | None = None) -> PlaceEstimate | None:
    """The widest low cluster of `detections` (made without a size prior), or None.

    Args:
        detections: depth-cluster proposals with masks and the table plane (camera frame).
        depth: aligned depth, m.
        intrinsics: camera model of `depth`.
        camera_pose: T_base_camera.
        config: thresholds.
    """
    cfg = config or PlaceConfig()
    plane = detections.table_plane
    if plane is None:
        return None
    T = pose_to_matrix(camera_pose)
    best: PlaceEstimate | None = None
    for p in detections.proposals:
        if p.mask is None:
            continue
        pts = backproject(p.mask, depth, intrinsics)
        if len(pts) < 50:
            continue
        heights = pts @ plane[:3] + plane[3]
        if np.percentile(heights, 95) > cfg.max_height_m:
            continue
        base = pts @ T[:3, :3].T + T[:3, 3]
        lo, hi = np.percentile(base[:, :2], 2, axis=0), np.percentile(base[:, :2], 98, axis=0)
        extent = hi - lo
        if extent.max() < cfg.min_extent_m:
            continue
        table_z = float(np.median(base[:, 2] - heights))  # base z of the table under each point
        surface = float(np.percentile(heights, cfg.surface_percentile))
        center = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, table_z + surface])
        if best is None or extent.max() > best.extent.max():
            best = PlaceEstimate(center, extent, surface, table_z)
    return best


def grasp_height_above_table(grasp_camera: np.ndarray, detections: Detections) -> float | None:
    """Height of a grasp point (camera frame, (3,)) above the table plane of `detections`, m."""
    plane = detections.table_plane
    if plane is None:
        return None
    return float(np.asarray(grasp_camera, float) @ plane[:3] + plane[3])
