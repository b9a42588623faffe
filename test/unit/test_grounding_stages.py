"""Grounding stages on synthetic data with exact ground truth: depth proposals, appearance
embeddings of look-alikes, mask tracking, 3D target back-projection, highlight overlay."""

import numpy as np
import pytest
from grounding_synthetic import (
    Cylinder,
    default_camera,
    default_intrinsics,
    dots,
    look_at,
    plain,
    render,
    stripes,
)

from vla_stack.core.grounding.embedders import AppearanceEmbedder, ObjectCrop, crop_object
from vla_stack.core.grounding.imageops import InvalidImage, mask_bbox, mask_iou
from vla_stack.core.grounding.matching import cosine_matrix, ensemble_scores
from vla_stack.core.grounding.prompting import HighlightStyle, highlight
from vla_stack.core.grounding.proposals import DETECTORS, DepthClusterDetector, Proposal, size_prior
from vla_stack.core.grounding.segmenters import DepthRefineSegmenter
from vla_stack.core.grounding.target import TargetConfig, estimate_target, matrix_to_pose, pose_to_matrix
from vla_stack.core.grounding.trackers import OpticalFlowTracker, associate

BASE, ACCENT = (226, 214, 196), (176, 70, 46)
INTR = default_intrinsics()
CAM = default_camera()


@pytest.fixture(scope="module")
def table_scene():
    cyls = [
        Cylinder(0.40, -0.16, texture=stripes(BASE, ACCENT)),
        Cylinder(0.52, 0.00, texture=dots(BASE, ACCENT)),
        Cylinder(0.40, 0.16, texture=stripes(BASE, ACCENT, vertical=True)),
        Cylinder(0.62, 0.20, radius=0.12, height=0.01, texture=plain((60, 90, 60))),  # flat "tray": too low for a cup
        Cylinder(0.65, -0.25, radius=0.02, height=0.30, texture=plain((90, 90, 200))),  # too tall for a cup
    ]
    rgb, depth, labels = render(cyls, CAM, INTR)
    return cyls, rgb, depth, labels


# ---- proposals ------------------------------------------------------------------------------
def test_depth_clusters_find_the_cups_with_accurate_masks(table_scene):
    _, rgb, depth, labels = table_scene
    det = DETECTORS.create("depth_clusters")
    out = det.detect(rgb, depth, INTR, ["cup"])
    assert out.reason == ""
    assert len(out.proposals) == 3, [p.bbox for p in out.proposals]
    ious = sorted(max(mask_iou(p.mask, labels == k) for k in (2, 3, 4)) for p in out.proposals)
    assert ious[0] > 0.85, ious
    # table plane: the table is z = 0 in the base frame; n·p + d = height above it
    n, d = out.table_plane[:3], out.table_plane[3]
    T_cam_base = np.linalg.inv(CAM)
    p_base = np.array([0.5, 0.1, 0.0, 1.0])
    p_cam = (T_cam_base @ p_base)[:3]
    assert abs(n @ p_cam + d) < 0.005
    p_up = (T_cam_base @ np.array([0.5, 0.1, 0.1, 1.0]))[:3]
    assert n @ p_up + d == pytest.approx(0.1, abs=0.005)
    for p in out.proposals:
        assert p.label == "cup" and p.score == 1.0 and p.centroid_camera.shape == (3,)


def test_size_prior_is_per_category(table_scene):
    _, rgb, depth, _ = table_scene
    det = DepthClusterDetector()
    assert len(det.detect(rgb, depth, INTR, ["bottle"]).proposals) >= 1  # the tall one fits a bottle
    # without the prior the tall one is proposed too; the 1 cm tray never rises above min_height_m
    assert len(DepthClusterDetector(use_size_prior=False).detect(rgb, depth, INTR, ["cup"]).proposals) == 4
    assert size_prior("mug") == size_prior("cup")


def test_floating_objects_are_not_proposals():
    cyl = Cylinder(0.5, 0.0)
    rgb, depth, labels = render([cyl], CAM, INTR)
    # lift the cylinder's pixels 10 cm towards the camera: it no longer stands on the table
    lifted = depth.copy()
    lifted[labels == 2] -= 0.12
    out = DepthClusterDetector().detect(rgb, lifted, INTR, ["cup"])
    assert out.proposals == []


