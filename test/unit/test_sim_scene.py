"""The simulated scene: builds for several seeds, no initial penetration, mugs, textures, config."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vla_stack.core.robot_profile import load_robot_profile
from vla_stack.core.sim.config import SceneConfig
from vla_stack.core.sim.mugs import MugGeometry, mug_mesh, procedural_appearances
from vla_stack.core.sim.robot import SimRobot
from vla_stack.core.sim.scene import MUG_REGION_X, MUG_REGION_Y, build_scene

PANDA_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8)) + ("panda_finger_joint1", "panda_finger_joint2")


@pytest.mark.parametrize("seed", [0, 1, 7, 42])
def test_scene_builds_without_penetration_and_mugs_apart(seed):
    robot = SimRobot(SceneConfig(seed=seed, num_mugs=4))
    m, d = robot.model, robot.data
    for i in range(d.ncon):
        c = d.contact[i]
        names = {m.geom(c.geom1).name, m.geom(c.geom2).name}
        assert c.dist > -1e-3, f"initial penetration {c.dist:.4f} m between {names}"
        # At rest only mugs touch the table: nothing touches the robot.
        assert "table_top" in names, f"unexpected initial contact {names}"
    poses = {n: robot.object_pose(n).position for n in robot.mug_names()}
    for n, p in poses.items():
        assert MUG_REGION_X[0] - 1e-3 <= p[0] <= MUG_REGION_X[1] + 1e-3
        assert MUG_REGION_Y[0] - 1e-3 <= p[1] <= MUG_REGION_Y[1] + 1e-3
        assert abs(p[2]) < 2e-3, f"{n} is not resting on the table (z={p[2]:.4f})"
    names = list(poses)
    footprint = robot.scene.mug_geometry.footprint_radius
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert np.linalg.norm(poses[names[i]][:2] - poses[names[j]][:2]) >= 2 * footprint
    assert robot.mine in robot.mug_names()


def test_joint_names_as_on_a_real_panda():
    robot = SimRobot(SceneConfig(seed=0))
    js = robot.joint_state()
    assert js.names == PANDA_JOINTS
    assert js.velocities is not None and js.efforts is not None
    np.testing.assert_allclose(js.positions[:7], load_robot_profile("panda").ready_pose, atol=1e-6)
    assert robot.gripper_width() == pytest.approx(0.08, abs=1e-3)


def test_seed_determines_layout_and_reset_seed_rebuilds():
    a = build_scene(SceneConfig(seed=5))
    b = build_scene(SceneConfig(seed=5))
    c = build_scene(SceneConfig(seed=6))
    assert [(m.x, m.y) for m in a.mugs] == [(m.x, m.y) for m in b.mugs]
    assert a.mine == b.mine
    assert [(m.x, m.y) for m in a.mugs] != [(m.x, m.y) for m in c.mugs]
    robot = SimRobot(SceneConfig(seed=5))
    before = robot.object_pose("mug_0").position
    robot.reset(seed=6)
    assert robot.config.seed == 6
    assert not np.allclose(robot.object_pose("mug_0").position, before)
    assert robot.time == 0.0


def test_mine_index_given_is_used():
    for i in range(3):
        assert SimRobot(SceneConfig(seed=0, num_mugs=3, mine_index=i)).mine == f"mug_{i}"


def test_procedural_textures_distinct_but_look_alike():
    apps = procedural_appearances(4, seed=3)
    ids = [a.texture_id for a in apps]
    assert len(set(ids)) == 4
    for i in range(4):
        for j in range(i + 1, 4):
            diff = np.abs(apps[i].image.astype(float) - apps[j].image.astype(float)).mean()
            assert diff > 3.0, f"textures {ids[i]} and {ids[j]} are nearly identical"
    # Same colour family: base colours close to each other.
    bases = np.array([a.base_rgb for a in apps])
    assert np.ptp(bases, axis=0).max() < 0.25
    # Deterministic.
    again = procedural_appearances(4, seed=3)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(apps, again, strict=True))


def test_mug_mesh_has_uvs_in_range_and_fits_gripper():
    geom = MugGeometry()
    mesh = mug_mesh(geom)
    assert mesh.texcoords.shape == (mesh.vertices.shape[0], 2)
    assert mesh.texcoords.min() >= 0.0 and mesh.texcoords.max() <= 1.0
    assert mesh.faces.max() < mesh.vertices.shape[0]
    assert 2 * geom.radius < 0.08 - 2 * 0.002  # graspable across the body with the pads
    assert mesh.vertices[:, 2].min() >= -1e-9 and mesh.vertices[:, 2].max() <= geom.height + geom.handle_thickness


def test_textures_from_directory(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(3):
        img = rng.integers(0, 255, (60, 120, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"cup_{k}.png"), img)
    robot = SimRobot(SceneConfig(seed=0, num_mugs=3, texture_dir=str(tmp_path)))
    gt = robot.ground_truth()
    assert [m["texture_id"] for m in gt["mugs"]] == ["file:cup_0.png", "file:cup_1.png", "file:cup_2.png"]
    with pytest.raises(ValueError, match="image"):
        SimRobot(SceneConfig(seed=0, num_mugs=4, texture_dir=str(tmp_path)))


def test_ground_truth_is_json_and_complete():
    robot = SimRobot(SceneConfig(seed=2, num_mugs=3))
    gt = json.loads(json.dumps(robot.ground_truth()))
    assert gt["mine"] == robot.mine
    assert sum(m["mine"] for m in gt["mugs"]) == 1
    assert {m["name"] for m in gt["mugs"]} == set(robot.mug_names())
    assert gt["in_gripper"] is None
    assert len(gt["tcp"]["position"]) == 3 and len(gt["tray"]["orientation_xyzw"]) == 4
    assert gt["segmentation_labels"]["robot"] == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_mugs": 1}, "num_mugs"),
        ({"num_mugs": 5}, "num_mugs"),
        ({"mine_index": 3, "num_mugs": 3}, "mine_index"),
        ({"camera_width": 0}, "camera size"),
        ({"physics_dt": 0.5}, "physics_dt"),
        ({"mug_radius": 0.05}, "mug_radius"),
        ({"texture_dir": "/no/such/dir"}, "texture_dir"),
        ({"gripper_force_n": 500.0}, "gripper_force_n"),
        ({"camera_position": (0.4, 0.0, 0.0), "camera_look_at": (0.4, 0.0, 0.0)}, "differ"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SceneConfig(**kwargs)


def test_config_fields_have_help():
    from dataclasses import fields

    for f in fields(SceneConfig):
        assert f.metadata.get("help"), f"SceneConfig.{f.name} has no help text"


@pytest.mark.parametrize("robot", ["ur5e", "so101"])
def test_a_robot_without_simulation_assets_is_refused_by_name(robot):
    with pytest.raises(ValueError, match=rf"robot '{robot}' cannot be simulated.*robots with assets: \['panda'\]"):
        SimRobot(SceneConfig(robot=robot))


def test_sim_names_come_from_the_robot_profile():
    profile = load_robot_profile("panda")
    robot = SimRobot(SceneConfig(seed=1))
    try:
        assert robot.profile is profile and robot.arm_joint_names == profile.joints
        assert robot.finger_joint_names == profile.gripper.joints
        assert robot.tcp_pose().frame_id == profile.base_frame and robot.wrench().frame_id == profile.hand_frame
        assert robot.config.initial_joint_positions == profile.ready_pose
    finally:
        robot.close()
