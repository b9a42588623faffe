"""safety_controller_node: the only node that moves hardware.

A thin wrapper of `vla_stack.core.safety.controller.SafetyController`: converts messages,
calls the core, publishes. Runs in its own process on rclpy's EventsExecutor (one thread),
so the control timer is not starved by other nodes' Python work.

Subscribes (relative names, remappable):
- `action_expert/chunk` (JointTrajectory; header.stamp = observation time);
- `joint_states` (JointState); `wrench` (WrenchStamped, gravity-compensated);
  `tactile/<sensor>/image` (32FC1 kPa) for each of `tactile_sensors`;
- `safety/twist_cmd` (TwistStamped, frame = base or tool frame), `safety/joint_jog` (JointState velocities);
- `safety/estop` (Bool; true latches a stop);
- `cmd_vel_in` (Twist) and `scan` (LaserScan) when `base_enabled`.

Publishes:
- `command_interface: joint_trajectory`: `<arm_controller>/joint_trajectory` every control
  period: a short trajectory (header.stamp 0 = start on receipt) whose first point is the
  next commanded state (one period ahead) and whose remaining points are the verified stop
  from it, so the controller brings the arm to rest if this node dies;
- `command_interface: position`: `<arm_position_controller>/commands` (Float64MultiArray, rad);
- `<gripper_controller>/commands` ([width m, max force N]) at `gripper_rate`;
- `cmd_vel` (Twist) at the control rate when `base_enabled`;
- `safety/status` (DiagnosticArray, `status_rate` Hz): state, message, last reason, counters,
  control-loop period error and compute time;
- `safety/markers` (MarkerArray, latched): workspace and keep-out boxes for rviz2.

Service: `safety/reset` (std_srvs/Trigger).

Timing: each control tick first computes and publishes the command (the time-critical part),
then uses the rest of the period for the deferred work: incoming chunks (validated and
screened along their path, ~1 ms) are queued by their subscription callback and accepted
right after the command is out, and `safety/status` is built there when due. So neither
delays a tick; a chunk still takes effect at the next tick, as before. (A second thread
would not help: pinocchio/coal hold the GIL and the kinematic model is shared with the loop.)
The outgoing JointTrajectory is one reused message refilled in place.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
from collections import deque
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, Twist
from rclpy.node import Node
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from vla_stack.core.safety.base_gate import BaseGateConfig
from vla_stack.core.safety.controller import ControlOutput, SafetyController, SafetyControllerConfig
from vla_stack.core.safety.workspace import Box
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import (
    MessageError,
    diagnostics_msg,
    fill_joint_trajectory,
    image_to_numpy,
    joint_state_to_core,
    joint_trajectory_fields,
    numpy_to_float64_array,
    wrench_to_core,
)
from vla_stack.ros.node_runner import spin_node
from vla_stack.ros.params import config_from_parameters, dataclass_parameter_spec, declare_parameters

NODE_PARAMETERS: dict[str, tuple[Any, str]] = {
    "command_interface": ("joint_trajectory", "arm command interface: joint_trajectory (JTC topic) or position (forward position controller)"),
    "arm_controller": ("arm_controller", "joint_trajectory_controller name: publishes <name>/joint_trajectory"),
    "arm_position_controller": ("arm_position_controller", "forward position controller name: publishes <name>/commands"),
    "gripper_controller": ("gripper_controller", "gripper controller name: publishes <name>/commands"),
    "trajectory_points": (4, "most points per streamed JointTrajectory (first = next state, last = at rest)"),
    "status_rate": (20.0, "rate of safety/status, Hz (>= 10)"),
    "tactile_sensors": (["left", "right"], "tactile sensors watched for max_grip_pressure: tactile/<name>/image"),
    "timing_window": (2500, "control cycles the period-error and compute-time statistics cover"),
}


class SafetyControllerNode(Node):
    """ROS 2 wrapper of `SafetyController` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("safety_controller")
        log = self.get_logger()
        spec = {
            **dataclass_parameter_spec(SafetyControllerConfig, skip=("base",)),
            **dataclass_parameter_spec(BaseGateConfig, prefix="base."),
            **NODE_PARAMETERS,
        }
        values = declare_parameters(self, spec)
        for key in ("workspace_min", "workspace_max", "keep_out_boxes", "obstacle_boxes"):
            values[key] = [float(v) for v in values[key]]
        base = config_from_parameters(BaseGateConfig, values, log, prefix="base.")
        cfg = config_from_parameters(SafetyControllerConfig, {k: values[k] for k in spec if "." not in k}, log)
        cfg = dataclasses.replace(cfg, base=base)
        self.core = SafetyController(cfg)  # ValueError here = configuration the operator must fix
        self.cfg = cfg
        p = {k: values[k] for k in NODE_PARAMETERS}
        self.interface = str(p["command_interface"])
        if self.interface not in ("joint_trajectory", "position"):
            log.error(f"command_interface '{self.interface}' unknown (joint_trajectory | position); using joint_trajectory")
            self.interface = "joint_trajectory"
        self.max_points = max(2, int(p["trajectory_points"]))
        status_rate = max(10.0, float(p["status_rate"]))

        if self.interface == "joint_trajectory":
            topic = f"{p['arm_controller']}/joint_trajectory"
            self.arm_pub = self.create_publisher(JointTrajectory, topic, itf.ARM_TRAJECTORY.pub_qos)
        else:
            topic = f"{p['arm_position_controller']}/commands"
            self.arm_pub = self.create_publisher(
                itf.ARM_POSITION_COMMAND.msg_type, topic, itf.ARM_POSITION_COMMAND.pub_qos
            )
        self.arm_topic = topic
        self.gripper_pub = None
        if self.core.gripper is not None:
            self.gripper_pub = self.create_publisher(
                itf.GRIPPER_COMMAND.msg_type, f"{p['gripper_controller']}/commands", itf.GRIPPER_COMMAND.pub_qos
            )
        status_t = itf.status("safety")
        self.status_pub = self.create_publisher(status_t.msg_type, status_t.name, status_t.pub_qos)
        self.markers_pub = self.create_publisher(
            itf.SAFETY_MARKERS.msg_type, itf.SAFETY_MARKERS.name, itf.SAFETY_MARKERS.pub_qos
        )
        self.cmd_vel_pub = None

        def sub(topic: itf.Topic, cb, name: str | None = None):
            return self.create_subscription(topic.msg_type, name or topic.name, self._guarded(cb), topic.sub_qos)

        sub(itf.ACTION_CHUNK, self.on_chunk)
        sub(itf.JOINT_STATES, self.on_joint_states)
        sub(itf.TWIST_CMD, self.on_twist)
        sub(itf.JOINT_JOG, self.on_joint_jog)
        sub(itf.ESTOP, self.on_estop)
        sub(itf.WRENCH, self.on_wrench)
        for sensor in p["tactile_sensors"] or []:
            t = itf.tactile_image(str(sensor))
            self.create_subscription(
                t.msg_type, t.name, self._guarded(lambda msg, s=str(sensor): self.on_tactile(msg, s)), t.sub_qos
            )
        if cfg.base_enabled:
            self.cmd_vel_pub = self.create_publisher(itf.CMD_VEL.msg_type, itf.CMD_VEL.name, itf.CMD_VEL.pub_qos)
            sub(itf.CMD_VEL_IN, self.on_cmd_vel)
            sub(itf.SCAN, self.on_scan)
        self.create_service(itf.SAFETY_RESET.srv_type, itf.SAFETY_RESET.name, self.on_reset)

        window = max(100, int(p["timing_window"]))
        # ring buffers, s: period error, wake-up latency, tick -> command published (wall, thread
        # CPU), whole tick callback including the deferred chunk/status work (wall)
        self._timing = {name: _Ring(window) for name in ("period_error", "latency", "compute", "cpu", "callback")}
        self._last_actual: int | None = None
        self._events_logged = 0
        self._warned: dict[str, float] = {}
        self._cycles = 0
        self._chunks: deque[JointTrajectory] = deque()  # received, accepted after the next command is out
        self._max_queued_chunks = 8
        self._traj_msg = JointTrajectory()  # reused every cycle (publish copies it)
        self._traj_msg.joint_names = list(self.core.joint_names)
        self._preview_rows: dict[int, list[int]] = {}
        self._status_every = max(1, round(cfg.control_rate / status_rate))  # control ticks per status
        self._status_due = 0
        self.create_timer(cfg.dt, self.on_control)
        self.publish_markers()
        prof = self.core.profile
        log.info(
            f"safety controller for '{prof.name}' at {cfg.control_rate:g} Hz, limits scaled x"
            f"{self.core.limits.velocity[0] / prof.limits.velocity[0]:.2f}; commands on {topic} ({self.interface}); "
            f"workspace {'on' if self.core.workspace else 'OFF'}, collision {'on' if self.core.collision else 'OFF'}, "
            f"base gate {'on' if cfg.base_enabled else 'off'}; waiting for joint_states"
        )

    # ------------------------------------------------------------------ helpers
    def _guarded(self, cb):
        """Wrap a subscription callback: a bug on one message is logged, never kills the node."""

        def run(msg) -> None:
            try:
                cb(msg)
            except Exception as exc:  # noqa: BLE001 - the only node that moves hardware must keep running
                self._warn(f"bug:{cb.__name__}", f"internal error handling a message in {cb.__name__}: "
                           f"{type(exc).__name__}: {exc}; message ignored")

        return run

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _warn(self, key: str, text: str, period: float = 1.0) -> None:
        """Log a warning at most once per `period` s per key (bad input can arrive at kHz)."""
        t = time.monotonic()
        if t - self._warned.get(key, -1e9) >= period:
            self._warned[key] = t
            self.get_logger().warning(text)

    def _rejected(self, what: str, action: str) -> None:
        c = self.core.log
        self._warn(f"{what}:{c.last_code}", f"rejected {what} [{c.last_code}]: {c.last_reason}; {action}")
        self._events_logged = sum(c.counts.values())

    def _log_events(self) -> None:
        """Log guard events raised inside the control cycle (watchdog, workspace, e-stop...)."""
        c = self.core.log
        total = sum(c.counts.values())
        if total != self._events_logged:
            self._events_logged = total
            level = "error" if c.last_code in ("estop", "tracking_error", "stale_joint_states", "internal") else "warning"
            text = f"[{c.last_code}] {c.last_reason} (state {self.core.state.value})"
            if level == "error":
                self.get_logger().error(text)
            else:
                self._warn(f"event:{c.last_code}", text)

    # ------------------------------------------------------------------ inputs
    def on_chunk(self, msg: JointTrajectory) -> None:
        """Queue the chunk; the control tick accepts it right after publishing its command."""
        if len(self._chunks) >= self._max_queued_chunks:
            self._chunks.popleft()
            self._warn("chunk:queue", f"more than {self._max_queued_chunks} action chunks arrived within one control "
                       "period: dropped the oldest (is the control loop stalled?)")
        self._chunks.append(msg)

    def _accept_chunk(self, msg: JointTrajectory) -> None:
        """Validate, screen and (if safe) hand a queued chunk to the core."""
        now = self._now()
        try:
            f = joint_trajectory_fields(msg)
        except (MessageError, ValueError) as exc:
            self._warn("chunk:malformed", f"rejected action chunk [malformed]: {exc}; the robot keeps its current motion")
            return
        if f["velocity_note"]:
            self._warn("chunk:velocities", f"action chunk: {f['velocity_note']}")
        if not self.core.submit_trajectory(f["names"], f["times"], f["positions"], f["stamp"], now, f["velocities"]):
            self._rejected("action chunk", "the robot keeps its current motion")

    def on_joint_states(self, msg) -> None:
        now = self._now()
        try:
            state = joint_state_to_core(msg)
        except MessageError as exc:
            self._warn("joint_states", f"rejected joint_states: {exc}")
            return
        first = self.core.commanded is None
        if not self.core.on_joint_state(state, now):
            self._rejected("joint_states", "ignored (a stale state faults the controller)")
        elif first:
            self.get_logger().info("joint_states received: holding the measured position, ready for chunks")

    def on_twist(self, msg) -> None:
        lin, ang = msg.twist.linear, msg.twist.angular
        ok = self.core.on_twist([lin.x, lin.y, lin.z], [ang.x, ang.y, ang.z], msg.header.frame_id, self._now())
        if not ok:
            self._rejected("teleop twist", "not moving for it")

    def on_joint_jog(self, msg) -> None:
        if not self.core.on_joint_jog(list(msg.name), list(msg.velocity), self._now()):
            self._rejected("joint jog", "not moving for it")

    def on_estop(self, msg) -> None:
        was = self.core.estop.latched
        self.core.on_estop(bool(msg.data), self._now())
        if self.core.estop.latched:
            self._chunks.clear()  # nothing queued before the stop may run after it
        if self.core.estop.latched and not was:
            self.get_logger().error("E-STOP pressed: stopping at maximum deceleration; release it and call safety/reset")
            self._events_logged = sum(self.core.log.counts.values())

    def on_wrench(self, msg) -> None:
        now = self._now()
        try:
            w = wrench_to_core(msg)
        except MessageError as exc:
            self._warn("wrench", f"rejected wrench: {exc}")
            return
        self.core.on_wrench(w, now)

    def on_tactile(self, msg, sensor: str) -> None:
        if msg.encoding != "32FC1":
            self._warn(f"tactile:{sensor}", f"tactile/{sensor}/image is {msg.encoding}, not 32FC1 pressure: not watched", 30.0)
            return
        try:
            pressure = image_to_numpy(msg)
        except MessageError as exc:
            self._warn(f"tactile:{sensor}", f"rejected tactile/{sensor}/image: {exc}")
            return
        self.core.on_tactile(float(np.max(pressure)), self._now(), sensor)

    def on_cmd_vel(self, msg: Twist) -> None:
        if not self.core.on_base_command(msg.linear.x, msg.linear.y, msg.angular.z, self._now()):
            self._rejected("cmd_vel_in", "the base keeps ramping to its last valid request")

    def on_scan(self, msg) -> None:
        self.core.on_scan(np.asarray(msg.ranges, dtype=np.float64), msg.angle_min, msg.angle_increment,
                          msg.range_min, msg.range_max, self._now())

    def on_reset(self, request, response):
        # chunks queued while stopped were meant for a robot that was stopping: a reset must not
        # let them run (the next policy chunk, computed after the reset, will)
        dropped = len(self._chunks)
        self._chunks.clear()
        if dropped:
            self.get_logger().info(f"safety/reset: dropped {dropped} action chunk(s) queued before the reset")
        ok, message = self.core.reset(self._now())
        response.success, response.message = ok, message
        if ok:
            self.get_logger().info(f"safety/reset: {message}")
        else:
            self.get_logger().warning(f"safety/reset refused: {message}")
        self._events_logged = sum(self.core.log.counts.values())
        return response

    # ------------------------------------------------------------------ control loop
    def on_control(self, info=None) -> None:
        """One control tick: command first, then the deferred work (queued chunks, status when due)."""
        t_start, cpu_start = time.perf_counter(), time.thread_time()
        timing = self._timing
        if info is not None:
            actual = info.actual_call_time.nanoseconds
            expected = info.expected_call_time.nanoseconds
            if self._last_actual is not None:
                timing["period_error"].append(abs((actual - self._last_actual) * 1e-9 - self.cfg.dt))
            timing["latency"].append((actual - expected) * 1e-9)
            self._last_actual = actual
            now = expected * 1e-9  # the ideal tick: commands stay on a regular grid under jitter
        else:
            now = self._now()
        try:
            out = self.core.update(now)
        except Exception as exc:  # noqa: BLE001
            # Publish nothing: a joint_trajectory_controller finishes the last trajectory, which
            # ends in a verified stop. Logged every time: this is a bug to report.
            self.get_logger().error(f"control cycle failed ({type(exc).__name__}: {exc}); no command sent")
            out = None
        if out is not None:
            self._publish(out)
            timing["compute"].append(time.perf_counter() - t_start)
            timing["cpu"].append(time.thread_time() - cpu_start)
            self._cycles += 1
        # deferred work, in the slack after the command is out
        busy = bool(self._chunks)
        while self._chunks:
            msg = self._chunks.popleft()
            try:
                self._accept_chunk(msg)
            except Exception as exc:  # noqa: BLE001 - same policy as the subscription callbacks
                self._warn("bug:chunk", f"internal error accepting an action chunk: {type(exc).__name__}: {exc}; "
                           "chunk ignored, the robot keeps its current motion")
        self._log_events()
        # status when due, on a tick with slack left (not the one that accepted a chunk, not past
        # half the period); postponed at most one status period
        self._status_due -= 1
        slack = not busy and time.perf_counter() - t_start < 0.5 * self.cfg.dt
        if self._status_due <= 0 and (slack or self._status_due <= -self._status_every):
            self._status_due = self._status_every
            try:
                self.publish_status()
            except Exception as exc:  # noqa: BLE001
                self._warn("bug:status", f"internal error publishing safety/status: {type(exc).__name__}: {exc}")
        timing["callback"].append(time.perf_counter() - t_start)

    def _publish(self, out: ControlOutput) -> None:
        arm = out.arm
        if arm is not None:
            if self.interface == "position":
                self.arm_pub.publish(numpy_to_float64_array(arm.positions))
            else:
                self.arm_pub.publish(self._trajectory(arm))
        if out.gripper is not None and self.gripper_pub is not None:
            self.gripper_pub.publish(numpy_to_float64_array([out.gripper.width, out.gripper.max_force]))
        if out.base is not None and self.cmd_vel_pub is not None:
            tw = Twist()
            tw.linear.x, tw.linear.y, tw.angular.z = out.base.vx, out.base.vy, out.base.wz
            self.cmd_vel_pub.publish(tw)

    def _trajectory(self, arm) -> JointTrajectory:
        """Short streaming trajectory: next state, then (a subset of) the verified stop ending at rest.

        The rows sent are the first (next state), the last (at rest) and evenly spaced samples
        of the verified stop in between, all of them points the core checked.
        """
        k = len(arm.preview_times)
        idx = self._preview_rows.get(k)
        if idx is None:
            idx = list(range(k))
            if k > self.max_points:
                inner = np.linspace(1, k - 2, self.max_points - 2).round().astype(int).tolist() if self.max_points > 2 else []
                idx = sorted({0, *inner, k - 1})
            self._preview_rows[k] = idx
        # header.stamp 0 = "start on receipt" (the joint_trajectory_controller streaming idiom):
        # immune to clock offsets between this node and the controller (e.g. /clock latency in
        # simulation, where a stamped trajectory would start partly in the controller's past).
        return fill_joint_trajectory(self._traj_msg, arm.preview_times, arm.preview_positions,
                                     arm.preview_velocities, arm.preview_accelerations, idx)

    # ------------------------------------------------------------------ status
    def timing(self) -> dict[str, float]:
        """Control-loop statistics over the last `timing_window` cycles, ms.

        period_error: |actual period - 1/rate|; latency: timer wake-up delay; compute: wall time
        of one cycle up to the command being published (core + conversion + publish); cpu: the
        thread's CPU time for it; callback: wall time of the whole tick including the deferred
        chunk acceptance and status.
        """
        out: dict[str, float] = {"cycles": float(self._cycles)}
        for name, ring in self._timing.items():
            arr = ring.values()
            if len(arr):
                p50, p99 = np.percentile(arr, (50.0, 99.0)) * 1e3
                out[f"{name}_p50_ms"] = float(p50)
                out[f"{name}_p99_ms"] = float(p99)
                out[f"{name}_max_ms"] = float(arr.max()) * 1e3
        return out

    def publish_status(self) -> None:
        now = self._now()
        st = self.core.status(now)
        values = st.key_values()
        for k, v in self.timing().items():
            values[f"loop.{k}"] = f"{v:.4g}"
        values["command_topic"] = self.arm_topic
        self.status_pub.publish(diagnostics_msg("safety_controller", st.level, st.message, values, now))

    def publish_markers(self) -> None:
        """Workspace box (green wireframe) and keep-out boxes (red, translucent) in the base frame."""
        frame = self.core.profile.base_frame
        markers = []
        stamp = self.get_clock().now().to_msg()
        ws = self.core.workspace
        boxes = []
        if ws is not None:
            boxes.append((ws.allowed, (0.1, 0.8, 0.2, 1.0), Marker.LINE_LIST))
            boxes += [(b, (0.9, 0.1, 0.1, 0.35), Marker.CUBE) for b in ws.keep_out]
        boxes += [(b, (0.5, 0.5, 0.5, 0.25), Marker.CUBE) for b in Box.from_flat(self.cfg.obstacle_boxes, "obstacle")]
        for i, (box, rgba, kind) in enumerate(boxes):
            m = Marker()
            m.header.frame_id = frame
            m.header.stamp = stamp
            m.ns = "safety"
            m.id = i
            m.type = kind
            m.action = Marker.ADD
            m.pose.orientation.w = 1.0
            m.color.r, m.color.g, m.color.b, m.color.a = rgba
            if kind == Marker.CUBE:
                m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in box.center)
                m.scale.x, m.scale.y, m.scale.z = (float(v) for v in box.size)
            else:
                m.scale.x = 0.005
                lo, hi = box.lower, box.upper
                corners = [np.array([x, y, z]) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
                for a in range(8):
                    for b in range(a + 1, 8):
                        if np.count_nonzero(corners[a] != corners[b]) == 1:  # the 12 edges
                            m.points += [Point(x=float(corners[a][0]), y=float(corners[a][1]), z=float(corners[a][2])),
                                         Point(x=float(corners[b][0]), y=float(corners[b][1]), z=float(corners[b][2]))]
            markers.append(m)
        self.markers_pub.publish(MarkerArray(markers=markers))


class _Ring:
    """Fixed-size ring buffer of floats (no allocation per append)."""

    def __init__(self, size: int) -> None:
        self._data = np.zeros(size, dtype=np.float64)
        self._next = 0
        self._full = False

    def append(self, value: float) -> None:
        """Store one value, overwriting the oldest when full."""
        self._data[self._next] = value
        self._next += 1
        if self._next == len(self._data):
            self._next, self._full = 0, True

    def values(self) -> np.ndarray:
        """The stored values (a view, unordered)."""
        return self._data if self._full else self._data[: self._next]


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vla_stack safety_controller_node` / `vla-stack up`.

    Spun by an EventsExecutor through `spin_node` (a `spin_once` loop: EventsExecutor.spin() of
    rclpy 9.1 does not return on Ctrl-C/SIGTERM); exit code 2 when the configuration is unusable.
    """
    from rclpy.experimental import EventsExecutor

    def make() -> SafetyControllerNode:
        node = SafetyControllerNode()
        # Everything built so far (modules, kinematic models, parameters) lives until exit: move it
        # out of the garbage collector's reach, so a full collection never scans it (one took
        # ~28 ms here, i.e. several missed control periods); the control loop allocates little.
        gc.collect()
        gc.freeze()
        return node

    return spin_node(make, args, executor_factory=EventsExecutor, fatal_errors=(ValueError, FileNotFoundError))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
