"""Builds the MuJoCo scene: the robot of a profile (from its URDF) on a table, a tray, look-alike
mugs, cameras, fingertip tactile pads, a wrist force/torque sensor, and ros2_control-like actuators.

The robot's names and numbers (joints, hand/TCP frames, finger links, gripper range) come from
its `RobotProfile` (`SceneConfig.robot`); its simulation-only tuning (gains, colours) from
`core/sim/robots/<name>.py`.

World frame = robot base frame (the profile's `base_frame` at the origin); the table top is z = 0.

Actuation (what `SimRobot` drives):
- each arm joint: one actuator `force = kp (q_ref - q) + kv (qd_ref - qd)`, clamped to the
  URDF effort limit (ctrl = q_ref + kv/kp · qd_ref, so one control carries both references
  and the damping stays implicit in the integrator); arm bodies are gravity compensated like
  a real arm under its controller;
- the gripper: one actuator on the opening width (tendon `finger1 + finger2`, fingers coupled
  by an equality), `force = kp (w_ref - w) - kv ẇ` clamped to the grasp force limit (N).

Geom groups: 0 robot and furniture (rendered, collide), 2 mug visual meshes (rendered, no
collision), 3 mug collision shapes (hidden).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from vla_stack.core.robot_profile import RobotProfile, load_robot_profile
from vla_stack.core.sim.config import MAX_GRIPPER_FORCE_N, SceneConfig
from vla_stack.core.sim.mug_families import family_appearances
from vla_stack.core.sim.mugs import (
    MugAppearance,
    MugGeometry,
    appearances_from_directory,
    mug_collision_capsules,
    mug_mesh,
)
from vla_stack.core.sim.robots import sim_assets

SCENE_CAMERA = "scene"
WRIST_CAMERA = "wrist"
TACTILE_PADS = ("left", "right")
FT_SITE = "ft_sensor"
TCP_SITE = "tcp"
GRIPPER_ACTUATOR = "gripper"
GRIPPER_TENDON = "gripper_width"

# Table (top at z = 0) and tray, m.
TABLE_HALF = (0.65, 0.75, 0.02)
TABLE_CENTER_X = 0.35
TABLE_LEG_HEIGHT = 0.73
TRAY_HALF = (0.12, 0.09)
TRAY_RIM = 0.025
MUG_REGION_X = (0.38, 0.62)
MUG_REGION_Y = (-0.20, 0.20)

# Fingertip pads (their geometry is the robot's: core/sim/robots/<robot>.py): contact stiffness.
PAD_SOLREF = (0.004, 1.0)  # stiffer than the default (0.02): grasp forces go through the pads

# Segmentation labels (render_segmentation); mugs get MUG_LABEL_BASE + index.
LABEL_BACKGROUND = 0
LABEL_ROBOT = 1
LABEL_TABLE = 2
LABEL_TRAY = 3
MUG_LABEL_BASE = 4


@dataclass
class MugPlacement:
    """Initial pose of one mug on the table: centre of its bottom (x, y) m and yaw rad (handle direction)."""

    name: str
    x: float
    y: float
    yaw: float
    appearance: MugAppearance


@dataclass
class Scene:
    """A compiled scene and the names/ids `SimRobot` needs.

    Args:
        model: compiled MjModel.
        config: the configuration it was built from.
        mugs: placements in mug order (names "mug_0", ...).
        mine: name of the user's own mug.
        mug_geometry: shared mug dimensions.
        tray_center: (x, y, z) of the tray's floor centre, m.
        tray_half: (x, y) half sizes of the tray floor, m.
        labels: object name -> segmentation label.
        geom_labels: (ngeom,) segmentation label of each geom.
        profile: the simulated robot's profile.
        assets: its simulation asset module (`core/sim/robots/<name>.py`: gains, colours).
    """

    model: mujoco.MjModel
    config: SceneConfig
    mugs: list[MugPlacement]
    mine: str
    mug_geometry: MugGeometry
    tray_center: np.ndarray
    tray_half: tuple[float, float]
    labels: dict[str, int] = field(default_factory=dict)
    geom_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    profile: RobotProfile | None = None
    assets: Any = None


def look_at_quat(position: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """MuJoCo quaternion (w, x, y, z) of a camera at `position` looking at `target`.

    MuJoCo cameras look along their -z axis with +y up and +x to the right.
    """
    up = np.array([0.0, 0.0, 1.0]) if up is None else up
    fwd = np.asarray(target, float) - np.asarray(position, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    if np.linalg.norm(right) < 1e-6:  # looking straight up/down: pick any right vector
        right = np.cross(fwd, np.array([1.0, 0.0, 0.0]))
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, fwd)
    mat = np.stack([right, cam_up, -fwd], axis=1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.ravel())
    return quat


def _yaw_quat(yaw: float) -> list[float]:
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def _place_mugs(rng: np.random.Generator, n: int, clearance_radius: float) -> list[tuple[float, float, float]]:
    """Rejection-sample n non-overlapping (x, y, yaw) in the mug region."""
    min_dist = 2.0 * clearance_radius + 0.015
    for _ in range(200):
        placed: list[tuple[float, float, float]] = []
        for _ in range(2000):
            x = rng.uniform(*MUG_REGION_X)
            y = rng.uniform(*MUG_REGION_Y)
            if all(np.hypot(x - px, y - py) >= min_dist for px, py, _ in placed):
                placed.append((x, y, rng.uniform(-np.pi, np.pi)))
                if len(placed) == n:
                    return placed
    raise RuntimeError(f"could not place {n} mugs without overlap in the mug region")


def _robot_spec(profile: RobotProfile) -> mujoco.MjSpec:
    """Spec of the profile's URDF (mesh paths absolute), base at the world origin.

    MuJoCo's URDF import keeps only the collision meshes (discardvisual): they double as
    visuals, ~10x fewer triangles than the visual meshes, so CPU rendering stays fast.
    """
    return mujoco.MjSpec.from_file(str(profile.urdf))


def build_scene(config: SceneConfig, profile: RobotProfile | None = None) -> Scene:
    """Build and compile the scene for `config` (deterministic for a given config).

    Args:
        config: the scene.
        profile: the robot (default: the profile `config.robot`).

    Raises:
        ValueError: the robot cannot be simulated (no simulation assets, no URDF or gripper).
    """
    profile = profile or load_robot_profile(config.robot)
    assets = sim_assets(profile)
    gripper = profile.gripper
    assert gripper is not None  # sim_assets checked it
    rng = np.random.default_rng(config.seed)
    spec = _robot_spec(profile)
    robot_body_names = {b.name for b in spec.bodies if b.name and b.name != "world"}
    spec.modelname = f"vla_stack_{profile.name}_table"
    spec.compiler.inertiafromgeom = mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_TRUE
    spec.compiler.fusestatic = False
    spec.compiler.discardvisual = False  # (the URDF parser already dropped the URDF visuals; keep our materials)
    spec.compiler.autolimits = True
    spec.option.timestep = config.physics_dt
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.visual.global_.offwidth = max(config.camera_width, config.wrist_camera_width, 640)
    spec.visual.global_.offheight = max(config.camera_height, config.wrist_camera_height, 480)
    spec.visual.map.znear = 0.01
    spec.visual.map.zfar = 50.0
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]
    spec.visual.quality.shadowsize = 2048
    # Multisampling doubles the CPU (llvmpipe) render time; real cameras have no MSAA either,
    # and without it every depth pixel is one surface (no blended depth at object edges).
    spec.visual.quality.offsamples = 4 if config.antialiasing else 0

    world = spec.worldbody

    # ---- robot: gains, gravity compensation, materials, pads, sensors ----------------------
    white = spec.add_material(name="robot_white", rgba=[0.92, 0.92, 0.92, 1], specular=0.3, shininess=0.4)
    dark = spec.add_material(name="robot_dark", rgba=[0.18, 0.18, 0.2, 1], specular=0.3, shininess=0.4)
    pad_mat = spec.add_material(name="pad", rgba=[0.1, 0.1, 0.12, 1])
    robot_bodies = [b for b in spec.bodies if b.name in robot_body_names]
    for body in robot_bodies:
        body.gravcomp = 1.0
        geoms = list(body.geoms)
        if not geoms:  # frame-only links (flange, TCP): the URDF's 0.1 kg·m² is bogus
            body.mass = 0.0
            body.fullinertia = [float("nan")] * 6  # unset, else it wins over `inertia`
            body.inertia = [0.0, 0.0, 0.0]
        for g in geoms:
            g.mass = body.mass / max(len(geoms), 1)
            g.material = (dark if body.name in assets.DARK_LINKS else white).name
            g.rgba = [0.5, 0.5, 0.5, 1]  # MuJoCo's default: the material's colour applies
            g.group = 0
            g.name = g.name or f"{body.name}_collision"
    for name in profile.joints:
        j = spec.joint(name)
        j.armature = assets.ARM_ARMATURE
    for name in gripper.joints:
        spec.joint(name).armature = assets.FINGER_ARMATURE
        # The URDF's 20 N effort limit would cap the grasp force (MuJoCo clamps actuator force
        # per joint); the gripper actuator's own force range is the limit that matters.
        spec.joint(name).actfrcrange = [-MAX_GRIPPER_FORCE_N, MAX_GRIPPER_FORCE_N]

    hand = spec.body(profile.hand_frame)
    hand.add_site(name=FT_SITE, pos=[0, 0, 0], size=[0.005, 0, 0])
    spec.body(profile.tcp_frame).add_site(name=TCP_SITE, pos=[0, 0, 0], size=[0.004, 0, 0])
    left_link, right_link = gripper.finger_links
    for side, body_name, sign in (("left", left_link, 1.0), ("right", right_link, -1.0)):
        finger = spec.body(body_name)
        # Inner face of the fingertip is y = 0 (left finger faces -y, right finger +y); the
        # pad's contact surface sits PAD_PROTRUSION (robot asset) in front of it.
        y = -sign * (assets.PAD_PROTRUSION - assets.PAD_HALF[1])
        finger.add_geom(
            name=f"{side}_pad",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=list(assets.PAD_HALF),
            pos=[0.0, y, assets.PAD_CENTER_Z],
            material=pad_mat.name,
            friction=[1.2, 0.01, 0.0002],
            condim=4,
            solref=list(PAD_SOLREF),
            priority=1,
            mass=0.002,
            group=0,
        )
        # Pad frame: x across the finger, y towards the hand (row 0 = fingertip), z into the pad.
        rot = np.stack([sign * np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), sign * np.array([0, 1.0, 0])], axis=1)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, rot.ravel())
        finger.add_site(name=f"{side}_pad", pos=[0.0, -sign * assets.PAD_PROTRUSION, assets.PAD_CENTER_Z],
                        quat=quat.tolist(), size=[0.002, 0, 0])
    spec.add_sensor(name="ft_force", type=mujoco.mjtSensor.mjSENS_FORCE, objtype=mujoco.mjtObj.mjOBJ_SITE, objname=FT_SITE)
    spec.add_sensor(name="ft_torque", type=mujoco.mjtSensor.mjSENS_TORQUE, objtype=mujoco.mjtObj.mjOBJ_SITE, objname=FT_SITE)

    for i, name in enumerate(profile.joints):
        # Effort limit from the URDF (<limit effort=...>, parsed into actfrcrange): 87 / 12 N·m.
        effort = float(spec.joint(name).actfrcrange[1]) or 87.0
        act = spec.add_actuator(name=f"{name}_actuator", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.gainprm[0] = assets.ARM_KP[i]
        act.biasprm[0:3] = [0.0, -assets.ARM_KP[i], -assets.ARM_KV[i]]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-effort, effort]

    tendon = spec.add_tendon(name=GRIPPER_TENDON)
    for fj in gripper.joints:
        tendon.wrap_joint(fj, 1.0)
    eq = spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1=gripper.joints[0], name2=gripper.joints[1])
    eq.data[0:5] = [0, 1, 0, 0, 0]
    eq.solref = [0.005, 1.0]
    grip = spec.add_actuator(name=GRIPPER_ACTUATOR, target=GRIPPER_TENDON, trntype=mujoco.mjtTrn.mjTRN_TENDON)
    grip.gaintype = mujoco.mjtGain.mjGAIN_FIXED
    grip.biastype = mujoco.mjtBias.mjBIAS_AFFINE
    grip.gainprm[0] = assets.GRIPPER_KP
    grip.biasprm[0:3] = [0.0, -assets.GRIPPER_KP, -assets.GRIPPER_KV]
    grip.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    grip.ctrlrange = [gripper.min_width, gripper.max_width]
    grip.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    grip.forcerange = [-config.gripper_force_n, config.gripper_force_n]

    # ---- environment ---------------------------------------------------------------------
    spec.add_texture(
        name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.82, 0.85, 0.88], rgb2=[0.55, 0.58, 0.62], width=256, height=256,
    )
    spec.add_material(name="floor", rgba=[0.4, 0.4, 0.42, 1])  # untextured: a textured floor costs ~30 % render time
    spec.add_material(name="table", rgba=[0.72, 0.62, 0.5, 1], specular=0.1)
    leg_mat = spec.add_material(name="table_leg", rgba=[0.3, 0.3, 0.32, 1])
    tray_mat = spec.add_material(name="tray", rgba=[0.25, 0.35, 0.3, 1], specular=0.1)

    floor_z = -TABLE_LEG_HEIGHT - 2 * TABLE_HALF[2]
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.05], pos=[0, 0, floor_z],
                   material="floor")
    world.add_light(name="key", pos=[0.6, -0.4, 2.0], dir=[-0.1, 0.2, -1.0], diffuse=[0.55, 0.55, 0.55],
                    castshadow=config.shadows)
    table = world.add_body(name="table", pos=[TABLE_CENTER_X, 0, -TABLE_HALF[2]])
    table.add_geom(name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(TABLE_HALF), material="table",
                   friction=[0.8, 0.005, 0.0001])
    for sx in (-1, 1):
        for sy in (-1, 1):
            table.add_geom(
                name=f"table_leg_{sx}_{sy}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.03, 0.03, TABLE_LEG_HEIGHT / 2],
                pos=[sx * (TABLE_HALF[0] - 0.05), sy * (TABLE_HALF[1] - 0.05), -TABLE_HALF[2] - TABLE_LEG_HEIGHT / 2],
                material=leg_mat.name,
            )

    side = 1.0 if rng.uniform() < 0.5 else -1.0
    tray_center = np.array([rng.uniform(0.42, 0.52), side * 0.36, 0.0])
    tray = world.add_body(name="tray", pos=tray_center.tolist())
    t = 0.004
    tray.add_geom(name="tray_floor", type=mujoco.mjtGeom.mjGEOM_BOX, size=[TRAY_HALF[0], TRAY_HALF[1], t],
                  pos=[0, 0, t], material=tray_mat.name)
    for k, (sx, sy, hx, hy) in enumerate(
        ((1, 0, t, TRAY_HALF[1]), (-1, 0, t, TRAY_HALF[1]), (0, 1, TRAY_HALF[0], t), (0, -1, TRAY_HALF[0], t))
    ):
        tray.add_geom(
            name=f"tray_rim_{k}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[hx, hy, TRAY_RIM / 2],
            pos=[sx * (TRAY_HALF[0] - t), sy * (TRAY_HALF[1] - t), TRAY_RIM / 2], material=tray_mat.name,
        )
    tray_center = tray_center + np.array([0.0, 0.0, 2 * t])

    # ---- mugs ------------------------------------------------------------------------------
    geom = MugGeometry(radius=config.mug_radius, height=config.mug_height, mass=config.mug_mass)
    if config.texture_dir:
        appearances = appearances_from_directory(config.texture_dir, config.num_mugs)
    else:
        appearances = family_appearances(config.family, config.num_mugs, config.seed)
    mine_index = config.mine_index if config.mine_index is not None else int(rng.integers(config.num_mugs))
    poses = _place_mugs(rng, config.num_mugs, geom.footprint_radius)
    mesh = mug_mesh(geom)
    mugs: list[MugPlacement] = []
    capsules = mug_collision_capsules(geom)
    for i, ((x, y, yaw), app) in enumerate(zip(poses, appearances, strict=True)):
        name = f"mug_{i}"
        tex = spec.add_texture(
            name=f"{name}_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, width=app.image.shape[1],
            height=app.image.shape[0], nchannel=3,
        )
        tex.data = np.ascontiguousarray(app.image).tobytes()
        mat = spec.add_material(name=f"{name}_mat", specular=0.35, shininess=0.6)
        mat.textures[int(mujoco.mjtTextureRole.mjTEXROLE_RGB)] = tex.name
        m = spec.add_mesh(name=f"{name}_mesh")
        m.uservert = mesh.vertices.ravel().tolist()
        m.userface = mesh.faces.ravel().tolist()
        m.usertexcoord = mesh.texcoords.ravel().tolist()
        m.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
        body = world.add_body(name=name, pos=[x, y, 0.0005], quat=_yaw_quat(yaw))
        body.add_freejoint(name=f"{name}_joint")
        body.add_geom(name=f"{name}_visual", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=m.name, material=mat.name,
                      contype=0, conaffinity=0, group=2, mass=0.0)
        body.add_geom(
            name=f"{name}_body", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[geom.radius, geom.height / 2, 0],
            pos=[0, 0, geom.height / 2], group=3, mass=0.85 * geom.mass, friction=[1.0, 0.01, 0.0002], condim=4,
            rgba=[*app.base_rgb, 1.0],
        )
        for k, (a, b) in enumerate(capsules):
            body.add_geom(
                name=f"{name}_handle_{k}", type=mujoco.mjtGeom.mjGEOM_CAPSULE, fromto=[*a.tolist(), *b.tolist()],
                size=[geom.handle_thickness, 0, 0], group=3, mass=0.15 * geom.mass / len(capsules),
                friction=[1.0, 0.01, 0.0002], condim=4,
            )
        mugs.append(MugPlacement(name, float(x), float(y), float(yaw), app))

    # ---- cameras -------------------------------------------------------------------------
    cam_pos = np.array(config.camera_position)
    world.add_camera(name=SCENE_CAMERA, pos=cam_pos.tolist(),
                     quat=look_at_quat(cam_pos, np.array(config.camera_look_at)).tolist(), fovy=config.camera_fovy_deg)
    if config.wrist_camera:
        # On the hand, in front of the fingers' plane, looking along the hand z axis (towards
        # the fingertips) and tilted slightly so they are in view.
        tilt = np.deg2rad(12.0)
        fwd = np.array([-np.sin(tilt), 0.0, np.cos(tilt)])  # in hand frame
        right = np.array([0.0, -1.0, 0.0])
        up = np.cross(right, fwd)
        mat = np.stack([right, up, -fwd], axis=1)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, mat.ravel())
        hand.add_camera(name=WRIST_CAMERA, pos=[0.065, 0.0, 0.035], quat=quat.tolist(), fovy=config.wrist_camera_fovy_deg)

    model = spec.compile()

    # ---- segmentation labels -----------------------------------------------------------------
    labels = {"background": LABEL_BACKGROUND, "robot": LABEL_ROBOT, "table": LABEL_TABLE, "tray": LABEL_TRAY}
    for i, mug in enumerate(mugs):
        labels[mug.name] = MUG_LABEL_BASE + i
    geom_labels = np.zeros(model.ngeom, np.int32)
    for gid in range(model.ngeom):
        body = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, int(model.geom_bodyid[gid])) or ""
        if body in robot_body_names:
            geom_labels[gid] = LABEL_ROBOT
        elif body == "table":
            geom_labels[gid] = LABEL_TABLE
        elif body == "tray":
            geom_labels[gid] = LABEL_TRAY
        elif body in labels:
            geom_labels[gid] = labels[body]
    return Scene(
        profile=profile,
        assets=assets,
        model=model,
        config=config,
        mugs=mugs,
        mine=mugs[mine_index].name,
        mug_geometry=geom,
        tray_center=tray_center,
        tray_half=TRAY_HALF,
        labels=labels,
        geom_labels=geom_labels,
    )