def test_depth_clusters_report_why_nothing_was_found(table_scene):
    _, rgb, depth, _ = table_scene
    det = DepthClusterDetector()
    empty = det.detect(rgb, np.zeros_like(depth), INTR, ["cup"])
    assert empty.proposals == [] and "valid depth" in empty.reason
    table_only, _, _ = render([], CAM, INTR)[0], None, None
    _, d_table, _ = render([], CAM, INTR)
    out = det.detect(table_only, d_table, INTR, ["cup"])
    assert out.proposals == [] and out.table_plane is not None and "nothing stands" in out.reason
    with pytest.raises(InvalidImage, match="depth"):
        det.detect(rgb, None, INTR, ["cup"])
    with pytest.raises(InvalidImage, match="not aligned"):
        det.detect(rgb, depth[:100], INTR, ["cup"])
    nan_depth = depth.copy()
    nan_depth[::3] = np.nan
    assert len(det.detect(rgb, nan_depth, INTR, ["cup"]).proposals) == 3  # NaN = no return, still works
    mm = (depth * 1000).astype(np.uint16)  # 16UC1 millimetres
    assert len(det.detect(rgb, mm, INTR, ["cup"]).proposals) == 3


def test_segmenter_cuts_box_only_proposals_from_depth(table_scene):
    _, rgb, depth, labels = table_scene
    truth = labels == 3
    bbox = mask_bbox(truth)
    x0, y0, x1, y1 = bbox
    prop = Proposal((x0 - 5, y0 - 5, x1 + 5, y1 + 5), None, 0.9, "cup")
    plane = DepthClusterDetector().fit_table_plane(depth, INTR)[0]
    seg = DepthRefineSegmenter()
    assert mask_iou(seg.segment(rgb, depth, INTR, prop, plane), truth) > 0.8
    assert mask_iou(seg.segment(rgb, depth, INTR, prop, None), truth) > 0.6
    no_depth = seg.segment(rgb, None, None, prop)  # GrabCut fallback
    assert no_depth.any() and mask_iou(no_depth, truth) > 0.4


# ---- appearance embeddings --------------------------------------------------------------------
def _views(texture, yaws, scale_cam, light=1.0, seed=0):
    """Crops of one cylinder seen from `yaws` (object rotated) at a camera distance factor."""
    crops = []
    for i, yaw in enumerate(yaws):
        cyl = Cylinder(0.0, 0.0, texture=texture, yaw=yaw)
        cam = look_at([0.45 * scale_cam, 0.0, 0.25 * scale_cam], [0, 0, 0.045])
        rgb, _, lab = render([cyl], cam, INTR, table_color=(150, 150, 150), table_center=(0.0, 0.0),
                             table_half=(2.0, 2.0), light=light, seed=seed + i)
        crops.append(crop_object(rgb, lab == 2))
    return crops


def test_appearance_separates_look_alikes_better_than_chance():
    """Same shape and colours, different pattern: the right one wins far more often than 1/3."""
    emb = AppearanceEmbedder()
    rng = np.random.default_rng(3)
    families = [stripes(BASE, ACCENT, n=4), dots(BASE, ACCENT), stripes(BASE, ACCENT, n=6, vertical=True)]
    refs = [emb.embed_crops(_views(t, np.linspace(0, 2 * np.pi, 4, endpoint=False), 0.5)) for t in families]
    trials, correct, margins = 0, 0, []
    for trial in range(6):
        light = rng.uniform(0.75, 1.15)
        cands = [_views(t, [rng.uniform(0, 2 * np.pi)], 2.0, light, seed=100 + trial)[0] for t in families]
        C = emb.embed_crops(cands)
        for k, R in enumerate(refs):
            s = ensemble_scores(cosine_matrix(C, R), 2)
            trials += 1
            correct += int(np.argmax(s) == k)
            margins.append(s[k] - np.max(np.delete(s, k)))
    assert correct / trials >= 0.85, (correct, trials)  # chance = 1/3
    assert np.median(margins) > 0.005


def test_appearance_embedding_is_a_unit_vector_and_rejects_empty_masks():
    emb = AppearanceEmbedder()
    crop = _views(dots(BASE, ACCENT), [0.3], 1.0)[0]
    e = emb.embed_crops([crop])
    assert e.shape == (1, emb.dim) and e.dtype == np.float32
    assert np.linalg.norm(e[0]) == pytest.approx(1.0, abs=1e-5)
    assert emb.embed_crops([]).shape == (0, emb.dim)
    with pytest.raises(InvalidImage):
        emb.embed_crops([ObjectCrop(crop.rgb, np.zeros_like(crop.mask))])
    with pytest.raises(InvalidImage):
        crop_object(crop.rgb, np.zeros(crop.mask.shape, bool))


