"""SimRobot sensors: RGB-D + intrinsics + extrinsics consistency, segmentation, tactile, F/T,
reference views, and a scripted top-down grasp with IK that lifts a mug."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.core.sim.config import SceneConfig
from vla_stack.core.sim.robot import SimRobot
from vla_stack.core.types import ActionChunk

G = 9.81


@pytest.fixture(scope="module")
def robot() -> SimRobot:
    r = SimRobot(SceneConfig(seed=3, num_mugs=3, wrist_camera=True))
    yield r
    r.close()


def camera_matrix(pose) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(pose.orientation).as_matrix()
    T[:3, 3] = pose.position
    return T


def project(K: np.ndarray, T_base_cam: np.ndarray, p_base: np.ndarray) -> tuple[np.ndarray, float]:
    p_cam = np.linalg.inv(T_base_cam) @ np.append(p_base, 1.0)
    uv = K @ (p_cam[:3] / p_cam[2])
    return uv[:2], float(p_cam[2])


def test_render_shapes_and_types(robot):
    intr = robot.intrinsics("scene")
    rgb, depth = robot.render("scene")
    assert rgb.shape == (intr.height, intr.width, 3) and rgb.dtype == np.uint8
    assert depth.shape == (intr.height, intr.width) and depth.dtype == np.float32
    assert rgb.std() > 10  # not a blank image
    assert np.all(depth >= 0) and 0.3 < np.median(depth) < 3.0
    assert intr.frame_id == "camera_color_optical_frame"
    assert set(robot.camera_names()) == {"scene", "wrist"}
    w_rgb, w_depth = robot.render("wrist")
    assert w_rgb.shape == (240, 320, 3) and w_depth.shape == (240, 320)
    with pytest.raises(KeyError, match="unknown camera"):
        robot.render("nope")


def test_depth_consistent_with_intrinsics_and_camera_pose(robot):
    """Project known table points into the image, read depth there, back-project: same point."""
    intr = robot.intrinsics("scene")
    T = camera_matrix(robot.camera_pose("scene"))
    # Optical frame convention: z forward (towards the table), y down (world -z-ish).
    assert T[:3, 2] @ (np.array([0.45, 0, 0]) - T[:3, 3]) > 0
    assert T[:3, 1][2] < 0
    _, depth = robot.render("scene")
    seg = robot.render_segmentation("scene")
    table = robot.segmentation_labels()["table"]
    K = intr.K
    compared = 0
    for p in ([0.3, 0.25, 0.0], [0.6, -0.25, 0.0], [0.55, 0.0, 0.0], [0.3, -0.3, 0.0], [0.65, 0.3, 0.0]):
        p = np.array(p)
        (u, v), z_expected = project(K, T, p)
        ui, vi = int(round(u)), int(round(v))
        assert 0 <= ui < intr.width and 0 <= vi < intr.height, f"{p} projects outside the image"
        if seg[vi, ui] != table:
            continue  # occluded by an object: nothing to compare
        compared += 1
        z = float(depth[vi, ui])
        assert z == pytest.approx(z_expected, abs=4e-3), f"depth at table point {p}"
        ray = np.linalg.inv(K) @ np.array([ui, vi, 1.0])
        back = (T @ np.append(ray * z, 1.0))[:3]
        assert np.linalg.norm(back - p) < 6e-3  # within a pixel's footprint
    assert compared >= 3


def test_segmentation_marks_each_mug_where_it_projects(robot):
    seg = robot.render_segmentation("scene")
    labels = robot.segmentation_labels()
    intr = robot.intrinsics("scene")
    T = camera_matrix(robot.camera_pose("scene"))
    h = robot.scene.mug_geometry.height
    for name in robot.mug_names():
        mask = seg == labels[name]
        assert mask.sum() > 300, f"{name} barely visible ({mask.sum()} px)"
        centre = robot.object_pose(name).position + np.array([0, 0, h / 2])
        (u, v), _ = project(intr.K, T, centre)
        ys, xs = np.nonzero(mask)
        assert abs(xs.mean() - u) < 25 and abs(ys.mean() - v) < 25


def test_back_projected_mug_pixels_lie_on_the_mug(robot):
    """Depth + intrinsics + extrinsics put the mug's visible surface at its true place."""
    _, depth = robot.render("scene")
    seg = robot.render_segmentation("scene")
    intr = robot.intrinsics("scene")
    T = camera_matrix(robot.camera_pose("scene"))
    name = robot.mine
    ys, xs = np.nonzero((seg == robot.segmentation_labels()[name]) & (depth > 0))
    rays = np.linalg.inv(intr.K) @ np.stack([xs, ys, np.ones_like(xs)]).astype(float)
    pts = (T[:3, :3] @ (rays * depth[ys, xs]) + T[:3, 3:4]).T
    base = robot.object_pose(name).position
    geom = robot.scene.mug_geometry
    radial = np.linalg.norm(pts[:, :2] - base[:2], axis=1)
    assert np.percentile(radial, 95) < geom.footprint_radius + 0.005
    assert pts[:, 2].min() > -0.005 and pts[:, 2].max() < geom.height + 0.01


def test_rendering_does_not_disturb_physics():
    a = SimRobot(SceneConfig(seed=1))
    b = SimRobot(SceneConfig(seed=1))
    q = a.joint_state().positions[:7] + 0.2
    for r in (a, b):
        r.command_trajectory(ActionChunk(r.arm_joint_names, [0.5], [q]))
    for _ in range(5):
        a.advance(0.1)
        b.advance(0.1)
        a.render("scene")
        a.render_segmentation("scene")
    np.testing.assert_array_equal(a.data.qpos, b.data.qpos)
    np.testing.assert_array_equal(a.data.qvel, b.data.qvel)
    assert a.time == b.time
    a.close()


