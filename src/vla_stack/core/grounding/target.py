"""3D target of a grounded object: mask + aligned depth + intrinsics -> object centroid and a
top-down grasp point, in the camera optical frame and (when the camera pose is known) in the
robot base frame.

Frames:
- camera optical frame (`intrinsics.frame_id`): z forward, x right, y down, metres.
- base frame: the robot base; "up" is +z. `camera_pose` is the pose of the camera optical
  frame in the base frame (T_base_camera).
- grasp frame (the returned grasp orientation): z = approach direction (pointing down into
  the object), y = finger closing direction (across the object, away from a handle), x = y × z.
  This is the common parallel-gripper convention (fingers move along the hand's y axis).

Depth images from RGB-D drivers are rectified and aligned to the colour image, so the
pinhole model without distortion is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from vla_stack.core.grounding.imageops import check_depth, mask_bbox
from vla_stack.core.types import CameraIntrinsics, Pose


@dataclass
class TargetConfig:
    """Parameters of the 3D target estimate."""

    min_points: int = field(default=30, metadata={"help": "Fewest valid depth pixels on the mask to estimate a target"})
    depth_window_m: float = field(
        default=0.20, metadata={"help": "Mask pixels farther than this from the median depth are outliers, m"}
    )
    top_slice_m: float = field(
        default=0.010, metadata={"help": "Thickness of the top slice whose centre is the grasp centre, m"}
    )
    grasp_depth_m: float = field(
        default=0.035, metadata={"help": "How far below the object's top the grasp point sits, m"}
    )
    min_grasp_height_m: float = field(
        default=0.015, metadata={"help": "The grasp point stays at least this far above the object's bottom, m"}
    )
    handle_ratio: float = field(
        default=1.35,
        metadata={"help": "Footprint points farther than this times the median radius count as a handle"},
    )
    handle_band: tuple[float, float] = field(
        default=(0.15, 0.9),
        metadata={"help": "Handle points lie between these fractions of the object's height (above its bottom)"},
    )
    handle_min_points: int = field(default=10, metadata={"help": "Fewest handle points to trust a handle direction"})
    handle_min_fraction: float = field(
        default=0.005, metadata={"help": "... and at least this fraction of the object's points"}
    )

    def __post_init__(self) -> None:
        if self.min_points < 3:
            raise ValueError(f"min_points must be >= 3, got {self.min_points}")
        for name in ("depth_window_m", "top_slice_m", "grasp_depth_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.min_grasp_height_m < 0:
            raise ValueError("min_grasp_height_m must be >= 0")
        if self.handle_ratio <= 1.0:
            raise ValueError(f"handle_ratio must be > 1, got {self.handle_ratio}")


@dataclass(frozen=True)
class TargetEstimate:
    """Where a grounded object is.

    Args:
        centroid_camera: mean of the object's visible surface points, camera optical frame (identity orientation).
        grasp_camera: top-down grasp pose, camera optical frame (see the module doc for the grasp frame).
        centroid_base, grasp_base: the same in the base frame, None without a camera pose.
        num_points: valid depth pixels used.
        height_m: object height along "up", m (visible part).
        width_m: largest horizontal extent of the visible points, m.
        handle_direction: unit vector of the detected handle in the frame of the estimate
            (base when posed, camera otherwise), None when no handle was found.
    """

    centroid_camera: Pose
    grasp_camera: Pose
    centroid_base: Pose | None
    grasp_base: Pose | None
    num_points: int
    height_m: float
    width_m: float
    handle_direction: np.ndarray | None = None


def pose_to_matrix(pose: Pose | np.ndarray) -> np.ndarray:
    """4x4 homogeneous transform of a `Pose` (or a 4x4 matrix, checked and returned as float)."""
    if isinstance(pose, Pose):
        T = np.eye(4)
        q = np.asarray(pose.orientation, dtype=np.float64)
        n = np.linalg.norm(q)
        if not np.isfinite(n) or n < 1e-9:
            raise ValueError(f"camera pose quaternion is not a rotation: {q}")
        T[:3, :3] = Rotation.from_quat(q / n).as_matrix()
        T[:3, 3] = pose.position
        return T
    T = np.asarray(pose, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"camera pose must be a Pose or a finite 4x4 matrix, got shape {T.shape}")
    return T


def matrix_to_pose(T: np.ndarray, frame_id: str, stamp: float = 0.0) -> Pose:
    """`Pose` (position m, quaternion x, y, z, w) of a 4x4 transform."""
    return Pose(T[:3, 3].copy(), Rotation.from_matrix(T[:3, :3]).as_quat(), stamp, frame_id)


def backproject(mask: np.ndarray, depth: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """(N, 3) points in the camera optical frame of the mask pixels with valid depth (finite, > 0), m."""
    bbox = mask_bbox(mask)
    if bbox is None:
        return np.zeros((0, 3))
    x0, y0, x1, y1 = bbox
    d = depth[y0:y1, x0:x1]
    v, u = np.nonzero(mask[y0:y1, x0:x1] & np.isfinite(d) & (d > 0))
    z = d[v, u].astype(np.float64)
    u, v = u + x0, v + y0
    x = (u - intrinsics.cx) * z / intrinsics.fx
    y = (v - intrinsics.cy) * z / intrinsics.fy
    return np.stack([x, y, z], axis=1)


def _horizontal_basis(up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = ref - up * float(ref @ up)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(up, e1)


def estimate_target(
    mask: np.ndarray,
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    camera_pose: Pose | np.ndarray | None = None,
    up_camera: np.ndarray | None = None,
    config: TargetConfig | None = None,
    stamp: float = 0.0,
    base_frame: str = "base",
) -> TargetEstimate | None:
    """Object centroid and top-down grasp from a mask and its aligned depth.

    Args:
        mask: (H, W) bool object mask.
        depth: (H, W) depth, float m or uint16 mm, aligned with the mask.
        intrinsics: camera model of the depth image.
        camera_pose: T_base_camera (Pose of the optical frame in the base frame, or 4x4); enables
            the base-frame outputs and defines "up" as base +z.
        up_camera: unit "up" vector in the camera frame (e.g. the table normal from the depth
            detector) used when no camera pose is given; default -y of the camera.
        config: TargetConfig.
        stamp: stamp of the returned poses, s.
        base_frame: frame_id of the base-frame poses.

    Returns:
        TargetEstimate, or None when the mask has fewer than `config.min_points` valid depth pixels.
    """
    cfg = config or TargetConfig()
    mask = np.asarray(mask, dtype=bool)
    if not (isinstance(depth, np.ndarray) and depth.dtype == np.float32 and depth.shape == mask.shape):
        depth = check_depth(depth, mask.shape)  # converts mm / checks shape; float32 m is used as is
    if (intrinsics.height, intrinsics.width) != mask.shape:
        raise ValueError(
            f"intrinsics are for {intrinsics.width}x{intrinsics.height} but the mask is {mask.shape[1]}x{mask.shape[0]}"
        )
    pts_cam = backproject(mask, depth, intrinsics)
    if len(pts_cam) < cfg.min_points:
        return None
    z_med = float(np.median(pts_cam[:, 2]))
    pts_cam = pts_cam[np.abs(pts_cam[:, 2] - z_med) <= cfg.depth_window_m]
    if len(pts_cam) < cfg.min_points:
        return None

    T_base_cam = pose_to_matrix(camera_pose) if camera_pose is not None else None
    if T_base_cam is not None:
        pts = pts_cam @ T_base_cam[:3, :3].T + T_base_cam[:3, 3]
        up = np.array([0.0, 0.0, 1.0])
        view_dir = T_base_cam[:3, 2]  # camera z axis in the base frame
    else:
        pts = pts_cam
        up = np.array([0.0, -1.0, 0.0]) if up_camera is None else np.asarray(up_camera, dtype=np.float64)
        up = up / np.linalg.norm(up)
        view_dir = np.array([0.0, 0.0, 1.0])

    h = pts @ up
    top, bottom = float(np.percentile(h, 99)), float(np.percentile(h, 1))
    e1, e2 = _horizontal_basis(up)
    ab = np.stack([pts @ e1, pts @ e2], axis=1)
    top_ab = ab[h >= top - cfg.top_slice_m]
    if len(top_ab) < 3:
        top_ab = ab
    lo, hi = np.percentile(top_ab, 5, axis=0), np.percentile(top_ab, 95, axis=0)
    centre_ab = 0.5 * (lo + hi)

    # Handle: points much farther from the centre than the body's median radius, between
    # the bottom and the rim (table pixels at the mask's edge sit at the bottom, rim
    # pixels at the top). Its direction is the circular median of their bearings: a mean
    # vector is pulled off by stray edge pixels and by the part of the handle hidden behind
    # the body.
    rel = ab - centre_ab
    radius = np.linalg.norm(rel, axis=1)
    med_r = float(np.median(radius)) if len(radius) else 0.0
    span = max(top - bottom, 1e-6)
    side = (h > bottom + cfg.handle_band[0] * span) & (h < bottom + cfg.handle_band[1] * span)
    far = (radius > cfg.handle_ratio * max(med_r, 1e-4)) & side
    handle_dir = None
    if np.count_nonzero(far) >= max(cfg.handle_min_points, int(cfg.handle_min_fraction * len(radius))):
        bearing = np.arctan2(rel[far, 1], rel[far, 0])
        mean_b = float(np.arctan2(np.sin(bearing).mean(), np.cos(bearing).mean()))
        offset = np.angle(np.exp(1j * (bearing - mean_b)))
        b = mean_b + float(np.median(offset))
        handle_dir = np.cos(b) * e1 + np.sin(b) * e2
    if handle_dir is not None:
        closing = np.cross(up, handle_dir)  # across the body, perpendicular to the handle
    else:
        horiz_view = view_dir - up * float(view_dir @ up)
        closing = np.cross(up, horiz_view) if np.linalg.norm(horiz_view) > 1e-6 else e2
    closing /= np.linalg.norm(closing)

    centre = centre_ab[0] * e1 + centre_ab[1] * e2
    grasp_h = max(top - cfg.grasp_depth_m, bottom + cfg.min_grasp_height_m)
    grasp_h = min(grasp_h, top)
    grasp_pos = centre + up * grasp_h
    z_axis = -up
    y_axis = closing
    x_axis = np.cross(y_axis, z_axis)
    R = np.stack([x_axis, y_axis, z_axis], axis=1)

    T_grasp = np.eye(4)
    T_grasp[:3, :3], T_grasp[:3, 3] = R, grasp_pos
    centroid = pts.mean(axis=0)
    width = float(np.max(np.percentile(ab, 98, axis=0) - np.percentile(ab, 2, axis=0)))
    frame_cam = intrinsics.frame_id
    if T_base_cam is not None:
        T_cam_base = np.linalg.inv(T_base_cam)
        T_grasp_cam = T_cam_base @ T_grasp
        centroid_cam = pts_cam.mean(axis=0)
        return TargetEstimate(
            centroid_camera=Pose(centroid_cam, stamp=stamp, frame_id=frame_cam),
            grasp_camera=matrix_to_pose(T_grasp_cam, frame_cam, stamp),
            centroid_base=Pose(centroid, stamp=stamp, frame_id=base_frame),
            grasp_base=matrix_to_pose(T_grasp, base_frame, stamp),
            num_points=len(pts),
            height_m=top - bottom,
            width_m=width,
            handle_direction=handle_dir,
        )
    return TargetEstimate(
        centroid_camera=Pose(centroid, stamp=stamp, frame_id=frame_cam),
        grasp_camera=matrix_to_pose(T_grasp, frame_cam, stamp),
        centroid_base=None,
        grasp_base=None,
        num_points=len(pts),
        height_m=top - bottom,
        width_m=width,
        handle_direction=handle_dir,
    )
