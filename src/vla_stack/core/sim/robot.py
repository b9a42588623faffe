"""`SimRobot`: a MuJoCo robot arm (the robot profile `SceneConfig.robot`) on a table with look-alike mugs, behaving towards its user
like a real arm under ros2_control (joint_trajectory_controller, forward position controller,
gripper), with RGB-D cameras, fingertip tactile pads and a wrist force/torque sensor.

ROS-free: `vla_stack.ros.sim_node` wraps it. Thread-safe: physics, commands and state reads
take an internal lock; `render*` copies the state under the lock and renders outside it
(each thread gets its own OpenGL context and scratch `MjData`), so rendering never disturbs
or stalls the physics for long.

Frames: everything is in the robot base frame (the profile's `base_frame`, = MuJoCo world) unless stated.
Poses are `Pose` (position m, quaternion x, y, z, w). Times are sim seconds (`time`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import mujoco
import numpy as np

from vla_stack.core.robot_profile import RobotProfile, load_robot_profile
from vla_stack.core.sim import scene as scene_mod
from vla_stack.core.sim.config import MAX_GRIPPER_FORCE_N, SceneConfig
from vla_stack.core.sim.reference_views import render_mug_views, render_mug_views_with_masks
from vla_stack.core.sim.rendering import CameraRenderer
from vla_stack.core.sim.robots import sim_assets
from vla_stack.core.sim.tactile import TactilePadSpec, read_pad
from vla_stack.core.sim.trajectory import JointTrajectoryFollower
from vla_stack.core.types import ActionChunk, CameraIntrinsics, JointState, Pose, TactileReading, Wrench
from vla_stack.core.validation import InvalidCommand, check_finite, reorder_columns, validate_chunk

CAMERA_FRAMES = {
    scene_mod.SCENE_CAMERA: "camera_color_optical_frame",
    scene_mod.WRIST_CAMERA: "wrist_camera_color_optical_frame",
}
"""Optical frame id of each camera (z forward, x right, y down), as in CameraInfo headers."""

_SETTLE_STEPS = 100  # physics steps at reset so mugs rest on the table before time 0


def _pose(pos: np.ndarray, mat: np.ndarray, frame_id: str, stamp: float = 0.0) -> Pose:
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat, dtype=np.float64).ravel())
    return Pose(np.array(pos, dtype=np.float64), np.array([quat[1], quat[2], quat[3], quat[0]]), stamp, frame_id)


class SimRobot:
    """The simulated robot + scene. See the module docstring for frames and threading.

    Args:
        config: scene configuration (default `SceneConfig()`); `config.robot` names the robot
            profile, which gives every joint and frame name.

    Attributes:
        profile: the robot profile.
        arm_joint_names, finger_joint_names: the profile's arm joints and gripper joints.
        joint_names: names in `joint_state()`: the arm joints then the finger joints.
    """

    def __init__(self, config: SceneConfig | None = None) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        self._generation = 0
        self._build(config or SceneConfig())
        self.reset()

    # ---- construction / reset ---------------------------------------------------------------
    def _build(self, config: SceneConfig) -> None:
        profile: RobotProfile = load_robot_profile(config.robot)
        sim_assets(profile)  # a robot that cannot be simulated fails here, with the reason
        config = config.for_profile(profile)
        self.config = config
        self.profile = profile
        self.scene = scene_mod.build_scene(config, profile)
        gripper = profile.gripper
        assert gripper is not None  # build_scene checked it
        self.arm_joint_names: tuple[str, ...] = profile.joints
        self.finger_joint_names: tuple[str, ...] = gripper.joints
        self.joint_names: tuple[str, ...] = profile.joints + gripper.joints
        self._n_arm = len(profile.joints)
        self._max_opening = gripper.max_width
        self._base_frame = profile.base_frame
        self._hand_frame = profile.hand_frame
        m = self.model = self.scene.model
        self.data = mujoco.MjData(m)
        self._generation += 1
        jid = [m.joint(n).id for n in self.joint_names]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jid])
        self._vadr = np.array([m.jnt_dofadr[j] for j in jid])
        self._arm_act = np.array([m.actuator(f"{n}_actuator").id for n in self.arm_joint_names])
        self._grip_act = m.actuator(scene_mod.GRIPPER_ACTUATOR).id
        self._kv_over_kp = self.scene.assets.ARM_KV / self.scene.assets.ARM_KP
        self._mug_qadr = {mug.name: m.joint(f"{mug.name}_joint").qposadr[0] for mug in self.scene.mugs}
        self._mug_body = {mug.name: m.body(mug.name).id for mug in self.scene.mugs}
        self._mug_of_body = {v: k for k, v in self._mug_body.items()}
        self._tcp_site = m.site(scene_mod.TCP_SITE).id
        self._ft_force_adr = m.sensor_adr[m.sensor("ft_force").id]
        self._ft_torque_adr = m.sensor_adr[m.sensor("ft_torque").id]
        hand = m.body(self._hand_frame).id
        self._hand_body = hand
        # bodies whose contacts load the wrist sensor: the hand and everything below it
        self._hand_subtree = {b for b in range(m.nbody) if self._is_descendant(m, b, hand)}
        self._cameras = {m.camera(i).name: i for i in range(m.ncam)}
        self._camera_size = {scene_mod.SCENE_CAMERA: (config.camera_width, config.camera_height)}
        if config.wrist_camera:
            self._camera_size[scene_mod.WRIST_CAMERA] = (config.wrist_camera_width, config.wrist_camera_height)
        self._pads = {}
        left_link, right_link = gripper.finger_links
        for side, finger in (("left", left_link), ("right", right_link)):
            gid = m.geom(f"{side}_pad").id
            self._pads[side] = TactilePadSpec(
                name=side, geom_id=gid, site_id=m.site(f"{side}_pad").id,
                half_width=float(m.geom_size[gid][0]), half_length=float(m.geom_size[gid][2]),
                rows=config.tactile_rows, cols=config.tactile_cols, sigma=config.tactile_sigma_m,
                frame_id=f"{finger}_pad",
            )
        self._left_bodies = {m.body(left_link).id}
        self._right_bodies = {m.body(right_link).id}
        self._follower = JointTrajectoryFollower(self.arm_joint_names, config.initial_joint_positions)

    def reset(self, seed: int | None = None, config: SceneConfig | None = None, start_time: float = 0.0) -> None:
        """Put the robot at its initial configuration and the mugs at their seeded places.

        Args:
            seed: a new scene seed (rebuilds the scene: new mug textures, placement, "mine");
                None keeps the current scene.
            config: a whole new scene configuration (rebuilds; `seed`, if given, overrides its seed).
            start_time: sim time after the reset, s (a running simulator node keeps its clock
                monotonic across episodes by passing the current time).
        """
        with self._lock:
            if config is not None:
                self._build(replace(config, seed=int(seed)) if seed is not None else config)
            elif seed is not None and seed != self.config.seed:
                self._build(replace(self.config, seed=int(seed)))
            m, d = self.model, self.data
            mujoco.mj_resetData(m, d)
            q0 = np.array(self.config.initial_joint_positions)
            d.qpos[self._qadr[: self._n_arm]] = q0
            half = self.config.initial_gripper_width / 2.0
            d.qpos[self._qadr[self._n_arm :]] = half
            for mug in self.scene.mugs:
                a = self._mug_qadr[mug.name]
                d.qpos[a : a + 3] = [mug.x, mug.y, 0.0005]
                d.qpos[a + 3 : a + 7] = [np.cos(mug.yaw / 2), 0.0, 0.0, np.sin(mug.yaw / 2)]
            self._follower.hold(q0, 0.0)
            self._gripper_target = float(self.config.initial_gripper_width)
            m.actuator_forcerange[self._grip_act] = [-self.config.gripper_force_n, self.config.gripper_force_n]
            mujoco.mj_forward(m, d)
            for _ in range(_SETTLE_STEPS):
                self._apply_controls()
                mujoco.mj_step(m, d)
            d.qvel[:] = 0.0
            d.time = float(start_time)
            self._follower.hold(q0, float(start_time))
            mujoco.mj_forward(m, d)

    # ---- time ----------------------------------------------------------------------------------
    @property
    def physics_dt(self) -> float:
        """Physics time step, s."""
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        """Simulation time since the last reset, s."""
        return float(self.data.time)

    def _apply_controls(self) -> None:
        p, v = self._follower.sample(self.data.time)
        self.data.ctrl[self._arm_act] = p + self._kv_over_kp * v
        self.data.ctrl[self._grip_act] = self._gripper_target

    def step(self, n: int = 1) -> None:
        """Advance the physics by `n` steps of `physics_dt` (controllers update every step)."""
        with self._lock:
            m, d = self.model, self.data
            for _ in range(int(n)):
                self._apply_controls()
                mujoco.mj_step(m, d)

    def advance(self, seconds: float) -> None:
        """Advance the physics by `seconds` (rounded to whole steps)."""
        self.step(max(0, int(round(seconds / self.physics_dt))))

    # ---- state -------------------------------------------------------------------------------
    def joint_state(self) -> JointState:
        """Arm + finger joints: positions (rad, m), velocities (rad/s, m/s), efforts (N·m, N).

        Arm efforts are the joint torques the motors apply (control + gravity compensation),
        like a real arm's measured torques; finger efforts are the gripper actuator force.
        """
        with self._lock:
            d = self.data
            pos = d.qpos[self._qadr].copy()
            vel = d.qvel[self._vadr].copy()
            eff = d.qfrc_actuator[self._vadr] + d.qfrc_gravcomp[self._vadr]
            return JointState(self.joint_names, pos, vel, eff, stamp=float(d.time))

    def gripper_width(self) -> float:
        """Current opening between the fingers (sum of both finger joints), m."""
        with self._lock:
            return float(self.data.qpos[self._qadr[self._n_arm :]].sum())

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Current arm reference (positions (7,) rad, velocities (7,) rad/s) of the trajectory controller."""
        with self._lock:
            return self._follower.sample(self.data.time)

    def trajectory_active(self) -> bool:
        """True while a commanded trajectory is still running (the reference is moving)."""
        with self._lock:
            return self._follower.active(self.data.time)

    def tcp_pose(self) -> Pose:
        """Pose of the TCP (the profile's `tcp_frame`, between the fingertips) in the base frame."""
        with self._lock:
            d = self.data
            return _pose(d.site_xpos[self._tcp_site], d.site_xmat[self._tcp_site], self._base_frame, stamp=float(d.time))

    # ---- commands (ros2_control semantics) -------------------------------------------------------
    def command_trajectory_fields(
        self,
        names: Sequence[str],
        times: Sequence[float],
        positions: Sequence[Sequence[float]],
        velocities: Sequence[Sequence[float]] | None = None,
        stamp: float = 0.0,
        receipt_time: float | None = None,
    ) -> int:
        """joint_trajectory_controller command from raw message fields (validated here).

        Args:
            names: joint names of the columns (any order; a subset of the arm joints).
            times: time_from_start of each point, s, relative to `stamp`.
            positions: one row of positions (rad) per point.
            velocities: optional rows of velocities (rad/s); empty rows = positions only.
            stamp: header stamp, s (0 = start at receipt).
            receipt_time: sim time of receipt (default: now).

        Returns:
            Number of points that will be followed (points already in the past are skipped);
            0 for an empty trajectory, which stops the arm where it is (as JTC does).

        Raises:
            InvalidCommand: with a `code` (see `vla_stack.core.validation`, plus "stale" when the
                whole trajectory lies in the past and "bad_stamp"). The previous trajectory
                continues unchanged.
        """
        if not np.isfinite(stamp) or stamp < 0:
            raise InvalidCommand("bad_stamp", f"header stamp must be finite and >= 0, got {stamp}")
        if len(times) == 0 and len(positions) == 0 and len(names) > 0:
            # joint_trajectory_controller: an empty trajectory cancels the current one and holds
            # the current position (names are still checked).
            reorder_columns(names, np.zeros((0, len(names))), self.arm_joint_names, allow_subset=True)
            self.stop_trajectory()
            return 0
        chunk = validate_chunk(names, times, positions, self.arm_joint_names, allow_subset=True, velocities=velocities)
        chunk = ActionChunk(chunk.joint_names, chunk.times, chunk.positions, stamp=float(stamp),
                            velocities=chunk.velocities)
        with self._lock:
            now = self.time if receipt_time is None else float(receipt_time)
            return self._follower.set_trajectory(chunk, now)

    def command_trajectory(self, chunk: ActionChunk, receipt_time: float | None = None) -> int:
        """joint_trajectory_controller command (see `command_trajectory_fields` for the semantics).

        A new trajectory replaces the remaining one; `chunk.times` are relative to
        `chunk.stamp`, or to the receipt time when the stamp is 0; joints are matched by name
        (subset allowed: the others hold); points in the past are skipped; the reference goes
        from the current commanded state to the first point, linearly (positions only) or by
        cubic Hermite segments (with velocities), and holds the last point. An empty trajectory
        stops the arm where it is. Positions beyond the joint limits are not rejected (JTC does
        not check them either): the simulated joint stops at its limit. Path/goal tolerances
        (JTC aborts) are not simulated.
        """
        return self.command_trajectory_fields(
            chunk.joint_names, chunk.times, chunk.positions, chunk.velocities, chunk.stamp, receipt_time
        )

    def stop_trajectory(self) -> None:
        """Cancel any trajectory and hold the arm's current (measured) position."""
        with self._lock:
            self._follower.hold(self.data.qpos[self._qadr[: self._n_arm]].copy(), self.time)

    def command_positions(self, positions: Sequence[float], names: Sequence[str] | None = None) -> None:
        """Forward position controller: hold `positions` (rad) from now on, replacing any trajectory.

        Args:
            positions: one value per arm joint.
            names: joint order of `positions` (default `arm_joint_names`); must name all 7.

        Raises:
            InvalidCommand ("length_mismatch", "nan", "unknown_joint", "duplicate_joint",
            "missing_joint"); nothing changes then.
        """
        values = np.asarray(positions, dtype=np.float64).reshape(-1)
        order = list(names) if names is not None else list(self.arm_joint_names)
        if values.shape[0] != len(order):
            raise InvalidCommand(
                "length_mismatch", f"position command has {values.shape[0]} values for {len(order)} joints"
            )
        check_finite("position command", values)
        _, values = reorder_columns(order, values, self.arm_joint_names, allow_subset=False)
        with self._lock:
            self._follower.hold(values, self.time)

    def command_gripper(self, width_m: float, max_force_N: float | None = None) -> None:
        """Move the fingers to an opening of `width_m` (0..0.08 m), pushing with at most `max_force_N`.

        Closing on an object, the fingers stop at the object and squeeze it with the force
        limit (default `config.gripper_force_n`), like a parallel gripper's grasp.

        Raises:
            InvalidCommand ("nan", "out_of_range"); the previous command stays.
        """
        check_finite("gripper command", np.array([width_m] + ([max_force_N] if max_force_N is not None else [])))
        if not -1e-6 <= width_m <= self._max_opening + 1e-6:
            raise InvalidCommand(
                "out_of_range", f"gripper width {width_m:.4f} m outside 0..{self._max_opening} m"
            )
        force = self.config.gripper_force_n if max_force_N is None else float(max_force_N)
        if not 0.0 < force <= MAX_GRIPPER_FORCE_N:
            raise InvalidCommand("out_of_range", f"gripper force {force:.1f} N outside (0, {MAX_GRIPPER_FORCE_N}] N")
        with self._lock:
            self._gripper_target = float(np.clip(width_m, 0.0, self._max_opening))
            self.model.actuator_forcerange[self._grip_act] = [-force, force]

    # ---- sensors -------------------------------------------------------------------------------
    def tactile_pads(self) -> tuple[str, ...]:
        """Names of the tactile pads ("left", "right" fingertip)."""
        return tuple(self._pads)

    def tactile(self, pad: str) -> TactileReading:
        """Taxel pressure (rows, cols) kPa and summed force (N, pad frame) of one fingertip pad."""
        if pad not in self._pads:
            raise KeyError(f"unknown tactile pad '{pad}' (pads: {list(self._pads)})")
        with self._lock:
            return read_pad(self.model, self.data, self._pads[pad])

    @staticmethod
    def _is_descendant(m: mujoco.MjModel, body: int, ancestor: int) -> bool:
        while body > 0:
            if body == ancestor:
                return True
            body = int(m.body_parentid[body])
        return ancestor == 0

    def external_wrench(self) -> Wrench:
        """Contact wrench the environment applies to the hand and fingers, in the hand frame (the profile's `hand_frame`).

        What a gravity- and inertia-compensated wrist F/T driver reports (a torque-sensing arm driver's
        external wrench estimate, or a raw sensor after payload compensation): zero in free
        motion, about the object's weight while holding it, large when pushing on something.
        Sum of the MuJoCo contact forces between hand-subtree bodies and everything else;
        force N, torque N·m about the hand origin.
        """
        with self._lock:
            m, d = self.model, self.data
            f_world, t_world = np.zeros(3), np.zeros(3)
            origin = d.xpos[self._hand_body]
            c6 = np.zeros(6)
            for i in range(d.ncon):
                c = d.contact[i]
                b1, b2 = int(m.geom_bodyid[c.geom1]), int(m.geom_bodyid[c.geom2])
                in1, in2 = b1 in self._hand_subtree, b2 in self._hand_subtree
                if in1 == in2:
                    continue
                mujoco.mj_contactForce(m, d, i, c6)
                frame = np.asarray(c.frame).reshape(3, 3)  # rows: normal (geom1 -> geom2), tangents
                f_on_2 = frame.T @ c6[:3]  # force geom1 exerts on geom2, world axes
                f = f_on_2 if in2 else -f_on_2
                f_world += f
                t_world += np.cross(np.asarray(c.pos) - origin, f)
            rot = d.xmat[self._hand_body].reshape(3, 3)
            return Wrench(rot.T @ f_world, rot.T @ t_world, stamp=float(d.time), frame_id=self._hand_frame)

    def wrench(self) -> Wrench:
        """Wrist force/torque sensor between flange and hand, in the hand frame (the profile's `hand_frame`).

        The load the hand (with fingers and whatever they hold or touch) puts on the arm: with
        the gripper pointing down and nothing touched, force ≈ (0, 0, +m·g) with m ≈ 1.0 kg
        (hand + fingers). Force N, torque N·m about the hand origin.
        """
        with self._lock:
            d = self.data
            f = -d.sensordata[self._ft_force_adr : self._ft_force_adr + 3]
            t = -d.sensordata[self._ft_torque_adr : self._ft_torque_adr + 3]
            return Wrench(f.copy(), t.copy(), stamp=float(d.time), frame_id=self._hand_frame)

    # ---- cameras ---------------------------------------------------------------------------------
    def camera_names(self) -> tuple[str, ...]:
        """Cameras that can be rendered ("scene", plus "wrist" when configured)."""
        return tuple(self._camera_size)

    def _camera_id(self, cam: str) -> int:
        if cam not in self._camera_size:
            raise KeyError(f"unknown camera '{cam}' (cameras: {list(self._camera_size)})")
        return self._cameras[cam]

    def intrinsics(self, cam: str = scene_mod.SCENE_CAMERA) -> CameraIntrinsics:
        """Pinhole intrinsics of `cam` matching `render` (no distortion)."""
        cid = self._camera_id(cam)
        w, h = self._camera_size[cam]
        return CameraIntrinsics.from_fovy(w, h, float(self.model.cam_fovy[cid]), frame_id=CAMERA_FRAMES[cam])

    def camera_pose(self, cam: str = scene_mod.SCENE_CAMERA) -> Pose:
        """Pose of `cam`'s optical frame (z forward, x right, y down) in the base frame."""
        cid = self._camera_id(cam)
        with self._lock:
            d = self.data
            mat = d.cam_xmat[cid].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])  # MuJoCo camera: -z forward, y up
            pose = _pose(d.cam_xpos[cid], mat, self._base_frame, stamp=float(d.time))
        return pose

    def _thread_resources(self, cam: str) -> tuple[CameraRenderer, mujoco.MjData]:
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            for r in getattr(local, "renderers", {}).values():
                r.close()
            local.renderers = {}
            local.data = mujoco.MjData(self.model)
            local.generation = self._generation
        size = self._camera_size[cam]
        if size not in local.renderers:
            local.renderers[size] = CameraRenderer(
                self.model, size[0], size[1], shadows=self.config.shadows, depth_max=self.config.depth_max_m
            )
        return local.renderers[size], local.data

    def _scratch_state(self, cam: str) -> tuple[CameraRenderer, mujoco.MjData, float]:
        """Renderer and a scratch MjData holding a copy of the current positions (kinematics done)."""
        with self._lock:
            renderer, scratch = self._thread_resources(cam)
            scratch.qpos[:] = self.data.qpos
            scratch.time = self.data.time
            t = float(self.data.time)
        mujoco.mj_kinematics(self.model, scratch)
        mujoco.mj_camlight(self.model, scratch)
        return renderer, scratch, t

    def render(self, cam: str = scene_mod.SCENE_CAMERA, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """RGB (H, W, 3) uint8 and depth (H, W) float32 in m along the optical axis (0 = no return).

        Renders a copy of the current state in the calling thread (own GL context per thread);
        the physics is not touched. Use `render_stamped` to also get the sim time of the image.
        """
        rgb, dep, _ = self.render_stamped(cam, depth)
        return rgb, dep

    def render_stamped(self, cam: str = scene_mod.SCENE_CAMERA, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None, float]:
        """Like `render`, plus the sim time (s) of the state that was rendered."""
        cid = self._camera_id(cam)
        renderer, scratch, t = self._scratch_state(cam)
        rgb, dep = renderer.render(scratch, cid, depth=depth)
        return rgb, dep, t

    def render_segmentation(self, cam: str = scene_mod.SCENE_CAMERA) -> np.ndarray:
        """(H, W) int32 object label per pixel (see `segmentation_labels()`; mugs are 4, 5, ...)."""
        cid = self._camera_id(cam)
        renderer, scratch, _ = self._scratch_state(cam)
        return renderer.render_segmentation(scratch, cid, self.scene.geom_labels)

    def segmentation_labels(self) -> dict[str, int]:
        """Object name -> label in `render_segmentation` ("background" 0, "robot", "table", "tray", mugs)."""
        return dict(self.scene.labels)

    def close(self) -> None:
        """Free the calling thread's renderers (other threads' are freed when they exit)."""
        for r in getattr(self._local, "renderers", {}).values():
            r.close()
        self._local.renderers = {}

    # ---- objects / ground truth ----------------------------------------------------------------------
    def mug_names(self) -> tuple[str, ...]:
        """Mug names ("mug_0", ...)."""
        return tuple(m.name for m in self.scene.mugs)

    @property
    def mine(self) -> str:
        """Name of the user's own mug."""
        return self.scene.mine

    def object_pose(self, name: str) -> Pose:
        """Pose of a mug (centre of its bottom, z up, handle along +x), the tray (floor centre) or the table."""
        with self._lock:
            d = self.data
            if name in self._mug_body:
                b = self._mug_body[name]
                return _pose(d.xpos[b], d.xmat[b], self._base_frame, stamp=float(d.time))
            if name == "tray":
                b = self.model.body("tray").id
                return _pose(self.scene.tray_center, d.xmat[b], self._base_frame, stamp=float(d.time))
            if name == "table":
                return _pose(np.zeros(3), np.eye(3), self._base_frame, stamp=float(d.time))
        raise KeyError(f"unknown object '{name}' (objects: {list(self.mug_names()) + ['tray', 'table']})")

    def object_in_gripper(self) -> str | None:
        """The mug touched by both fingers (held in the gripper), or None."""
        with self._lock:
            d, m = self.data, self.model
            left: set[str] = set()
            right: set[str] = set()
            for i in range(d.ncon):
                c = d.contact[i]
                b1, b2 = int(m.geom_bodyid[c.geom1]), int(m.geom_bodyid[c.geom2])
                for finger_body, other in ((b1, b2), (b2, b1)):
                    mug = self._mug_of_body.get(other)
                    if mug is None:
                        continue
                    if finger_body in self._left_bodies:
                        left.add(mug)
                    elif finger_body in self._right_bodies:
                        right.add(mug)
            both = sorted(left & right)
            return both[0] if both else None

    def in_tray(self, name: str) -> bool:
        """True if the mug's bottom centre lies over the tray floor and it rests low (in the tray)."""
        p = self.object_pose(name).position
        c, (hx, hy) = self.scene.tray_center, self.scene.tray_half
        return bool(abs(p[0] - c[0]) < hx and abs(p[1] - c[1]) < hy and p[2] < c[2] + 0.02)

    def ground_truth(self) -> dict:
        """Evaluation-only truth (JSON-serialisable), all in the robot base frame.

        Keys: time (s), seed, frame_id, mine (name), mugs (list of: name, texture_id, mine,
        segmentation_label, position (bottom centre, m), orientation_xyzw, yaw (handle
        direction about z, rad), upright, in_gripper, in_tray), mug_geometry (radius, height,
        handle_reach, mass, grasp_depth: how far below the rim a top-down grasp holds the body),
        tray (position of the floor centre, orientation_xyzw, half_size (x, y) m), tcp (pose),
        gripper_width (m), in_gripper / grasped (mug held by both fingers or None),
        segmentation_labels. Never feed this to the stack: it is what the stack must find out.
        """
        with self._lock:
            held = self.object_in_gripper()
            labels = self.scene.labels

            def pose_dict(p: Pose) -> dict:
                return {"position": [float(v) for v in p.position], "orientation_xyzw": [float(v) for v in p.orientation]}

            mugs = []
            for mug in self.scene.mugs:
                pose = self.object_pose(mug.name)
                x, y, z, w = pose.orientation
                rot = np.zeros(9)
                mujoco.mju_quat2Mat(rot, np.array([w, x, y, z]))
                rot = rot.reshape(3, 3)
                entry = {"name": mug.name, "texture_id": mug.appearance.texture_id, "mine": mug.name == self.mine,
                         "segmentation_label": labels[mug.name], "in_gripper": mug.name == held,
                         "in_tray": self.in_tray(mug.name), "yaw": float(np.arctan2(rot[1, 0], rot[0, 0])),
                         "upright": bool(rot[2, 2] > np.cos(np.deg2rad(20.0)))}
                entry.update(pose_dict(pose))
                mugs.append(entry)
            tray = pose_dict(self.object_pose("tray"))
            tray["half_size"] = [float(v) for v in self.scene.tray_half]
            g = self.scene.mug_geometry
            return {
                "time": self.time,
                "seed": int(self.config.seed),
                "frame_id": self._base_frame,
                "mine": self.mine,
                "mugs": mugs,
                "mug_geometry": {"radius": g.radius, "height": g.height, "handle_reach": g.handle_reach,
                                 "mass": g.mass, "grasp_depth": 0.025},
                "tray": tray,
                "tcp": pose_dict(self.tcp_pose()),
                "gripper_width": self.gripper_width(),
                "in_gripper": held,
                "grasped": held,
                "segmentation_labels": dict(labels),
            }

    def render_reference_views(self, mug: str, n: int = 5, size: int = 224) -> list[np.ndarray]:
        """`n` RGB images (size x size uint8) of `mug` alone from several viewpoints.

        These are the "personal object" references a user would provide for their own mug.
        """
        for placement in self.scene.mugs:
            if placement.name == mug:
                return render_mug_views(self.scene.mug_geometry, placement.appearance, n, size,
                                        seed=self.config.seed)
        raise KeyError(f"unknown mug '{mug}' (mugs: {list(self.mug_names())})")

    def render_reference_views_with_masks(
        self, mug: str, n: int = 5, size: int = 224, elevations_deg: Sequence[float] | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """`n` reference renders of `mug` alone (as `render_reference_views`) and their exact masks.

        Args:
            mug: mug name.
            n: number of views (1..64).
            size: image side, px.
            elevations_deg: camera elevations above the table the views cycle through, deg
                (None = alternate 15 and 40 deg, as `render_reference_views`).

        Returns:
            (views, masks): RGB (size x size uint8) images and (size x size) bool object masks.
        """
        for placement in self.scene.mugs:
            if placement.name == mug:
                return render_mug_views_with_masks(self.scene.mug_geometry, placement.appearance, n, size,
                                                   seed=self.config.seed, elevations_deg=elevations_deg)
        raise KeyError(f"unknown mug '{mug}' (mugs: {list(self.mug_names())})")

    PARKING_XY = (4.0, 4.0)
    """Where `remove_object` parks a mug (base frame x, y, m): on the floor, behind the scene camera."""

    def move_object(self, name: str, position_xyz: Sequence[float], yaw: float | None = None) -> None:
        """Teleport mug `name` so its bottom centre is at `position_xyz` (base frame, m), upright,
        handle direction `yaw` (rad about z; None keeps the current yaw). Velocities are zeroed;
        the state is re-evaluated (renders and `object_pose` see it at once). No physics step is
        taken: a mug placed in the air falls on the next `step`.

        Raises:
            KeyError: unknown mug. ValueError: non-finite or wrong-length position / yaw.
        """
        if name not in self._mug_qadr:
            raise KeyError(f"unknown object '{name}' (movable: {list(self.mug_names())})")
        pos = np.asarray(position_xyz, dtype=float)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise ValueError(f"position_xyz must be 3 finite numbers (m), got {position_xyz!r}")
        if yaw is not None and not np.isfinite(yaw):
            raise ValueError(f"yaw must be finite (rad), got {yaw!r}")
        with self._lock:
            m, d = self.model, self.data
            a = self._mug_qadr[name]
            if yaw is None:
                w, x, y, z = d.qpos[a + 3 : a + 7]
                yaw = float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))
            d.qpos[a : a + 3] = pos
            d.qpos[a + 3 : a + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
            dof = m.jnt_dofadr[m.joint(f"{name}_joint").id]
            d.qvel[dof : dof + 6] = 0.0
            mujoco.mj_forward(m, d)

    def remove_object(self, name: str) -> None:
        """Park mug `name` out of the cameras' view: standing on the floor at `PARKING_XY`, behind
        the scene camera (it stays put when the physics runs); the other objects do not move.
        Bring it back with `move_object` or `reset`. KeyError for an unknown mug."""
        if name not in self._mug_qadr:
            raise KeyError(f"unknown object '{name}' (movable: {list(self.mug_names())})")
        floor_z = -scene_mod.TABLE_LEG_HEIGHT - 2 * scene_mod.TABLE_HALF[2]
        self.move_object(name, (*self.PARKING_XY, floor_z + 0.0005))
