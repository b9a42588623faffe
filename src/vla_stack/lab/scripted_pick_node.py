"""scripted_pick_node: picks the object at `grounding/target` (and places it) with a scripted IK plan.

A baseline "policy" that drives an arm through the standard command topics, exactly as a
joint_trajectory_controller expects them: one JointTrajectory per segment on
`<controller>/joint_trajectory`, gripper openings on `gripper_controller/commands`. The demo
uses it to show the simulated arm working end to end before the learned expert exists.

Subscribes: joint_states, grounding/target (PoseStamped in the base frame: grasp point; its yaw
is the grasp yaw). Publishes: the trajectory and gripper commands, `scripted_pick/status`
(DiagnosticArray, latched: phase, segment index, reason when failed).
"""

from __future__ import annotations

import math

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.core.robot_profile import DEFAULT_ROBOT, load_robot_profile
from vla_stack.lab.policy.scripted_expert import PickPlaceConfig, PlanningError, ScriptedPickPlace, Segment
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import (
    MessageError,
    chunk_to_joint_trajectory,
    diagnostics_msg,
    joint_state_to_core,
    numpy_to_float64_array,
    pose_to_core,
)
from vla_stack.ros.node_runner import spin_node


def yaw_of(quaternion_xyzw: np.ndarray) -> float:
    """Rotation about z of a quaternion (x, y, z, w), rad."""
    x, y, z, w = quaternion_xyzw
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


class ScriptedPickNode(Node):
    """Runs the scripted pick(-and-place) once per received target."""

    def __init__(self) -> None:
        super().__init__("scripted_pick_node")

        def param(name, default, text):
            return self.declare_parameter(name, default, ParameterDescriptor(description=text)).value

        self.trajectory_topic = param("trajectory_topic", itf.ARM_TRAJECTORY.name, "JointTrajectory command topic")
        self.gripper_topic = param("gripper_topic", itf.GRIPPER_COMMAND.name, "gripper command topic [width m, force N]")
        place = list(param("place_position", [0.0], "place point [x, y, z] in the base frame, m; one value = only lift"))
        self.place_point = np.array(place) if len(place) == 3 else None
        self.settle_tolerance = float(param("settle_tolerance", 0.03, "max joint error to call a segment done, rad"))
        self.timeout_margin = float(param("timeout_margin", 3.0, "extra time a segment may take before failing, s"))
        self.config = PickPlaceConfig(
            cartesian_speed=float(param("cartesian_speed", 0.2, "mean TCP speed, m/s")),
            grasp_force=float(param("grasp_force", 60.0, "gripper force limit when grasping, N")),
        )

        robot = str(param("robot", DEFAULT_ROBOT, "robot profile: name under config/robots or a YAML path"))
        try:
            self.profile = load_robot_profile(robot)
            self.model = RobotModel.from_profile(self.profile)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"scripted_pick_node: cannot use robot profile '{robot}': {exc}") from exc
        self.joints = self.profile.joints
        self.planner = ScriptedPickPlace(self.model, self.config)
        self.q: np.ndarray | None = None
        self.segments: list[Segment] = []
        self.index = -1
        self.segment_start = 0.0
        self.phase = "waiting for target"
        self.reason = ""

        self.traj_pub = self.create_publisher(itf.ARM_TRAJECTORY.msg_type, self.trajectory_topic, itf.ARM_TRAJECTORY.pub_qos)
        self.grip_pub = self.create_publisher(itf.GRIPPER_COMMAND.msg_type, self.gripper_topic, itf.GRIPPER_COMMAND.pub_qos)
        status = itf.status("scripted_pick")
        self.status_pub = self.create_publisher(status.msg_type, status.name, itf.LATCHED_QOS)
        self.create_subscription(itf.JOINT_STATES.msg_type, itf.JOINT_STATES.name, self.on_joint_states, itf.JOINT_STATES.sub_qos)
        self.create_subscription(itf.GROUNDING_TARGET.msg_type, itf.GROUNDING_TARGET.name, self.on_target, itf.GROUNDING_TARGET.sub_qos)
        self.create_timer(0.05, self.tick)
        self.publish_status()
        self.get_logger().info(f"ready: commands on {self.trajectory_topic} and {self.gripper_topic}; waiting for {itf.GROUNDING_TARGET.name}")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_joint_states(self, msg) -> None:
        try:
            state = joint_state_to_core(msg)
            q = state.position_of(self.joints)
        except (MessageError, KeyError) as exc:
            self.get_logger().warn(f"joint_states rejected: {exc}", throttle_duration_sec=5.0)
            return
        if np.all(np.isfinite(q)):
            self.q = q

    def on_target(self, msg) -> None:
        if self.index >= 0 and self.index < len(self.segments):
            self.get_logger().warn("new target ignored: a pick is in progress")
            return
        if self.q is None:
            self.get_logger().warn("target ignored: no joint_states received yet")
            return
        try:
            pose = pose_to_core(msg)
            self.segments = self.planner.plan(self.q, pose.position, yaw_of(pose.orientation), self.place_point)
        except (MessageError, PlanningError) as exc:
            self.fail(f"cannot plan for target: {exc}")
            return
        self.get_logger().info(
            f"target {np.round(pose.position, 3).tolist()} m: planned {len(self.segments)} segments "
            f"({', '.join(s.name for s in self.segments)}), {sum(s.duration for s in self.segments):.1f} s"
        )
        self.start_segment(0)

    def start_segment(self, index: int) -> None:
        self.index = index
        if index >= len(self.segments):
            self.phase = "done"
            self.get_logger().info("pick finished")
            self.publish_status()
            return
        seg = self.segments[index]
        self.phase = seg.name
        self.segment_start = self.now()
        if seg.gripper_width is not None:
            cmd = [seg.gripper_width] + ([seg.gripper_force] if seg.gripper_force is not None else [])
            self.grip_pub.publish(numpy_to_float64_array(cmd))
        if seg.chunk is not None:
            self.traj_pub.publish(chunk_to_joint_trajectory(seg.chunk))  # stamp 0: start on receipt
        self.get_logger().info(f"segment {index + 1}/{len(self.segments)}: {seg.name} ({seg.duration:.2f} s)")
        self.publish_status()

    def tick(self) -> None:
        if not (0 <= self.index < len(self.segments)):
            return
        seg = self.segments[self.index]
        elapsed = self.now() - self.segment_start
        if elapsed < seg.duration:
            return
        if seg.chunk is not None and self.q is not None:
            error = float(np.max(np.abs(self.q - seg.chunk.positions[-1])))
            if error > self.settle_tolerance:
                if elapsed > seg.duration + self.timeout_margin:
                    self.fail(f"segment '{seg.name}' did not settle: joint error {error:.3f} rad after {elapsed:.1f} s")
                return
        self.start_segment(self.index + 1)

    def fail(self, reason: str) -> None:
        self.phase, self.reason = "failed", reason
        self.index = len(self.segments)
        self.get_logger().error(f"pick failed: {reason}; the arm holds its last command")
        self.publish_status()

    def publish_status(self) -> None:
        level = {"failed": "ERROR", "done": "OK"}.get(self.phase, "OK")
        values = {"phase": self.phase, "segment": self.index + 1, "segments": len(self.segments), "reason": self.reason}
        self.status_pub.publish(diagnostics_msg("scripted_pick", level, self.phase, values, self.now()))


def main(args: list[str] | None = None) -> int:
    return spin_node(ScriptedPickNode, args)


if __name__ == "__main__":
    main()
