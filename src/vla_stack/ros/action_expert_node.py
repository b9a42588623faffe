"""action_expert_node: the fast policy (System 1) — observation in, action chunks out.

A thin wrapper: messages are converted (`conversions.py`) and fed to
`vla_stack.core.policy.observation_builder.ObservationBuilder`; a timer at the policy's control
period calls `vla_stack.core.policy.realtime.RealTimeChunker.tick`, which owns all inference
timing (asynchronous inference in a worker thread, chunk scheduling strategy, real-time
chunking, delay measurement, stale-chunk dropping); the node publishes what it returns.

Subscribes (relative names, `topics.*` parameters):
- `joint_states` (sensor_msgs/JointState): arm + finger joints;
- `grounding/target` (geometry_msgs/PoseStamped, base frame): grasp point, yaw = grasp yaw;
- `grounding/place_target` (PoseStamped, base frame): place point when neither the
  `inputs.place_position` parameter nor the planner subtask gives one;
- `grounding/prompted_image` (Image rgb8) and `grounding/instruction` (String): only when the
  backend takes images/prompts (`use_images`; the openpi backend);
- `planner/subtask` (String JSON: skill, arguments.place_position) and `planner/latent`
  (Float32MultiArray);
- `wrench` (WrenchStamped), `tactile/<pad>/force` (WrenchStamped), `tactile/<pad>/image`
  (32FC1 kPa) when `use_tactile`.

Publishes:
- `action_expert/chunk` (trajectory_msgs/JointTrajectory, reliable): the robot profile's arm joints
  + its gripper column (`gripper.joint` = opening width / `gripper.width_per_unit`), header.stamp = time of the observation it
  was computed from, point i at time_from_start relative to that stamp;
- `action_expert/status` (DiagnosticArray, `status_period`): inference latency (last, p50,
  p99 ms), measured delay and its estimate (control steps), strategy, backend, counters
  (inferences, chunks published, stale chunks dropped, inputs rejected), why it is waiting.

Service `~/reset` (std_srvs/Trigger): drop chunks and restart timing (e.g. new episode).

Bad input never stops the node: every rejected message is logged (throttled) with its reason
and counted; while inputs are missing or stale no new chunk is requested, so downstream the
last chunk runs out and the safety controller holds the arm.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from rclpy.node import Node
from std_msgs.msg import String

from vla_stack.core.policy.backends import POLICIES
from vla_stack.core.policy.chunk_scheduler import SchedulerConfig
from vla_stack.core.policy.observation_builder import InputRejected, ObservationBuilder, ObservationConfig
from vla_stack.core.policy.realtime import RealTimeChunker
from vla_stack.core.policy.types import PolicyError
from vla_stack.core.robot_profile import DEFAULT_ROBOT, load_robot_profile
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import (
    MessageError,
    chunk_to_joint_trajectory,
    diagnostics_msg,
    float32_array_to_numpy,
    image_to_numpy,
    joint_state_to_core,
    pose_to_core,
    wrench_to_core,
)
from vla_stack.ros.node_runner import spin_node
from vla_stack.ros.params import (
    backend_config_from_parameters,
    backend_parameter_spec,
    config_from_parameters,
    dataclass_parameter_spec,
    declare_parameters,
    ros_seconds,
)

NODE_PARAMETERS: dict[str, tuple[Any, str]] = {
    "robot": (DEFAULT_ROBOT, "robot profile: name under config/robots or a YAML path (joint order, gripper, base frame)"),
    "backend": ("builtin", f"policy backend, one of {POLICIES.names()} (builtin: the shipped flow-matching expert; "
                "openpi: a remote server); its settings are the <backend>.* parameters"),
    "max_observation_age": (0.5, "never publish a chunk computed from an observation older than this, s"),
    "use_images": (False, "subscribe the prompted image + instruction (needed by image/prompt backends such as openpi)"),
    "status_period": (0.5, "period of action_expert/status, s"),
    "topics.joint_states": (itf.JOINT_STATES.name, "JointState input"),
    "topics.target": (itf.GROUNDING_TARGET.name, "grounded grasp point (PoseStamped, base frame)"),
    "topics.place_target": (itf.GROUNDING_PLACE.name, "place point from grounding (PoseStamped, base frame; used "
                            "when neither inputs.place_position nor the planner subtask gives one)"),
    "topics.prompted_image": (itf.PROMPTED_IMAGE.name, "highlighted image from grounding (rgb8)"),
    "topics.instruction": (itf.GROUNDING_INSTRUCTION.name, "rewritten instruction (String)"),
    "topics.subtask": (itf.PLANNER_SUBTASK.name, "planner subtask (String JSON)"),
    "topics.latent": (itf.PLANNER_LATENT.name, "planner latent (Float32MultiArray)"),
    "topics.wrench": (itf.WRENCH.name, "wrist wrench (WrenchStamped)"),
    "topics.chunk": (itf.ACTION_CHUNK.name, "output action chunks (JointTrajectory)"),
    **dataclass_parameter_spec(SchedulerConfig, prefix="scheduler."),
    **dataclass_parameter_spec(ObservationConfig, prefix="inputs."),
    **backend_parameter_spec(POLICIES),
}


class ActionExpertNode(Node):
    """Thin node around RealTimeChunker + ObservationBuilder (see the module docstring)."""

    def __init__(self, node_name: str = "action_expert") -> None:
        super().__init__(node_name)
        log = self.get_logger()
        p = declare_parameters(self, NODE_PARAMETERS)
        self.scheduler_config = config_from_parameters(SchedulerConfig, p, log, "scheduler.")
        self.inputs_config = config_from_parameters(ObservationConfig, p, log, "inputs.")
        try:
            self.profile = load_robot_profile(str(p["robot"]))
            self.builder = ObservationBuilder(self.inputs_config, hand_position=self._hand_model(log), profile=self.profile)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"action_expert: cannot use robot profile '{p['robot']}': {exc}") from exc
        backend = str(p["backend"])
        if backend not in POLICIES:
            log.error(f"backend '{backend}' unknown (known: {POLICIES.names()}); using builtin")
            backend = "builtin"
        try:
            self.policy = POLICIES.create(backend, config=backend_config_from_parameters(POLICIES, backend, p, log),
                                          profile=self.profile)
        except (PolicyError, ValueError, OSError) as exc:
            raise SystemExit(f"action_expert: cannot create the '{backend}' policy: {exc}") from exc
        self.max_observation_age = float(p["max_observation_age"])
        self.chunker = RealTimeChunker(self.policy, self.scheduler_config, max(1e-3, self.max_observation_age))
        meta = self.policy.metadata
        self.rejected: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}
        self.waiting_reason = "starting"

        # one executor thread: input callbacks only convert and store (microseconds); inference
        # runs in the chunker's worker thread, so the control tick never waits for the model
        def sub(topic: itf.Topic, name: str, cb):
            self.create_subscription(topic.msg_type, name, cb, topic.sub_qos)

        sub(itf.JOINT_STATES, str(p["topics.joint_states"]), self._on_joint_states)
        sub(itf.GROUNDING_TARGET, str(p["topics.target"]), self._on_target)
        sub(itf.GROUNDING_PLACE, str(p["topics.place_target"]), self._on_place)
        sub(itf.PLANNER_SUBTASK, str(p["topics.subtask"]), self._on_subtask)
        sub(itf.PLANNER_LATENT, str(p["topics.latent"]), self._on_latent)
        if bool(p["use_images"]):
            sub(itf.PROMPTED_IMAGE, str(p["topics.prompted_image"]), self._on_image)
            sub(itf.GROUNDING_INSTRUCTION, str(p["topics.instruction"]), self._on_instruction)
        if self.inputs_config.use_tactile:
            sub(itf.WRENCH, str(p["topics.wrench"]), self._on_wrench)
            for pad in self.inputs_config.tactile_pads:
                sub(itf.tactile_force(pad), itf.tactile_force(pad).name, lambda m, pad=pad: self._on_pad_force(pad, m))
                sub(itf.tactile_image(pad), itf.tactile_image(pad).name, lambda m, pad=pad: self._on_pad_image(pad, m))
        self.chunk_pub = self.create_publisher(itf.ACTION_CHUNK.msg_type, str(p["topics.chunk"]), itf.ACTION_CHUNK.pub_qos)
        status = itf.status("action_expert")
        self.status_pub = self.create_publisher(status.msg_type, status.name, status.pub_qos)
        self.create_service(itf.ACTION_EXPERT_RESET.srv_type, itf.ACTION_EXPERT_RESET.name, self._on_reset)
        self.create_timer(meta.control_period, self._tick)
        self.create_timer(float(p["status_period"]), self._publish_status)
        log.info(
            f"action_expert: backend {meta.name} (H={meta.horizon}, {meta.control_period * 1000:.0f} ms steps, "
            f"guidance {'yes' if meta.supports_guidance else 'no'}), strategy {self.scheduler_config.strategy} "
            f"(s={self.scheduler_config.execution_horizon}), chunks on {self.chunk_pub.topic_name}; "
            f"waiting for {p['topics.joint_states']} and {p['topics.target']}"
        )
        if self.scheduler_config.strategy == "rtc" and not meta.supports_guidance:
            log.warning(f"backend {meta.name} cannot take real-time chunking guidance: 'rtc' runs as naive_async")

    def _hand_model(self, log):
        """q (n,) -> TCP pose (4x4) in the base frame, for the in-hand target (needs the profile's URDF; else disabled)."""
        if not self.inputs_config.hand_target_when_holding:
            return None
        if self.profile.urdf is None:
            log.warning(f"inputs.hand_target_when_holding needs a hand model, but robot profile '{self.profile.name}' "
                        "has no urdf: disabled (the target stays grounding's while the object is held)")
            return None
        return self.profile.kinematics().fk  # q -> 4x4 TCP pose

    # ---- inputs ------------------------------------------------------------------------------------
    def _reject(self, what: str, exc: Exception) -> None:
        """Count a rejected input and log its reason (at most every 2 s per input and reason)."""
        code = getattr(exc, "code", "malformed")
        key = f"{what}:{code}"
        self.rejected[key] = self.rejected.get(key, 0) + 1
        now = time.monotonic()
        if now - self._last_logged.get(key, -math.inf) >= 2.0:
            self._last_logged[key] = now
            self.get_logger().warning(f"{exc} (rejected {self.rejected[key]} so far)")

    def _on_joint_states(self, msg) -> None:
        try:
            self.builder.update_joint_state(joint_state_to_core(msg))
        except (MessageError, InputRejected) as exc:
            self._reject("joint_states", exc)

    def _on_target(self, msg) -> None:
        try:
            self.builder.update_target(pose_to_core(msg))
        except MessageError as exc:
            self._reject("target", InputRejected("malformed", f"grounding target rejected: {exc}"))
        except InputRejected as exc:
            self._reject("target", exc)

    def _on_place(self, msg) -> None:
        try:
            self.builder.update_place(pose_to_core(msg))
        except MessageError as exc:
            self._reject("place", InputRejected("malformed", f"place target rejected: {exc}"))
        except InputRejected as exc:
            self._reject("place", exc)

    def _on_subtask(self, msg: String) -> None:
        now = ros_seconds(self)
        if now <= 0.0:
            # sim time not received yet (a node just started, e.g. after a restart): a receipt time of 0
            # would make the latched subtask look ancient; the planner republishes it every second
            return
        try:
            self.builder.update_subtask(msg.data, now)
        except InputRejected as exc:
            self._reject("subtask", exc)

    def _on_latent(self, msg) -> None:
        try:
            self.builder.update_latent(float32_array_to_numpy(msg), ros_seconds(self))
        except MessageError as exc:
            self._reject("latent", InputRejected("malformed", f"planner latent rejected: {exc}"))
        except InputRejected as exc:
            self._reject("latent", exc)

    def _on_image(self, msg) -> None:
        try:
            self.builder.update_image("prompted", image_to_numpy(msg).copy())
        except MessageError as exc:
            self._reject("image", InputRejected("malformed", f"prompted image rejected: {exc}"))
        except InputRejected as exc:
            self._reject("image", exc)

    def _on_instruction(self, msg: String) -> None:
        self.builder.update_instruction(msg.data)

    def _on_wrench(self, msg) -> None:
        try:
            self.builder.update_wrench(wrench_to_core(msg), ros_seconds(self))
        except MessageError as exc:
            self._reject("wrench", InputRejected("nan", f"wrench rejected: {exc}"))
        except InputRejected as exc:
            self._reject("wrench", exc)

    def _on_pad_force(self, pad: str, msg) -> None:
        try:
            self.builder.update_pad(pad, normal_force=float(wrench_to_core(msg).force[2]), now=ros_seconds(self))
        except MessageError as exc:
            self._reject("tactile", InputRejected("nan", f"tactile/{pad}/force rejected: {exc}"))
        except InputRejected as exc:
            self._reject("tactile", exc)

    def _on_pad_image(self, pad: str, msg) -> None:
        try:
            self.builder.update_pad(pad, pressure=image_to_numpy(msg), now=ros_seconds(self))
        except MessageError as exc:
            self._reject("tactile", InputRejected("malformed", f"tactile/{pad}/image rejected: {exc}"))
        except InputRejected as exc:
            self._reject("tactile", exc)

    def _on_reset(self, request, response):
        self.chunker.reset()
        self.builder.reset()
        response.success = True
        response.message = "action expert reset: chunks dropped, inputs forgotten"
        self.get_logger().info(response.message)
        return response

    # ---- control tick ------------------------------------------------------------------------------------
    def _tick(self) -> None:
        now = ros_seconds(self)
        if now <= 0.0:
            self.waiting_reason = "waiting for the clock (use_sim_time without /clock?)"
            return
        try:
            obs = self.builder.build(now)
            self.waiting_reason = ""
        except InputRejected as exc:
            obs = None
            if exc.code == "stale":
                self.rejected[f"observation:{exc.code}"] = self.rejected.get(f"observation:{exc.code}", 0) + 1
                self.get_logger().warning(exc.reason, throttle_duration_sec=2.0)
            elif exc.reason != self.waiting_reason:
                self.get_logger().info(exc.reason)
            self.waiting_reason = exc.reason
        out = self.chunker.tick(now, obs)
        for line in out.events:
            self.get_logger().warning(line, throttle_duration_sec=1.0)
        if out.chunk is not None:
            self.chunk_pub.publish(chunk_to_joint_trajectory(out.chunk))

    def _publish_status(self) -> None:
        stats = self.chunker.stats()
        stats["waiting_for"] = self.waiting_reason
        stats.update({f"rejected.{k}": v for k, v in sorted(self.rejected.items())})
        level = "OK"
        if stats["last_error"] or self.waiting_reason.startswith(("joint_states are", "grounding target is")):
            level = "WARN"
        latent_problem = str(getattr(self.chunker.policy, "last_latent_rejected", ""))
        if latent_problem:  # e.g. another planner model's latent: the expert acts on the subtask alone
            stats["latent_problem"] = latent_problem
            self.get_logger().warning(latent_problem, throttle_duration_sec=10.0)
        message = self.waiting_reason or (
            f"running: {stats['strategy']}, latency {stats['inference_latency_ms']} ms, delay {stats['measured_delay_steps']} steps"
        )
        self.status_pub.publish(diagnostics_msg("action_expert", level, message, stats, ros_seconds(self)))

    def stop(self) -> None:
        """Stop the inference thread (called by `spin_node` before the node is destroyed)."""
        self.chunker.close()


def main(args: list[str] | None = None) -> int:
    """Entry point of the `action_expert_node` executable."""
    return spin_node(ActionExpertNode, args)


if __name__ == "__main__":
    sys.exit(main())
