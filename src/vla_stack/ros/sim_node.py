"""sim_node: the MuJoCo robot scene (`vla_stack.core.sim.SimRobot`) as a ROS 2 robot.

The robot is the profile of the `robot` parameter (config/robots/<robot>.yaml; it needs
simulation assets, core/sim/robots/<robot>.py). To the rest of the stack it looks like a real
arm under ros2_control with a RealSense-like
camera, fingertip tactile sensors and a wrist F/T sensor. All stamps are sim time, and the node
publishes `/clock`, so other nodes run with `use_sim_time: true`.

Publishes (names from `vla_stack.ros.interfaces`; relative, so namespaces work):
- `joint_states` (sensor_msgs/JointState, `joint_state_rate` Hz, default 250): arm + fingers;
- `/clock` (rosgraph_msgs/Clock) at the same rate;
- `camera/color/image_raw` (rgb8), `camera/aligned_depth_to_color/image_raw` (32FC1 m, or
  16UC1 mm), `camera/color/camera_info` at `camera_rate`; `wrist_camera/...` likewise when
  `wrist_camera` is true;
- `tactile/<left|right>/image` (32FC1 kPa taxel pressure) and `tactile/<pad>/force`
  (WrenchStamped, pad frame: z normal into the pad), `wrench` (WrenchStamped, the profile's
  hand_frame) at `sensor_rate`;
- evaluation only: `sim/ground_truth` (String JSON, latched, `ground_truth_rate`) and
  `sim/ground_truth/segmentation` (mono8 object labels, `segmentation_rate`);
- `sim_node/status` (DiagnosticArray, 1 Hz): real-time factor achieved, camera fps, rejects.

Subscribes (controller names are parameters, as in a ros2_control setup):
- `<arm_controller>/joint_trajectory` (trajectory_msgs/JointTrajectory), JTC semantics;
- `<arm_position_controller>/commands` (std_msgs/Float64MultiArray, one value per arm joint, rad);
- `<gripper_controller>/commands` (Float64MultiArray: [width m] or [width m, max force N]).
A bad command is logged in one line (what, why, what the sim does instead) and ignored.

Threads: physics (paced to `real_time_factor` × wall time, publishes joint_states/clock/
sensors), rendering (its own OpenGL context, renders a copy of the state, so it never stalls
the physics), and the ROS executor (commands, ground truth, status).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String

from vla_stack.core.contracts import GroundTruth, encode_ground_truth, parse_sim_reset
from vla_stack.core.sim.config import SceneConfig
from vla_stack.core.sim.robot import CAMERA_FRAMES, SimRobot
from vla_stack.core.types import Wrench
from vla_stack.core.validation import InvalidCommand
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import (
    diagnostics_msg,
    float64_array_to_numpy,
    intrinsics_to_camera_info,
    joint_state_to_msg,
    joint_trajectory_fields,
    numpy_to_image,
    seconds_to_stamp,
    wrench_to_msg,
)
from vla_stack.ros.node_runner import spin_node
from vla_stack.ros.params import config_from_parameters, declare_parameters

HOLDOFF_ARM_TOLERANCE = 0.05
"""rad: an arm command whose first point is this close to the reset pose ends the hold-off."""
HOLDOFF_GRIPPER_TOLERANCE = 0.005
"""m: a gripper command this close to the reset width ends the hold-off."""

NODE_PARAMETERS: dict[str, tuple[Any, str]] = {
    "real_time_factor": (1.0, "sim seconds per wall second the physics is paced to (0.05..50)"),
    "reset_command_holdoff": (
        2.0,
        "after sim/reset, arm and gripper commands that do not start at the reset pose are ignored for up to this "
        "long (s of sim time): a real arm cannot jump, so a controller still streaming the old pose would drag the "
        "teleported arm back; the first command that starts where the arm is ends it (0 = off)",
    ),
    "joint_state_rate": (250.0, "rate of joint_states and /clock, Hz of sim time"),
    "sensor_rate": (100.0, "rate of tactile images/forces and the wrist wrench, Hz of sim time"),
    "wrench_mode": (
        "external",
        "what `wrench` carries: 'external' = contact wrench from the environment on hand + fingers "
        "(like a gravity/inertia-compensated F/T driver or an arm's external wrench estimate; ~0 in free "
        "motion), 'raw' = the uncompensated wrist sensor (includes the hand's weight and inertia)",
    ),
    "camera_rate": (15.0, "scene camera rate (colour + depth + camera_info), Hz of sim time; 0 = off"),
    "wrist_camera_rate": (15.0, "wrist camera rate when wrist_camera is true, Hz of sim time"),
    "depth_encoding": ("32FC1", "depth image encoding: 32FC1 (m) or 16UC1 (mm)"),
    "ground_truth_rate": (2.0, "rate of sim/ground_truth (evaluation only), Hz of wall time"),
    "segmentation_rate": (2.0, "rate of sim/ground_truth/segmentation (evaluation only), Hz of sim time; 0 = off"),
    "arm_controller": ("arm_controller", "name of the joint_trajectory_controller: subscribes <name>/joint_trajectory"),
    "arm_position_controller": (
        "arm_position_controller", "name of the forward position controller: subscribes <name>/commands"),
    "gripper_controller": ("gripper_controller", "name of the gripper controller: subscribes <name>/commands"),
    "status_period": (1.0, "period of sim_node/status diagnostics, s"),
}


def scene_parameter_spec() -> dict[str, tuple[Any, str]]:
    """SceneConfig fields as ROS parameters (None -> -1, tuples -> double arrays)."""
    spec: dict[str, tuple[Any, str]] = {}
    for f in dataclasses.fields(SceneConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        text = f.metadata.get("help", f.name)
        if f.name == "mine_index":
            default, text = -1, text + " (-1 = chosen by the seed)"
        elif isinstance(default, tuple):
            default = [float(v) for v in default]
        spec[f.name] = (default, text)
    return spec


def scene_config_from_values(values: dict[str, Any], logger) -> SceneConfig:
    """SceneConfig from parameter values; invalid values are logged and replaced by defaults."""
    converted = dict(values)
    defaults = {f.name: f.default for f in dataclasses.fields(SceneConfig)}
    try:
        mine = int(converted.get("mine_index", -1))
        converted["mine_index"] = None if mine < 0 else mine
    except (TypeError, ValueError):
        logger.error(f"parameter mine_index={converted.get('mine_index')!r} rejected (not an integer); using -1 (by seed)")
        converted["mine_index"] = None
    for key in ("camera_position", "camera_look_at", "initial_joint_positions"):
        if key in converted:
            try:
                converted[key] = tuple(float(v) for v in converted[key])
            except (TypeError, ValueError):
                logger.error(f"parameter {key}={converted[key]!r} rejected (need a list of numbers); using the default")
                converted[key] = defaults[key]
    fields = {f.name for f in dataclasses.fields(SceneConfig)}
    return config_from_parameters(SceneConfig, {k: v for k, v in converted.items() if k in fields}, logger)


class _RateMeter:
    """Counts events; `rate()` = events per wall second since the last call."""

    def __init__(self) -> None:
        self.count = 0
        self._last_count = 0
        self._last_time = time.monotonic()

    def tick(self) -> None:
        self.count += 1

    def rate(self) -> float:
        now = time.monotonic()
        dt = now - self._last_time
        r = (self.count - self._last_count) / dt if dt > 0 else 0.0
        self._last_count, self._last_time = self.count, now
        return r


class SimNode(Node):
    """ROS 2 wrapper of `SimRobot` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("sim_node")
        log = self.get_logger()
        values = declare_parameters(self, {**scene_parameter_spec(), **NODE_PARAMETERS})
        self.scene_config = scene_config_from_values(values, log)
        p = {k: values[k] for k in NODE_PARAMETERS}
        self.rtf = self._bounded(p, "real_time_factor", 0.05, 50.0)
        self.reset_holdoff = self._bounded(p, "reset_command_holdoff", 0.0, 10.0)
        self._holdoff_until = -1.0
        self._holdoff: set[str] = set()  # channels held off since the last scene reset
        self._holdoff_logged: set[str] = set()
        self.joint_state_rate = self._bounded(p, "joint_state_rate", 1.0, 2000.0)
        self.sensor_rate = self._bounded(p, "sensor_rate", 1.0, 2000.0)
        self.wrench_mode = str(p["wrench_mode"])
        if self.wrench_mode not in ("external", "raw"):
            log.error(f"parameter wrench_mode={self.wrench_mode!r} rejected (use 'external' or 'raw'); using 'external'")
            self.wrench_mode = "external"
        self.camera_rate = self._bounded(p, "camera_rate", 0.0, 120.0)
        self.wrist_camera_rate = self._bounded(p, "wrist_camera_rate", 0.0, 120.0)
        self.gt_rate = self._bounded(p, "ground_truth_rate", 0.1, 100.0)
        self.seg_rate = self._bounded(p, "segmentation_rate", 0.0, 60.0)
        status_period = self._bounded(p, "status_period", 0.1, 60.0)
        self.depth_encoding = str(p["depth_encoding"])
        if self.depth_encoding not in ("32FC1", "16UC1"):
            log.error(f"parameter depth_encoding={self.depth_encoding!r} rejected (use 32FC1 or 16UC1); using 32FC1")
            self.depth_encoding = "32FC1"

        try:
            self.robot = SimRobot(self.scene_config)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"sim_node: cannot simulate robot '{self.scene_config.robot}': {exc}") from exc
        self.rejected = 0
        self._stop = threading.Event()
        self._js_meter, self._cam_meter, self._achieved_rtf = _RateMeter(), _RateMeter(), 0.0
        self._overruns = 0

        # ---- publishers -------------------------------------------------------------------------
        def pub(topic: itf.Topic, name: str | None = None):
            return self.create_publisher(topic.msg_type, name or topic.name, topic.pub_qos)

        self.js_pub = pub(itf.JOINT_STATES)
        self.clock_pub = pub(itf.CLOCK)
        self.wrench_pub = pub(itf.WRENCH)
        self.tactile_pubs = {
            pad: (pub(itf.tactile_image(pad)), pub(itf.tactile_force(pad))) for pad in self.robot.tactile_pads()
        }
        self.camera_pubs = {"scene": (pub(itf.COLOR_IMAGE), pub(itf.DEPTH_IMAGE), pub(itf.CAMERA_INFO))}
        if self.scene_config.wrist_camera:
            self.camera_pubs["wrist"] = (
                pub(itf.WRIST_COLOR_IMAGE), pub(itf.WRIST_DEPTH_IMAGE), pub(itf.WRIST_CAMERA_INFO))
        self.gt_pub = pub(itf.GROUND_TRUTH)
        self.seg_pub = pub(itf.GROUND_TRUTH_MASK)
        status = itf.status("sim_node")
        self.status_pub = self.create_publisher(status.msg_type, status.name, status.pub_qos)

        # ---- command subscriptions -----------------------------------------------------------------
        arm = str(p["arm_controller"]).strip("/")
        pos = str(p["arm_position_controller"]).strip("/")
        grip = str(p["gripper_controller"]).strip("/")
        self.trajectory_topic = f"{arm}/joint_trajectory"
        self.position_topic = f"{pos}/commands"
        self.gripper_topic = f"{grip}/commands"
        self.create_subscription(itf.ARM_TRAJECTORY.msg_type, self.trajectory_topic, self.on_trajectory,
                                 itf.ARM_TRAJECTORY.sub_qos)
        self.create_subscription(itf.ARM_POSITION_COMMAND.msg_type, self.position_topic, self.on_positions,
                                 itf.ARM_POSITION_COMMAND.sub_qos)
        self.create_subscription(itf.GRIPPER_COMMAND.msg_type, self.gripper_topic, self.on_gripper,
                                 itf.GRIPPER_COMMAND.sub_qos)
        self.create_subscription(itf.SIM_RESET.msg_type, itf.SIM_RESET.name, self.on_reset, itf.SIM_RESET.sub_qos)
        self.create_timer(1.0 / self.gt_rate, self.publish_ground_truth)
        self.create_timer(status_period, self.publish_status)

        self.publish_ground_truth()
        # The render thread creates its OpenGL context (and uploads meshes/textures) first; the
        # physics starts when that is done, so start-up does not show up as a physics stall.
        self._render_ready = threading.Event()
        self._physics = threading.Thread(target=self._physics_loop, name="sim_physics", daemon=True)
        self._render = threading.Thread(target=self._render_loop, name="sim_render", daemon=True)
        self._physics.start()
        self._render.start()
        cams = ", ".join(f"{c} {self.robot.intrinsics(c).width}x{self.robot.intrinsics(c).height}"
                         for c in self.robot.camera_names())
        log.info(
            f"simulating seed {self.scene_config.seed}: {len(self.robot.mug_names())} mugs, tray, cameras [{cams}], "
            f"real-time factor {self.rtf}; commands on {self.trajectory_topic}, {self.position_topic}, "
            f"{self.gripper_topic}"
        )

    def _bounded(self, values: dict[str, Any], name: str, lo: float, hi: float) -> float:
        default = NODE_PARAMETERS[name][0]
        try:
            v = float(values[name])
            if not lo <= v <= hi:
                raise ValueError(f"must be in [{lo}, {hi}]")
            return v
        except (TypeError, ValueError) as exc:
            self.get_logger().error(f"parameter {name}={values[name]!r} rejected ({exc}); using the default {default}")
            return float(default)

    # ---- commands ---------------------------------------------------------------------------------
    def _reject(self, what: str, topic: str, exc: InvalidCommand, action: str) -> None:
        self.rejected += 1
        self.get_logger().warning(f"rejected {what} on {topic} [{exc.code}]: {exc.reason}; {action}")

    def _held_off(self, channel: str, first: np.ndarray | None, current: np.ndarray, tolerance: float) -> bool:
        """True (command ignored) while `channel` ("arm" / "gripper") is held off after a scene reset:
        until `reset_command_holdoff` s have passed or a command starts where the joints now are
        (`first` within `tolerance` of `current`: the controller upstream has caught up)."""
        if channel not in self._holdoff:
            return False
        if self.robot.time >= self._holdoff_until or (
            first is not None and first.shape == current.shape and np.all(np.abs(first - current) <= tolerance)
        ):
            self._holdoff.discard(channel)
            return False
        if channel not in self._holdoff_logged:
            self._holdoff_logged.add(channel)
            self.get_logger().info(
                f"ignoring {channel} commands that do not start at the reset pose until t={self._holdoff_until:.2f} s "
                "(just reset: a controller still aimed at the old pose would drag the arm back)")
        return True

    def on_trajectory(self, msg) -> None:
        """JointTrajectory -> SimRobot (JTC semantics); rejects keep the previous trajectory."""
        try:
            f = joint_trajectory_fields(msg)
            if self._holdoff:
                names = list(f["names"])
                first = None
                arm = self.robot.arm_joint_names
                if f["positions"] and sorted(names) == sorted(arm):
                    row = dict(zip(names, f["positions"][0], strict=False))
                    first = np.array([row[n] for n in arm], dtype=np.float64)
                if self._held_off("arm", first, self.robot.joint_state().positions[: len(arm)], HOLDOFF_ARM_TOLERANCE):
                    return
            if f["velocity_note"]:
                self.get_logger().warning(f"JointTrajectory on {self.trajectory_topic}: {f['velocity_note']}",
                                          throttle_duration_sec=1.0)
            self.robot.command_trajectory_fields(f["names"], f["times"], f["positions"], f["velocities"], f["stamp"])
        except InvalidCommand as exc:
            self._reject("JointTrajectory", self.trajectory_topic, exc,
                         "ignored it, the previous trajectory continues")
        except (ValueError, TypeError) as exc:
            self._reject("JointTrajectory", self.trajectory_topic, InvalidCommand("malformed", str(exc)),
                         "ignored it, the previous trajectory continues")

    def on_positions(self, msg) -> None:
        """Float64MultiArray (one position per arm joint, rad, `arm_joint_names` order) -> forward position command."""
        n = len(self.robot.arm_joint_names)
        if self._holdoff and self._held_off("arm", float64_array_to_numpy(msg), self.robot.joint_state().positions[:n],
                                            HOLDOFF_ARM_TOLERANCE):
            return
        try:
            self.robot.command_positions(float64_array_to_numpy(msg))
        except InvalidCommand as exc:
            self._reject("position command", self.position_topic, exc, "ignored it, holding the previous command")

    def on_gripper(self, msg) -> None:
        """Float64MultiArray [width m] or [width m, max force N] -> gripper command."""
        values = float64_array_to_numpy(msg)
        if self._holdoff and self._held_off("gripper", values[:1], np.array([self.robot.gripper_width()]),
                                            HOLDOFF_GRIPPER_TOLERANCE):
            return
        try:
            if values.shape[0] not in (1, 2):
                raise InvalidCommand(
                    "length_mismatch", f"expected [width] or [width, max_force], got {values.shape[0]} values")
            self.robot.command_gripper(float(values[0]), float(values[1]) if values.shape[0] == 2 else None)
        except InvalidCommand as exc:
            self._reject("gripper command", self.gripper_topic, exc, "ignored it, the gripper keeps its previous command")

    # ---- physics thread ------------------------------------------------------------------------------
    def on_reset(self, msg) -> None:
        """sim/reset: a new scene (seed, number of mugs), robot at home; the sim clock keeps running."""
        log = self.get_logger()
        try:
            request = parse_sim_reset(msg.data)
            changes = {k: v for k, v in (("seed", request.seed), ("num_mugs", request.num_mugs)) if v is not None}
            config = dataclasses.replace(self.scene_config, **changes)
        except (ValueError, TypeError) as exc:
            log.error(f"sim/reset rejected: {exc} (send JSON like {{\"seed\": 3, \"num_mugs\": 3}})")
            return
        t = self.robot.time
        self.robot.reset(config=config, start_time=t)
        if self.reset_holdoff > 0:
            self._holdoff_until, self._holdoff, self._holdoff_logged = t + self.reset_holdoff, {"arm", "gripper"}, set()
        self.scene_config = config
        self.publish_ground_truth()
        log.info(f"reset at t={t:.2f} s: seed {config.seed}, {len(self.robot.mug_names())} mugs, robot at home")

    def _publish_joint_state(self, t: float) -> None:
        state = self.robot.joint_state()
        self.js_pub.publish(joint_state_to_msg(state))
        self.clock_pub.publish(Clock(clock=seconds_to_stamp(t)))
        self._js_meter.tick()

    def _publish_sensors(self, t: float) -> None:
        for pad, (img_pub, force_pub) in self.tactile_pubs.items():
            reading = self.robot.tactile(pad)
            img_pub.publish(numpy_to_image(reading.pressure, "32FC1", reading.stamp, reading.frame_id))
            force_pub.publish(wrench_to_msg(Wrench(reading.force, np.zeros(3), reading.stamp, reading.frame_id)))
        wrench = self.robot.external_wrench() if self.wrench_mode == "external" else self.robot.wrench()
        self.wrench_pub.publish(wrench_to_msg(wrench))

    def _physics_loop(self) -> None:
        robot, dt = self.robot, self.robot.physics_dt
        js_period, sensor_period = 1.0 / self.joint_state_rate, 1.0 / self.sensor_rate
        deadline = time.monotonic() + 60.0
        while not self._render_ready.wait(0.1) and time.monotonic() < deadline:
            if self._stop.is_set():
                return
        wall0, sim0 = time.monotonic(), robot.time
        next_js, next_sensor = sim0, sim0
        last_report_wall, last_report_sim = wall0, sim0
        try:
            while not self._stop.is_set():
                target = sim0 + (time.monotonic() - wall0) * self.rtf
                if target - robot.time > 0.2:  # cannot keep up: drop the debt, count it
                    self._overruns += 1
                    wall0, sim0 = time.monotonic(), robot.time
                    target = sim0
                while robot.time < target - 0.5 * dt and not self._stop.is_set():
                    upto = min(target, next_js, next_sensor)
                    n = max(1, int(round((upto - robot.time) / dt)))
                    robot.step(n)
                    t = robot.time
                    if t >= next_js - 0.5 * dt:
                        self._publish_joint_state(t)
                        next_js = max(next_js + js_period, t + 0.5 * dt)
                    if t >= next_sensor - 0.5 * dt:
                        self._publish_sensors(t)
                        next_sensor = max(next_sensor + sensor_period, t + 0.5 * dt)
                now = time.monotonic()
                if now - last_report_wall >= 1.0:
                    self._achieved_rtf = (robot.time - last_report_sim) / (now - last_report_wall)
                    last_report_wall, last_report_sim = now, robot.time
                wake = wall0 + (min(next_js, next_sensor) - sim0) / self.rtf
                self._stop.wait(max(0.0, min(wake - time.monotonic(), 0.01)))
        except Exception as exc:  # noqa: BLE001 - a crash here must be visible, not a silent dead thread
            if not self._stop.is_set() and self.context.ok():  # not just the process shutting down
                self.get_logger().fatal(f"physics thread failed: {exc!r}; shutting down")
                self._stop.set()
                rclpy.try_shutdown(context=self.context)

    # ---- render thread -------------------------------------------------------------------------------
    def _publish_camera(self, cam: str) -> None:
        rgb, depth, t = self.robot.render_stamped(cam)
        color_pub, depth_pub, info_pub = self.camera_pubs[cam]
        frame = CAMERA_FRAMES[cam]
        color_pub.publish(numpy_to_image(rgb, "rgb8", t, frame))
        if self.depth_encoding == "16UC1":
            mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
            depth_pub.publish(numpy_to_image(mm, "16UC1", t, frame))
        else:
            depth_pub.publish(numpy_to_image(depth, "32FC1", t, frame))
        info_pub.publish(intrinsics_to_camera_info(self.robot.intrinsics(cam), t))
        if cam == "scene":
            self._cam_meter.tick()

    def _render_loop(self) -> None:
        schedule = []
        if self.camera_rate > 0:
            schedule.append(["scene", 1.0 / self.camera_rate, 0.0])
        if "wrist" in self.camera_pubs and self.wrist_camera_rate > 0:
            schedule.append(["wrist", 1.0 / self.wrist_camera_rate, 0.0])
        if self.seg_rate > 0:
            schedule.append(["segmentation", 1.0 / self.seg_rate, 0.0])
        try:
            for cam in self.robot.camera_names():  # warm-up: GL context, textures, meshes
                self.robot.render(cam, depth=False)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"cannot render ({exc}); cameras and segmentation are off, physics continues")
            schedule = []
        finally:
            self._render_ready.set()
        try:
            while not self._stop.is_set() and schedule:
                t = self.robot.time
                due = [s for s in schedule if t >= s[2]]
                if not due:
                    wait_sim = min(s[2] for s in schedule) - t
                    self._stop.wait(min(max(wait_sim / self.rtf, 0.0005), 0.05))
                    continue
                for item in due:
                    name, period, _ = item
                    if name == "segmentation":
                        labels = self.robot.render_segmentation("scene")
                        self.seg_pub.publish(numpy_to_image(labels.astype(np.uint8), "mono8", t, CAMERA_FRAMES["scene"]))
                    else:
                        self._publish_camera(name)
                    item[2] = max(item[2] + period, self.robot.time)  # skip frames we could not render in time
        except Exception as exc:  # noqa: BLE001
            if not self._stop.is_set():
                self.get_logger().fatal(f"render thread failed: {exc!r}; shutting down (is EGL available? MUJOCO_GL=egl)")
                self._stop.set()
                rclpy.try_shutdown(context=self.context)
        finally:
            self.robot.close()

    # ---- executor callbacks ----------------------------------------------------------------------------
    def publish_ground_truth(self) -> None:
        """sim/ground_truth (evaluation only): JSON of `SimRobot.ground_truth()`."""
        self.gt_pub.publish(String(data=encode_ground_truth(GroundTruth.from_dict(self.robot.ground_truth()))))

    def publish_status(self) -> None:
        """sim_node/status: achieved real-time factor, rates, rejected commands."""
        rtf = self._achieved_rtf
        level = "OK" if rtf >= 0.95 * self.rtf or self.robot.time < 2.0 else "WARN"
        message = "running" if level == "OK" else f"physics slower than requested ({rtf:.2f} < {self.rtf:.2f})"
        values = {
            "sim_time": f"{self.robot.time:.3f}", "real_time_factor": f"{rtf:.3f}",
            "joint_states_hz": f"{self._js_meter.rate():.1f}", "camera_hz": f"{self._cam_meter.rate():.1f}",
            "rejected_commands": self.rejected, "overruns": self._overruns,
        }
        self.status_pub.publish(diagnostics_msg("sim_node", level, message, values, self.robot.time))

    def stop(self) -> None:
        """Stop the physics and render threads (idempotent)."""
        self._stop.set()
        for th in (self._physics, self._render):
            if th.is_alive() and th is not threading.current_thread():
                th.join(timeout=5.0)


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vla_stack sim_node` / `vla-stack up sim`."""
    return spin_node(SimNode, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
