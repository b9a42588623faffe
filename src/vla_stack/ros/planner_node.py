"""planner_node: the slow planner (System 2) as a ROS 2 node around `vla_stack.core.planning.TaskPlanner`.

Subscribes (names from `vla_stack.ros.interfaces`, each overridable as `topics.<key>`):
- `task/instruction`, `task/feedback` (std_msgs/String): instructions and interjections;
- `grounding/instruction` (String, latched), `grounding/status` (DiagnosticArray: found /
  not_found / ambiguous / no_reference), `grounding/target` (PoseStamped, robot base frame);
- `joint_states` (gripper width from the finger joints, arm pose for go_home);
- `tactile/<pad>/force` for each pad in `tactile_sensors` (WrenchStamped, z = normal force, N)
  and `wrench` (wrist F/T): contact and hand-over pull;
- `grounding/prompted_image` (Image) only with the vlm backend and `vlm.use_image`.

Publishes:
- `planner/subtask` (String JSON, latched; `contracts.SubtaskMessage`: skill, arguments, index, status, ...)
  and `planner/latent` (Float32MultiArray, latched, 384 values: embedding of instruction +
  current subtask) every `publish_period` s and at once on every change;
- `planner/status` (DiagnosticArray, name "planner") likewise: state, plan, subtask, events;
- `grounding/exclude` (String JSON, latched) when the user says "not that one" and when a new
  task clears the exclusions;
- `grounding/select` (String JSON, `contracts.SelectionRequest`) when the user chooses among the
  candidates grounding asks about ("the left one", "the second one", a click `{"select": 1}` on
  task/feedback) or confirms the found object ("yes, that one"); planner/status then carries the
  question ("I can't tell which cup is yours: 2 candidates, left 0.91, right 0.90 — which one?")
  in its message and the value `question`.

Services (std_srvs/Trigger): `~/reset` forgets the task, plan, memory and exclusions (new
episode); `~/confirm_resume` starts a task found in the resume file (see below).

Restart: the running task's instruction is kept in `resume_file` together with the bring-up's run
id (environment variable VLA_STACK_RUN_ID, set once per `vla-stack up` / `ros2 launch` / demo and
kept across respawns). A planner started later considers that task only when it was saved by the
same run and less than `resume_window` s ago; a task of another run (or from a planner without a
run id) is dropped, so a new bring-up never picks up an old instruction. Even then it does not move
the robot on its own: the task waits (reported on planner/status, `resume_pending`) until it is
confirmed by `~/confirm_resume` or by the instruction being sent again, unless `resume_autostart`
is true (for profiles that respawn the planner). Once resumed, the monitor sees what is already
done (e.g. the object in the hand), so a planner killed and restarted mid-task completes the task.

Nothing is published on planner/subtask before the first accepted plan: a garbage instruction
shows up on planner/status only.

Threads: the executor runs the (fast) callbacks and timers; a worker thread loads the model,
runs the planner backend and computes latents, so embedding never blocks a callback.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node

from vla_stack.bringup import RUN_ID_ENV
from vla_stack.core.contracts import encode_exclusion, encode_selection, encode_subtask
from vla_stack.core.planning import (
    PLANNERS,
    MonitorConfig,
    TaskPlanner,
    TaskPlannerConfig,
)
from vla_stack.core.planning.backends.base import PlannerBackend
from vla_stack.core.planning.monitor import grounding_status_from_report
from vla_stack.core.planning.selection import grounding_choice_from_report
from vla_stack.core.robot_profile import DEFAULT_ROBOT, load_robot_profile
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import (
    MessageError,
    diagnostics_msg,
    diagnostics_to_dict,
    image_to_numpy,
    joint_state_to_core,
    numpy_to_float32_array,
    pose_to_core,
    wrench_to_core,
)
from vla_stack.ros.node_runner import spin_node
from vla_stack.ros.params import (
    backend_config_from_parameters,
    backend_parameter_spec,
    bounded_float,
    config_from_parameters,
    dataclass_parameter_spec,
    declare_parameters,
    ros_seconds,
)

STATUS_TOPIC = itf.status("planner")

NODE_PARAMETERS: dict[str, tuple[Any, str]] = {
    "robot": (DEFAULT_ROBOT, "robot profile: name under config/robots or a YAML path (joints, gripper, ready pose)"),
    "backend": ("offline", f"planner backend, one of {PLANNERS.names()} (offline: sentence embeddings, SayCan-style; "
                "vlm: local VLM, JSON plan); its settings are the <backend>.* parameters, and offline is every "
                "other backend's fallback"),
    "publish_period": (1.0, "republish subtask, latent and status every this many s (changes go out at once)"),
    "step_period": (0.1, "progress-monitor period, s"),
    "resume_file": ("auto", "file the running task is kept in so a restarted planner resumes it ('auto' = "
                    "~/.ros/vla_stack/planner_task_<ROS_DOMAIN_ID>.json, '' = never resume)"),
    "resume_window": (120.0, "a task saved longer ago than this (wall clock, s) is not resumed"),
    "resume_autostart": (False, "a task saved by this same run (VLA_STACK_RUN_ID) resumes without confirmation "
                         "(for respawns); false = it waits for ~/confirm_resume or the instruction again"),
    "tactile_sensors": (["left", "right"], "fingertip pads: subscribes tactile/<pad>/force (WrenchStamped, z = normal force)"),
    "topics.instruction": (itf.INSTRUCTION.name, "instruction input (String)"),
    "topics.feedback": (itf.FEEDBACK.name, "feedback / interjection input (String)"),
    "topics.grounding_instruction": (itf.GROUNDING_INSTRUCTION.name, "rewritten instruction from grounding (String)"),
    "topics.grounding_status": (itf.status("grounding").name, "grounding status (DiagnosticArray)"),
    "topics.grounding_target": (itf.GROUNDING_TARGET.name, "grasp point of the grounded object (PoseStamped)"),
    "topics.grounding_image": (itf.PROMPTED_IMAGE.name, "prompted image for the vlm backend (Image)"),
    "topics.grounding_exclude": (itf.GROUNDING_EXCLUDE.name, "exclusion requests to grounding (String JSON)"),
    "topics.grounding_select": (itf.GROUNDING_SELECT.name, "the user's choice of candidate to grounding (String JSON)"),
    "topics.joint_states": (itf.JOINT_STATES.name, "joint states (JointState)"),
    "topics.wrench": (itf.WRENCH.name, "wrist force/torque (WrenchStamped)"),
    "topics.subtask": (itf.PLANNER_SUBTASK.name, "current subtask output (String JSON)"),
    "topics.latent": (itf.PLANNER_LATENT.name, "latent output (Float32MultiArray)"),
    "topics.status": (STATUS_TOPIC.name, "planner status output (DiagnosticArray)"),
}


def planner_parameter_spec() -> dict[str, tuple[Any, str]]:
    """Every parameter of the node: node settings, TaskPlannerConfig, monitor.*, and <backend>.* of
    every registered planner backend (from its config class)."""
    return {
        **NODE_PARAMETERS,
        **dataclass_parameter_spec(TaskPlannerConfig),
        **dataclass_parameter_spec(MonitorConfig, prefix="monitor."),
        **backend_parameter_spec(PLANNERS),
    }


class PlannerNode(Node):
    """Thin ROS wrapper of `TaskPlanner` (see the module docstring)."""

    def __init__(self, node_name: str = "planner_node") -> None:
        super().__init__(node_name)
        log = self.get_logger()
        values = declare_parameters(self, planner_parameter_spec())
        self.values = values
        planner_config = config_from_parameters(TaskPlannerConfig, values, log)
        monitor_config = config_from_parameters(MonitorConfig, values, log, prefix="monitor.")
        self.offline_config = backend_config_from_parameters(PLANNERS, "offline", values, log)
        self.backend_name = str(values["backend"])
        self.publish_period = self._bounded(values, "publish_period", 0.05, 60.0, 1.0)
        step_period = self._bounded(values, "step_period", 0.01, 5.0, 0.1)
        self.backend = self._make_backend(values)
        self._planner_configs = (planner_config, monitor_config)
        try:
            self.profile = load_robot_profile(str(values["robot"]))
            self.planner = TaskPlanner(self.backend, planner_config, monitor_config, clock=lambda: ros_seconds(self),
                                       logger=log, profile=self.profile)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"planner_node: cannot use robot profile '{values['robot']}': {exc}") from exc

        def topic(key: str) -> str:
            return str(values[f"topics.{key}"])

        # ---- publishers
        self.subtask_pub = self.create_publisher(itf.PLANNER_SUBTASK.msg_type, topic("subtask"), itf.PLANNER_SUBTASK.pub_qos)
        self.latent_pub = self.create_publisher(itf.PLANNER_LATENT.msg_type, topic("latent"), itf.PLANNER_LATENT.pub_qos)
        self.status_pub = self.create_publisher(STATUS_TOPIC.msg_type, topic("status"), STATUS_TOPIC.pub_qos)
        self.exclude_pub = self.create_publisher(
            itf.GROUNDING_EXCLUDE.msg_type, topic("grounding_exclude"), itf.GROUNDING_EXCLUDE.pub_qos
        )
        self.select_pub = self.create_publisher(
            itf.GROUNDING_SELECT.msg_type, topic("grounding_select"), itf.GROUNDING_SELECT.pub_qos
        )

        # ---- subscriptions
        self.create_subscription(itf.INSTRUCTION.msg_type, topic("instruction"), self._on_instruction, itf.INSTRUCTION.sub_qos)
        self.create_subscription(itf.FEEDBACK.msg_type, topic("feedback"), self._on_feedback, itf.FEEDBACK.sub_qos)
        self.create_subscription(
            itf.GROUNDING_INSTRUCTION.msg_type, topic("grounding_instruction"), self._on_grounding_instruction,
            itf.GROUNDING_INSTRUCTION.sub_qos,
        )
        grounding_status = itf.status("grounding")
        self.create_subscription(
            grounding_status.msg_type, topic("grounding_status"), self._on_grounding_status, grounding_status.sub_qos
        )
        self.create_subscription(
            itf.GROUNDING_TARGET.msg_type, topic("grounding_target"), self._on_grounding_target, itf.GROUNDING_TARGET.sub_qos
        )
        self.create_subscription(itf.JOINT_STATES.msg_type, topic("joint_states"), self._on_joint_states, itf.JOINT_STATES.sub_qos)
        self.create_subscription(itf.WRENCH.msg_type, topic("wrench"), self._on_wrench, itf.WRENCH.sub_qos)
        pads = [str(p).strip().strip("/") for p in values["tactile_sensors"] if str(p).strip()]
        for pad in pads:
            t = itf.tactile_force(pad)
            self.create_subscription(t.msg_type, t.name, lambda msg, pad=pad: self._on_pad_force(pad, msg), t.sub_qos)
        if bool(getattr(getattr(self.backend, "config", None), "use_image", False)):
            self.create_subscription(itf.PROMPTED_IMAGE.msg_type, topic("grounding_image"), self._on_image, itf.PROMPTED_IMAGE.sub_qos)

        # ---- worker, timers
        self._pub_lock = threading.Lock()
        self._published_version = -1
        self._published_exclusions = 0
        self._published_selections = 0
        self._latent: np.ndarray | None = None
        self._latent_key: tuple[str, str] | None = None
        self._model_ready = False
        self._model_error = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="planner-worker", daemon=True)
        self._worker.start()
        self.create_service(itf.PLANNER_RESET.srv_type, itf.PLANNER_RESET.name, self._on_reset)
        self.create_service(itf.PLANNER_CONFIRM_RESUME.srv_type, itf.PLANNER_CONFIRM_RESUME.name, self._on_confirm_resume)
        self.confirm_service = self.resolve_service_name(itf.PLANNER_CONFIRM_RESUME.name)  # full name, for log lines
        self.resume_path = self._resume_path(str(values["resume_file"]))
        self.resume_window = self._bounded(values, "resume_window", 0.0, 86400.0, 120.0)
        self.resume_autostart = bool(values["resume_autostart"])
        self.run_id = os.environ.get(RUN_ID_ENV, "").strip()
        self._saved_task = ""
        self._pending_resume = ""  # a saved task of this run waiting for confirmation
        self._resume_task()
        self.create_timer(step_period, self._on_step)
        self.create_timer(self.publish_period, self._on_publish_timer)
        log.info(
            f"planner_node: backend '{self.backend.name}', instructions on {topic('instruction')}, feedback on "
            f"{topic('feedback')}, subtask -> {self.subtask_pub.topic_name}, latent -> {self.latent_pub.topic_name}, "
            f"pads {pads or 'none'}; loading the planner model in the background"
        )

    # ------------------------------------------------------------------ setup helpers
    def _bounded(self, values: dict, name: str, lo: float, hi: float, default: float) -> float:
        return bounded_float(values, name, lo, hi, default, self.get_logger())

    def _make_backend(self, values: dict) -> PlannerBackend:
        log = self.get_logger()
        offline = PLANNERS.create("offline", config=self.offline_config)
        if self.backend_name == "offline":
            return offline
        if self.backend_name not in PLANNERS:
            log.error(f"planner_node: unknown backend '{self.backend_name}' (known: {PLANNERS.names()}); using 'offline'")
            return offline
        cfg = backend_config_from_parameters(PLANNERS, self.backend_name, values, log)
        try:  # every other backend falls back to the offline planner (invalid output, latents)
            return PLANNERS.create(self.backend_name, config=cfg, fallback=offline)
        except (FileNotFoundError, ImportError, OSError, ValueError) as exc:
            log.error(f"planner_node: {self.backend_name} backend unavailable ({exc}); using the offline planner instead")
            self.backend_name = f"offline ({self.backend_name} failed to load)"
            return offline

    # ------------------------------------------------------------------ resume after a restart
    def _resume_path(self, value: str) -> Path | None:
        if not value:
            return None
        if value == "auto":
            domain = os.environ.get("ROS_DOMAIN_ID", "0") or "0"
            ns = self.get_namespace().strip("/").replace("/", "_")
            return Path.home() / ".ros" / "vla_stack" / f"planner_task_{domain}{'_' + ns if ns else ''}.json"
        return Path(value).expanduser()

    def _resume_task(self) -> None:
        """Look at the task saved by a previous planner process (see the module docstring): drop it
        unless it belongs to this run and is recent; then resume it (`resume_autostart`) or hold it
        until it is confirmed. The monitor then sees what is already done (e.g. the object in the hand)."""
        path = self.resume_path
        if path is None or not path.is_file():
            return
        log = self.get_logger()
        try:
            data = json.loads(path.read_text())
            text, saved = str(data["instruction"]), float(data["wall_time"])
            saved_run = str(data.get("run_id", ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(f"ignoring the saved task in {path}: {exc}")
            return
        age = time.time() - saved
        found = f"found saved task {text!r} in {path} ({age:.0f} s old, run {saved_run or 'unknown'})"
        if not self.run_id:
            log.warning(f"{found}: not resumed, this planner has no run id ({RUN_ID_ENV} unset: started outside "
                        "`vla-stack up` / `ros2 launch`), so the task may belong to an earlier bring-up; send the "
                        "instruction again to run it")
            self._forget_task()
            return
        if saved_run != self.run_id:
            log.warning(f"{found}: not resumed, it belongs to another bring-up (this run is {self.run_id}); "
                        "send the instruction again to run it")
            self._forget_task()
            return
        if not text or age > self.resume_window:
            log.info(f"{found}: not resumed, older than resume_window ({self.resume_window:g} s)")
            self._forget_task()
            return
        self._saved_task = text  # the file stays until the task ends or is dropped
        if self.resume_autostart:
            log.warning(f"{found}: resuming it (same run, resume_autostart: true)")
            self._start_resumed(text)
            return
        self._pending_resume = text
        log.warning(f"{found}: same run, waiting for confirmation before moving. To resume it: "
                    f"`ros2 service call {self.confirm_service} std_srvs/srv/Trigger` or send the instruction "
                    "again (a different instruction drops it; resume_autostart: true skips the confirmation)")

    def _start_resumed(self, text: str) -> None:
        self._pending_resume = ""
        self.planner.on_instruction(text)
        self._wake.set()

    def _on_confirm_resume(self, request, response):
        """Start the saved task held since start-up (std_srvs/Trigger; fails when there is none)."""
        text = self._pending_resume
        if not text:
            response.success = False
            response.message = "no saved task is waiting for confirmation"
            return response
        self.get_logger().warning(f"resume of {text!r} confirmed by {self.confirm_service}: resuming it")
        self._start_resumed(text)
        self._publish_if_changed()
        response.success = True
        response.message = f"resuming {text!r}"
        return response

    def _save_task(self) -> None:
        path = self.resume_path
        if path is None:
            return
        running = self.planner.state in ("grounding", "planning", "executing") and self.planner.instruction
        text = self.planner.instruction if running else self._pending_resume  # a held task stays saved
        if text == self._saved_task:
            return
        try:
            if text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"instruction": text, "wall_time": time.time(), "run_id": self.run_id}))
            else:
                path.unlink(missing_ok=True)
            self._saved_task = text
        except OSError as exc:
            self.get_logger().warning(f"cannot save the running task to {path}: {exc} (a restart will not resume it)",
                                      throttle_duration_sec=60.0)

    def _forget_task(self) -> None:
        if self.resume_path is not None:
            self.resume_path.unlink(missing_ok=True)
        self._saved_task = ""
        self._pending_resume = ""

    def _on_reset(self, request, response):
        """Forget the task, the plan, the memory of completed tasks and the exclusions (a new episode)."""
        with self._pub_lock:
            old = self.planner
            self.planner = TaskPlanner(self.backend, *self._planner_configs, clock=lambda: ros_seconds(self),
                                       logger=self.get_logger(), profile=self.profile)
            self._published_version = -1
            self._published_selections = 0
            cleared = old.exclusion_version != 0
        if cleared:  # tell grounding the exclusions are gone
            self.exclude_pub.publish(itf.GROUNDING_EXCLUDE.msg_type(data=encode_exclusion(self.planner.exclusion_request())))
        self._forget_task()
        self.get_logger().info("reset: task, plan, memory and exclusions forgotten")
        response.success = True
        response.message = "planner reset"
        return response

    # ------------------------------------------------------------------ callbacks (fast)
    def _on_instruction(self, msg) -> None:
        self.get_logger().info(f"instruction: {msg.data[:120]!r}")
        if self._pending_resume:
            same = msg.data.strip() == self._pending_resume.strip()
            self.get_logger().info(f"saved task {self._pending_resume!r} " + (
                "confirmed by the same instruction" if same else "dropped: a new instruction replaces it"))
            self._pending_resume = ""
        self.planner.on_instruction(msg.data)
        self._after_input()

    def _on_feedback(self, msg) -> None:
        self.get_logger().info(f"feedback: {msg.data[:120]!r}")
        self.planner.on_feedback(msg.data)
        self._after_input()

    def _on_grounding_instruction(self, msg) -> None:
        self.planner.on_grounding_instruction(msg.data)
        self._after_input()

    def _on_grounding_status(self, msg) -> None:
        report = diagnostics_to_dict(msg)
        parsed = grounding_status_from_report(report)
        if parsed is None:
            self.get_logger().warning("grounding status without a found/not_found/ambiguous status; ignored",
                                      throttle_duration_sec=5.0)
            return
        self.planner.on_grounding_status(*parsed, choice=grounding_choice_from_report(report))
        self._after_input()

    def _on_grounding_target(self, msg) -> None:
        try:
            self.planner.on_grounding_target(pose_to_core(msg))
        except MessageError as exc:
            self.get_logger().warning(f"grounding target rejected: {exc}; keeping the previous one", throttle_duration_sec=2.0)

    def _on_joint_states(self, msg) -> None:
        try:
            problem = self.planner.on_joint_state(joint_state_to_core(msg))
        except MessageError as exc:
            problem = f"joint_states rejected: {exc}"
        if problem:
            self.get_logger().warning(f"{problem}; progress is judged on the last good values", throttle_duration_sec=2.0)

    def _on_pad_force(self, pad: str, msg) -> None:
        try:
            problem = self.planner.on_pad_force(pad, float(wrench_to_core(msg).force[2]))
        except MessageError as exc:
            problem = f"tactile force of pad '{pad}' rejected: {exc}"
        if problem:
            self.get_logger().warning(problem, throttle_duration_sec=2.0)

    def _on_wrench(self, msg) -> None:
        try:
            problem = self.planner.on_wrench(wrench_to_core(msg))
        except MessageError as exc:
            problem = f"wrench rejected: {exc}"
        if problem:
            self.get_logger().warning(problem, throttle_duration_sec=2.0)

    def _on_image(self, msg) -> None:
        try:
            image = image_to_numpy(msg)
        except MessageError as exc:
            self.get_logger().warning(f"prompted image rejected: {exc}", throttle_duration_sec=5.0)
            return
        if image.ndim == 3 and image.shape[2] >= 3:
            self.planner.on_image(np.array(image[..., :3]))

    def _after_input(self) -> None:
        self._wake.set()
        self._publish_if_changed()

    def _on_step(self) -> None:
        self.planner.step()
        if self.planner.has_job():
            self._wake.set()
        self._publish_if_changed()

    def _on_publish_timer(self) -> None:
        self._publish(force=True)

    # ------------------------------------------------------------------ worker (slow)
    def _work(self) -> None:
        try:
            warm = getattr(self.backend, "warm_up", None) or getattr(getattr(self.backend, "fallback", None), "warm_up", None)
            if warm is not None:
                warm()
            self._model_ready = True
            self.get_logger().info("planner_node: planner model ready")
        except Exception as exc:  # noqa: BLE001 - report and keep the node alive
            self._model_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"planner_node: cannot load the planner model ({self._model_error}); nothing will be planned")
        self._publish(force=True)
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            if self._stop.is_set() or not self._model_ready:
                continue
            job = self.planner.take_job()
            if job is not None:
                self.planner.run_job(job)
                self._publish_if_changed()
            self._update_latent()

    def _update_latent(self) -> None:
        key = self.planner.latent_key()
        if key is None:
            return
        text, subtask = key
        short = (text, subtask.description if subtask is not None else "")
        if short == self._latent_key:
            return
        try:
            vec = np.asarray(self.backend.latent(text, subtask), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"latent computation failed ({exc}); keeping the previous latent", throttle_duration_sec=5.0)
            return
        self._latent, self._latent_key = vec, short
        with self._pub_lock:
            if self._stop.is_set():  # stopping: the context may be gone once stop() returned
                return
            self.latent_pub.publish(numpy_to_float32_array(vec, ["latent"]))

    # ------------------------------------------------------------------ publishing
    def _publish_if_changed(self) -> None:
        if self.planner.version != self._published_version:
            self._publish(force=False)
            self._wake.set()  # the latent may need recomputing

    def _publish(self, force: bool) -> None:
        with self._pub_lock:
            if self._stop.is_set():  # stopping: the context may be gone once stop() returned
                return
            version = self.planner.version
            if not force and version == self._published_version:
                return
            self._published_version = version
            subtask = self.planner.current_subtask()
            if subtask is not None:
                self.subtask_pub.publish(itf.PLANNER_SUBTASK.msg_type(data=encode_subtask(subtask.to_message())))
            if force and self._latent is not None:
                self.latent_pub.publish(numpy_to_float32_array(self._latent, ["latent"]))
            if self.planner.exclusion_version != self._published_exclusions:
                self._published_exclusions = self.planner.exclusion_version
                self.exclude_pub.publish(itf.GROUNDING_EXCLUDE.msg_type(data=encode_exclusion(self.planner.exclusion_request())))
            selection = self.planner.selection_request()
            if self.planner.selection_version != self._published_selections and selection is not None:
                self._published_selections = self.planner.selection_version
                self.select_pub.publish(itf.GROUNDING_SELECT.msg_type(data=encode_selection(selection)))
            self.status_pub.publish(self._status_msg())
            self._save_task()

    def _status_msg(self):
        status = self.planner.status()
        level, message = status.level, status.message
        values = dict(status.values)
        values["model_ready"] = self._model_ready
        if not self._model_ready:
            if self._model_error:
                level, message = "ERROR", f"planner model failed to load: {self._model_error}"
            elif status.values["state"] in ("idle", "grounding", "planning"):
                message = f"loading the planner model; {message}"
        values["backend"] = self.backend_name
        values["resume_pending"] = self._pending_resume
        if self._pending_resume and status.values["state"] in ("idle", "done", "failed", "rejected"):
            level = "WARN" if level == "OK" else level
            message = (f"saved task {self._pending_resume!r} waits for confirmation: call {self.confirm_service} "
                       f"or send the instruction again; {message}")
        return diagnostics_msg("planner", level, message, values, ros_seconds(self))

    def stop(self) -> None:
        """Stop the worker thread. Once this returns nothing publishes any more (the flag is checked
        under the publish lock), even if the worker is still inside a long model call."""
        self._stop.set()
        self._wake.set()
        with self._pub_lock:  # waits for a publish in flight
            pass
        self._worker.join(timeout=2.0)


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vla_stack planner_node` / `vla-stack up`."""
    return spin_node(PlannerNode, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