# ---- tracking ----------------------------------------------------------------------------------
def _textured_frame(cx, cy, rng_seed=0, h=480, w=640, r=40):
    rng = np.random.default_rng(rng_seed)
    bg = np.random.default_rng(99).integers(60, 90, (h, w, 3)).astype(np.uint8)
    patch = np.random.default_rng(rng_seed).integers(0, 255, (2 * r, 2 * r, 3)).astype(np.uint8)
    import cv2

    patch = cv2.GaussianBlur(patch, (5, 5), 1.5)
    yy, xx = np.mgrid[-r:r, -r:r]
    disc = xx**2 + yy**2 < r**2
    frame = bg.copy()
    ys, xs = int(round(cy)) - r, int(round(cx)) - r
    region = frame[ys : ys + 2 * r, xs : xs + 2 * r]
    region[disc] = patch[disc]
    mask = np.zeros((h, w), bool)
    mask[ys : ys + 2 * r, xs : xs + 2 * r] = disc
    del rng
    return frame, mask


def test_optical_flow_tracker_follows_a_moving_blob():
    tracker = OpticalFlowTracker()
    f0, m0 = _textured_frame(200, 200)
    tracker.init(f0, m0)
    assert tracker.active
    ious = []
    for k in range(1, 31):
        frame, truth = _textured_frame(200 + 4 * k, 200 + 2 * k)
        state = tracker.update(frame)
        assert not state.lost
        ious.append(mask_iou(state.mask, truth))
        assert 0.0 < state.confidence <= 1.0
    assert min(ious) > 0.8, ious


def test_tracker_reports_lost_when_the_object_vanishes():
    tracker = OpticalFlowTracker()
    f0, m0 = _textured_frame(300, 240)
    tracker.init(f0, m0)
    blank = np.full_like(f0, 70)
    state = tracker.update(blank)
    assert state.lost and state.bbox is None and not tracker.active
    with pytest.raises(RuntimeError):
        OpticalFlowTracker().update(f0)
    t = OpticalFlowTracker()
    t.init(f0, np.zeros(m0.shape, bool))  # empty mask: nothing to track
    assert not t.active


def test_iou_association_picks_the_overlapping_candidate():
    a = np.zeros((50, 50), bool)
    a[10:30, 10:30] = True
    b = np.zeros_like(a)
    b[12:32, 12:32] = True
    c = np.zeros_like(a)
    c[35:45, 35:45] = True
    assert associate(a, [c, None, b]) == 2
    assert associate(a, [c]) is None


# ---- 3D target -----------------------------------------------------------------------------------
def test_target_back_projection_matches_the_known_cylinder():
    cyl = Cylinder(0.52, 0.08, radius=0.03, height=0.09)
    rgb, depth, labels = render([cyl], CAM, INTR)
    mask = labels == 2
    cfg = TargetConfig()
    est = estimate_target(mask, depth, INTR, camera_pose=CAM, config=cfg, stamp=3.5, base_frame="panda_link0")
    assert est is not None and est.num_points == int(mask.sum())
    g = est.grasp_base
    assert g.frame_id == "panda_link0" and g.stamp == 3.5
    np.testing.assert_allclose(g.position[:2], [0.52, 0.08], atol=0.006)
    assert g.position[2] == pytest.approx(0.09 - cfg.grasp_depth_m, abs=0.006)
    assert est.height_m == pytest.approx(0.09, abs=0.01)
    # visible-surface centroid lies inside the cylinder footprint, on the camera side of the axis
    c = est.centroid_base.position
    assert np.hypot(c[0] - 0.52, c[1] - 0.08) < 0.03 and 0.0 < c[2] < 0.09
    # grasp orientation: approach straight down, fingers closing horizontally
    R = pose_to_matrix(g)[:3, :3]
    np.testing.assert_allclose(R[:, 2], [0, 0, -1], atol=1e-6)
    assert abs(R[2, 1]) < 1e-6
    # camera-frame outputs are the same poses seen from the camera
    T_cam = pose_to_matrix(est.grasp_camera)
    np.testing.assert_allclose(CAM @ T_cam, pose_to_matrix(g), atol=1e-6)
    assert est.grasp_camera.frame_id == INTR.frame_id