def test_tactile_zero_in_free_space_and_wrench_is_hand_weight(robot):
    for pad in robot.tactile_pads():
        reading = robot.tactile(pad)
        assert reading.pressure.shape == (16, 12) and reading.pressure.dtype == np.float32
        assert reading.pressure.max() == 0.0 and np.all(reading.force == 0.0)
        assert reading.contact_area == 0.0
    w = robot.wrench()
    assert w.frame_id == "panda_hand"
    # Gripper points down at the ready pose: the hand (+fingers) hangs on the sensor, ~1 kg.
    assert w.force[2] == pytest.approx(1.0 * G, rel=0.1)
    assert np.linalg.norm(w.force[:2]) < 0.2


def test_reference_views_differ_between_mugs_and_viewpoints(robot):
    views = {m: robot.render_reference_views(m, n=3, size=96) for m in robot.mug_names()}
    for imgs in views.values():
        assert len(imgs) == 3 and all(im.shape == (96, 96, 3) and im.dtype == np.uint8 for im in imgs)
        assert np.abs(imgs[0].astype(float) - imgs[1].astype(float)).mean() > 2.0
    names = list(views)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            diff = np.abs(views[names[i]][0].astype(float) - views[names[j]][0].astype(float)).mean()
            assert diff > 2.0, f"reference views of {names[i]} and {names[j]} look identical"


def _top_down(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    T = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    T[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([1.0, -1.0, -1.0])
    T[:3, 3] = [x, y, z]
    return T


def test_scripted_top_down_grasp_lifts_the_mug():
    robot = SimRobot(SceneConfig(seed=3, num_mugs=3))
    model = RobotModel.for_robot()
    mug = robot.mine
    pose = robot.object_pose(mug)
    x, y, _ = pose.position
    # Hand x along the handle: the fingers close across the body, away from the handle.
    yaw = Rotation.from_quat(pose.orientation).as_euler("xyz")[2]
    h = robot.scene.mug_geometry.height
    q = robot.joint_state().positions[:7]

    def move_to(T: np.ndarray, duration: float) -> None:
        nonlocal q
        res = model.ik(T, q)
        assert res.converged, f"IK failed for {T[:3, 3]}: {res.error}"
        robot.command_trajectory(ActionChunk(robot.arm_joint_names, [duration], [res.q]))
        robot.advance(duration + 0.2)
        q = res.q

    move_to(_top_down(x, y, h + 0.10, yaw), 1.2)
    move_to(_top_down(x, y, h - 0.025, yaw), 0.8)
    assert robot.object_in_gripper() is None
    robot.command_gripper(0.0, 30.0)
    robot.advance(0.6)
    assert robot.object_in_gripper() == mug
    width = robot.gripper_width()
    assert 2 * robot.scene.mug_geometry.radius - 0.001 < width < 2 * robot.scene.mug_geometry.radius + 0.006
    for pad in robot.tactile_pads():
        reading = robot.tactile(pad)
        assert reading.force[2] == pytest.approx(30.0, rel=0.25), f"{pad} pad normal force"
        assert reading.pressure.max() > 10.0 and reading.contact_area > 0
        # The grid integrates to the normal force.
        pad_spec = robot._pads[pad]
        assert reading.pressure.sum() * 1000 * pad_spec.taxel_area == pytest.approx(reading.force[2], rel=0.05)
    move_to(_top_down(x, y, h + 0.15, yaw), 1.2)
    lifted = robot.object_pose(mug).position
    assert lifted[2] > 0.10, f"mug not lifted (z = {lifted[2]:.3f} m)"
    assert robot.ground_truth()["in_gripper"] == mug
    # F/T carries hand + fingers + mug (0.25 kg) now.
    w = robot.wrench()
    assert w.force[2] == pytest.approx((1.0 + robot.config.mug_mass) * G, rel=0.08)
    # Other mugs did not move.
    for other in robot.mug_names():
        if other != mug:
            assert robot.object_pose(other).position[2] < 0.005


def test_external_wrench_is_zero_in_free_motion_and_the_mug_weight_when_held():
    """The compensated wrench the safety controller's contact guard reads: only contact loads."""
    import numpy as np

    from vla_stack.core.kinematics.robot_model import RobotModel
    from vla_stack.core.sim import SceneConfig, SimRobot
    from vla_stack.lab.policy.scripted_expert import ScriptedPickPlace, targets_from_ground_truth

    robot = SimRobot(SceneConfig(seed=0))
    gt = robot.ground_truth()
    grasp, yaw, place = targets_from_ground_truth(gt, gt["mine"])
    segments = ScriptedPickPlace(RobotModel.for_robot()).plan(robot.joint_state().positions[:7], grasp, yaw, place)
    robot.advance(0.3)
    free, held = [], None
    for seg in segments[:4]:  # approach, descend, grasp, lift
        if seg.chunk is not None:
            robot.command_trajectory(seg.chunk, receipt_time=robot.time)
        if seg.gripper_width is not None:
            robot.command_gripper(seg.gripper_width, seg.gripper_force)
        end = robot.time + seg.duration + 0.3
        while robot.time < end:
            robot.step(10)
            if seg.name in ("approach", "descend"):
                free.append(np.linalg.norm(robot.external_wrench().force))
        held = robot.external_wrench()
    assert max(free) < 0.5  # raw sensor reads ~10 N (hand weight) here
    mug_weight = gt["mug_geometry"]["mass"] * 9.81
    assert held.force[2] == pytest.approx(mug_weight, rel=0.15)  # hand z points down: the load pulls +z
    assert np.linalg.norm(robot.wrench().force) > 9.0