def test_target_without_camera_pose_uses_the_table_normal():
    cyl = Cylinder(0.45, -0.1)
    rgb, depth, labels = render([cyl], CAM, INTR)
    plane, _ = DepthClusterDetector().fit_table_plane(depth, INTR)
    est = estimate_target(labels == 2, depth, INTR, up_camera=plane[:3])
    assert est.grasp_base is None and est.centroid_base is None
    expected = np.linalg.inv(CAM) @ np.array([0.45, -0.1, 0.09 - TargetConfig().grasp_depth_m, 1.0])
    np.testing.assert_allclose(est.grasp_camera.position, expected[:3], atol=0.01)


def test_target_handles_bad_depth():
    cyl = Cylinder(0.45, 0.0)
    _, depth, labels = render([cyl], CAM, INTR)
    mask = labels == 2
    assert estimate_target(mask, np.zeros_like(depth), INTR) is None
    assert estimate_target(np.zeros_like(mask), depth, INTR) is None
    noisy = depth.copy()
    noisy[mask] = np.where(np.random.default_rng(0).random(mask.sum()) < 0.05, 9.0, depth[mask])  # 5 % outliers
    est = estimate_target(mask, noisy, INTR, camera_pose=matrix_to_pose(CAM, "base"))
    np.testing.assert_allclose(est.grasp_base.position[:2], [0.45, 0.0], atol=0.008)
    with pytest.raises(ValueError):
        estimate_target(mask, depth[:10], INTR)


# ---- prompting ---------------------------------------------------------------------------------
def test_highlight_overlay_tints_only_the_mask_and_outlines_it():
    rgb = np.full((60, 80, 3), 100, np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[20:40, 30:50] = True
    out = highlight(rgb, mask, "red", alpha=0.5, outline_px=0)
    assert np.array_equal(out[~mask], rgb[~mask])
    inside = out[mask].astype(int)
    assert np.all(inside[:, 0] > 150) and np.all(inside[:, 1] < 100)
    outlined = highlight(rgb, mask, "red", alpha=0.5, outline_px=2)
    ring = np.zeros_like(mask)
    ring[18:42, 28:52] = True
    changed = np.any(outlined != rgb, axis=2)
    assert changed[ring].sum() > changed[mask].sum() - 1  # the outline adds pixels around the mask
    assert not changed[0:10, 0:10].any()
    assert np.array_equal(rgb, np.full((60, 80, 3), 100, np.uint8))  # input untouched
    assert np.array_equal(highlight(rgb, np.zeros_like(mask)), rgb)
    with pytest.raises(ValueError):
        highlight(rgb, mask[:10])
    with pytest.raises(ValueError):
        highlight(rgb, mask, "ultraviolet")


def test_highlight_style_validation():
    with pytest.raises(ValueError):
        HighlightStyle(colors=("red", "plaid"))
    with pytest.raises(ValueError):
        HighlightStyle(alpha=1.5)
    assert HighlightStyle(colors=("Red", "green")).color_for(3) == "green"


def test_tracker_mask_warp_over_the_object_box_equals_the_full_warp():
    """The tracker warps only the object's box; the result must equal warping the whole mask."""
    import cv2

    from vla_stack.core.grounding.imageops import mask_bbox
    from vla_stack.core.grounding.trackers import _warp_mask

    mask = np.zeros((120, 160), bool)
    cv2.ellipse(mask.view(np.uint8), (60, 70), (18, 25), 10, 0, 360, 1, -1)
    mask[40:50, 75:90] = True  # a handle-like blob
    rng = np.random.default_rng(3)
    for _ in range(50):
        M = cv2.getRotationMatrix2D((rng.uniform(0, 160), rng.uniform(0, 120)), rng.normal(0, 8), rng.uniform(0.85, 1.15))
        M[:, 2] += rng.normal(0, 15, 2)
        full = cv2.warpAffine(mask.astype(np.uint8), M, (160, 120), flags=cv2.INTER_NEAREST).astype(bool)
        np.testing.assert_array_equal(_warp_mask(mask, mask_bbox(mask), M), full)
    # moved completely out of the image: empty, no error
    far = np.array([[1.0, 0.0, 1000.0], [0.0, 1.0, 0.0]])
    assert not _warp_mask(mask, mask_bbox(mask), far).any()
