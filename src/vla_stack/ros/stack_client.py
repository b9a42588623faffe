"""`StackClient`: one client for a running vla_stack, for scripts that drive a robot (like nav2_simple_commander).

    from vla_stack.ros.stack_client import StackClient

    client = StackClient()                       # own rclpy context and node; namespace="robot1" to attach there
    client.start_profile("sim")                  # or skip it to attach to a stack started by `vla-stack up` / launch
    client.wait_until_ready(timeout=120.0)       # nodes up, status flowing, joint states advancing in (sim) time
    client.send_instruction("bring my cup to the tray")
    client.wait_for(lambda s: s.planner_state == "done", timeout=120.0)
    print(client.status())                       # planner subtask/state, grounding status, safety state, chunk count
    client.estop()                               # latched stop; estop(False) + reset_node("safety") releases it
    client.close()                               # stops the nodes it started, then its own node

What it talks to (topic and service names relative, so a namespace applies to all of them):
publishes `task/instruction`, `task/feedback`, `safety/estop` and (simulator only) `sim/reset`;
subscribes to the nodes' `*/status` diagnostics, `planner/subtask`, `grounding/instruction`,
`action_expert/chunk` (counted), `joint_states` and, with `watch_images=True`,
`grounding/prompted_image`; calls the `std_srvs/Trigger` reset services of the safety
controller, action expert, planner and grounding node.

The client spins its node in a background thread; every method may be called from the
caller's thread. Waits poll a `StackStatus` snapshot (wall-clock timeouts, s). Nothing here
reads evaluation-only topics: the lab (`vla_stack.lab.demo_runner`) extends the client for that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.logging import LoggingSeverity
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from vla_stack.bringup import ProcessGroup, Profile, load_profile
from vla_stack.core.contracts import ContractError, SimReset, encode_sim_reset, parse_subtask
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import MessageError, diagnostics_to_dict, image_to_numpy, stamp_to_seconds

STATUS_TOPICS = {"planner": "planner", "grounding": "grounding", "action_expert": "action_expert",
                 "safety_controller": "safety"}
"""Status report name -> node whose `<node>/status` diagnostics it is."""

RESET_SERVICES = {"planner": itf.PLANNER_RESET.path(), "grounding": itf.GROUNDING_RESET.path(),
                  "action_expert": itf.ACTION_EXPERT_RESET.path(), "safety": itf.SAFETY_RESET.path()}
"""Node -> its std_srvs/Trigger reset service (relative name)."""

RESET_ORDER = ("safety", "action_expert", "planner", "grounding")
"""Order of the node resets in `reset()`: stop motion first, then the producers of motion, then their inputs."""


class StackNotReady(RuntimeError):
    """The stack did not come up: a node died during start-up or readiness timed out (the message says which)."""


@dataclass(frozen=True)
class StackStatus:
    """What the client has observed since its last `forget()` (a copy; safe to keep).

    Args:
        status: latest diagnostics per node ("planner", "grounding", "action_expert",
            "safety_controller"): {"level", "message", **values}, every value a string.
        subtask: the planner's current subtask (JSON of `planner/subtask`: skill, arguments, index, status).
        rewritten: grounding's rewritten instruction ("" until one arrives).
        chunks: action chunks seen on `action_expert/chunk`.
        joints: joint name -> (position rad or m, velocity rad/s or m/s), from the latest `joint_states`.
        joint_stamp: header stamp of that message, s (sim time when the stack runs on sim time).
        joint_messages: joint_states messages received.
        frame: latest `grounding/prompted_image`, RGB uint8 (H, W, 3), or None (only with watch_images).
        frame_count: prompted images received.
    """

    status: dict[str, dict[str, str]] = field(default_factory=dict)
    subtask: dict[str, Any] = field(default_factory=dict)
    rewritten: str = ""
    chunks: int = 0
    joints: dict[str, tuple[float, float]] = field(default_factory=dict)
    joint_stamp: float = 0.0
    joint_messages: int = 0
    frame: np.ndarray | None = None
    frame_count: int = 0

    @property
    def planner_state(self) -> str:
        """The planner's state ("idle", "planning", "executing", "done", "failed", ...; "" before its first status)."""
        return self.status.get("planner", {}).get("state", "")

    @property
    def grounding_status(self) -> str:
        """Grounding's status ("found", "ambiguous", "not_found", ...; "" before its first status)."""
        return self.status.get("grounding", {}).get("status", "")

    @property
    def safety_state(self) -> str:
        """The safety controller's state ("ACTIVE", "HOLDING", "STOPPING", "ESTOP", "FAULT"; "" before its first status)."""
        return self.status.get("safety_controller", {}).get("state", "")

    @property
    def safety_message(self) -> str:
        """The safety controller's status message (its state first, e.g. "FAULT: ..."; "" before its first status)."""
        return str(self.status.get("safety_controller", {}).get("message", ""))


def _wait(predicate: Callable[[], bool], timeout: float, period: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return False


class StackClient:
    """Start or attach to a vla_stack, wait until it is ready, talk to it, reset it, stop it.

    Args:
        namespace: ROS namespace of the stack ("" = none); the client's node lives there too.
        context: rclpy context to use (None: the client creates, initialises and later shuts down its own).
        node_name: name of the client's node.
        watch_images: also subscribe to `grounding/prompted_image` (StackStatus.frame); costs a
            640x480 image copy per frame.
        use_sim_time: run the client's node on /clock.
    """

    status_type: type[StackStatus] = StackStatus
    """Type of the snapshots `status()` returns (subclasses extend StackStatus with their own fields)."""

    def __init__(self, namespace: str = "", context: Context | None = None, node_name: str = "vla_stack_client",
                 watch_images: bool = False, use_sim_time: bool = False) -> None:
        self.namespace = namespace
        self._own_context = context is None
        self.context = context if context is not None else Context()
        if self._own_context:
            rclpy.init(context=self.context)
        overrides = [Parameter("use_sim_time", Parameter.Type.BOOL, True)] if use_sim_time else None
        self.node = rclpy.create_node(node_name, namespace=namespace, context=self.context,
                                      parameter_overrides=overrides)
        self.node.get_logger().set_level(LoggingSeverity.WARN)
        self.lock = threading.Lock()
        self.group: ProcessGroup | None = None
        self.forget()
        n = self.node
        n.create_subscription(String, itf.PLANNER_SUBTASK.name, self._on_subtask, itf.PLANNER_SUBTASK.sub_qos)
        n.create_subscription(String, itf.GROUNDING_INSTRUCTION.name, self._on_rewritten, itf.GROUNDING_INSTRUCTION.sub_qos)
        n.create_subscription(itf.ACTION_CHUNK.msg_type, itf.ACTION_CHUNK.name, self._on_chunk, itf.ACTION_CHUNK.sub_qos)
        n.create_subscription(itf.JOINT_STATES.msg_type, itf.JOINT_STATES.name, self._on_joints, itf.JOINT_STATES.sub_qos)
        if watch_images:
            n.create_subscription(itf.PROMPTED_IMAGE.msg_type, itf.PROMPTED_IMAGE.name, self._on_image,
                                  itf.PROMPTED_IMAGE.sub_qos)
        for name, topic_node in STATUS_TOPICS.items():
            topic = itf.status(topic_node)
            n.create_subscription(topic.msg_type, topic.name, lambda m, k=name: self._on_status(k, m), topic.sub_qos)
        self.instruction_pub = n.create_publisher(String, itf.INSTRUCTION.name, itf.INSTRUCTION.pub_qos)
        self.feedback_pub = n.create_publisher(String, itf.FEEDBACK.name, itf.FEEDBACK.pub_qos)
        self.estop_pub = n.create_publisher(Bool, itf.ESTOP.name, itf.ESTOP.pub_qos)
        self.sim_reset_pub = n.create_publisher(String, itf.SIM_RESET.name, itf.SIM_RESET.pub_qos)
        self.reset_clients = {name: n.create_client(Trigger, srv) for name, srv in RESET_SERVICES.items()}
        self._create_subscriptions()
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f"{node_name}_spin", daemon=True)
        self._thread.start()

    # ---- extension points (the lab's evaluators add evaluation-only topics) --------------------------------
    def _create_subscriptions(self) -> None:
        """Subclasses add their own subscriptions here (called once, before spinning starts)."""

    def _forget_extra(self) -> None:
        """Subclasses clear their own observations here (called under `self.lock` by `forget()`)."""

    # ---- start / attach -----------------------------------------------------------------------------------
    def start_profile(self, profile: str | Profile = "sim", overrides: Mapping[str, Mapping[str, Any]] | None = None,
                      sink: Callable[[str], None] | None = None, use_sim_time: bool | None = None) -> ProcessGroup:
        """Start the nodes of `profile` (a config/profiles name or a loaded Profile) in the client's namespace.

        Args:
            overrides: parameters per node executable, on top of the profile's
                ({"sim_node": {"seed": 3}, "planner_node": {"resume_file": ""}}).
            sink: where the nodes' prefixed output lines go (default: print).
            use_sim_time: force use_sim_time on every node (None: leave it to the parameter files).

        Returns the started ProcessGroup (also `self.group`; `close()` stops it). Call
        `wait_until_ready()` next.
        """
        prof = load_profile(profile) if isinstance(profile, str) else profile
        extra = overrides or {}
        nodes = tuple(replace(n, overrides={**n.overrides, **extra.get(n.executable, {})}) for n in prof.nodes)
        self.group = ProcessGroup(replace(prof, nodes=nodes), namespace=self.namespace, use_sim_time=use_sim_time,
                                  sink=sink)
        self.forget()
        self.group.start()
        return self.group

    def is_ready(self, snapshot: StackStatus | None = None) -> bool:
        """True when the stack can take an instruction.

        The planner's model is loaded; the action expert and the safety controller report status;
        instruction and feedback have their subscribers (grounding + planner, planner); every
        reset service answers; joint states arrive and their stamps advance (the robot's or the
        simulator's clock runs).
        """
        s = snapshot or self.status()
        return (s.status.get("planner", {}).get("model_ready") == "True"
                and "action_expert" in s.status and "safety_controller" in s.status
                and self.instruction_pub.get_subscription_count() >= 2
                and self.feedback_pub.get_subscription_count() >= 1
                and all(c.service_is_ready() for c in self.reset_clients.values())
                and s.joint_messages >= 2 and s.joint_stamp > self._first_joint_stamp)

    def wait_until_ready(self, timeout: float = 120.0, extra: Callable[[Any], bool] | None = None) -> float:
        """Block until `is_ready()` (and `extra(status())`, if given); returns the seconds it took.

        Raises StackNotReady when a node this client started exits meanwhile, or after `timeout` s
        (the message names the nodes that never reported); the nodes this client started are
        stopped first.
        """
        t0 = time.monotonic()
        while True:
            snap = self.status()
            if self.is_ready(snap) and (extra is None or extra(snap)):
                return time.monotonic() - t0
            dead = self.group.check() if self.group is not None else None
            if dead:
                self.stop_stack()
                raise StackNotReady(f"{dead} exited during start-up")
            if time.monotonic() - t0 > timeout:
                missing = [n for n in ("planner", "action_expert", "safety_controller") if n not in snap.status]
                self.stop_stack()
                raise StackNotReady(f"stack not ready within {timeout:.0f} s (no status from {missing or 'none'}; "
                                    "planner model still loading?)")
            time.sleep(0.1)

    # ---- talk ---------------------------------------------------------------------------------------------
    def send_instruction(self, text: str) -> None:
        """Publish a task on `task/instruction` (grounding and planner take it)."""
        self.instruction_pub.publish(String(data=text))

    def send_feedback(self, text: str) -> None:
        """Publish an interjection on `task/feedback` ("stop", "not that one", a new task ...; the planner takes it)."""
        self.feedback_pub.publish(String(data=text))

    def estop(self, engaged: bool = True) -> None:
        """Publish `safety/estop`: True latches the safety controller's stop (the arm stops and holds).

        To release: `estop(False)` (the button is up), then `reset_node("safety")` (refused while pressed).
        """
        self.estop_pub.publish(Bool(data=bool(engaged)))

    # ---- reset --------------------------------------------------------------------------------------------
    def reset_node(self, name: str, timeout: float = 10.0) -> tuple[bool, str]:
        """Call one node's reset service ("safety", "action_expert", "planner", "grounding"); (success, message)."""
        client = self.reset_clients[name]
        if not client.wait_for_service(timeout_sec=timeout):
            return False, f"{client.srv_name} not available"
        future = client.call_async(Trigger.Request())
        if not _wait(future.done, timeout, 0.02):
            return False, f"{client.srv_name} did not answer within {timeout:.0f} s"
        result = future.result()
        return bool(result.success), str(result.message)

    def reset(self, scene: Mapping[str, Any] | None = None, scene_ready: Callable[[Any], bool] | None = None,
              scene_timeout: float = 30.0) -> None:
        """Start a new episode: (simulator) a new scene, then every node reset, the safety controller last checked.

        1. with `scene` ({"seed": int, "num_mugs": int}): publish it on `sim/reset` and wait up to
           `scene_timeout` s for `scene_ready(status())`;
        2. reset the safety controller (asked again for up to 15 s while it refuses because the
           arm is still stopping), the action expert, the planner and grounding;
        3. forget what arrived in between and wait for `scene_ready` again;
        4. a scene reset moves the arm in one step: a safety controller that saw that jump after
           its reset reports a tracking-error FAULT; reset it again (up to 5 times) until it does not.

        `scene_ready` defaults to "joint states arrive". Raises RuntimeError with the reason.
        """
        ready = scene_ready or (lambda s: s.joint_messages > 0)
        self.forget()
        if scene is not None:
            self.sim_reset_pub.publish(String(data=encode_sim_reset(
                SimReset(seed=scene.get("seed"), num_mugs=scene.get("num_mugs")))))
            if not self.wait_for(ready, scene_timeout):
                raise RuntimeError(f"the simulator did not reset to the new scene within {scene_timeout:.0f} s")
        for name in RESET_ORDER:
            ok, message = self.reset_node(name)
            deadline = time.monotonic() + 15.0
            while not ok and name == "safety" and time.monotonic() < deadline:
                time.sleep(0.5)  # the safety controller refuses while the arm is still stopping: ask again
                ok, message = self.reset_node(name)
            if not ok:
                raise RuntimeError(f"{name} reset failed: {message}")
        time.sleep(0.5)
        self.forget()  # forget what arrived between the scene reset and the node resets
        self.wait_for(ready, 10.0)
        for _ in range(5):
            if not self.wait_for(lambda s: "safety_controller" in s.status, 5.0):
                break
            if "FAULT" not in self.status().safety_message:
                break
            self.reset_node("safety")
            time.sleep(1.0)
            self.forget()
        if not self.wait_for(ready, 10.0):
            raise RuntimeError("the stack reported no state of the new scene after the resets")

    # ---- observe ------------------------------------------------------------------------------------------
    def status(self) -> Any:
        """A snapshot (`StackStatus`, or a subclass's extension of it) of everything observed since `forget()`."""
        with self.lock:
            return self._observed

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> bool:
        """Poll `predicate(status())` every 50 ms until it is true (True) or `timeout` s passed (False)."""
        return _wait(lambda: predicate(self.status()), timeout)

    def forget(self) -> None:
        """Drop every observation (the next status() starts empty), e.g. between episodes."""
        with self.lock:
            self._observed = self.status_type()
            self._first_joint_stamp = float("inf")
            self._forget_extra()

    def _update(self, **changes: Any) -> None:
        with self.lock:
            self._observed = replace(self._observed, **changes)

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_subtask(self, msg: String) -> None:
        try:
            data = asdict(parse_subtask(msg.data))
        except ContractError:
            return
        self._update(subtask=data)

    def _on_rewritten(self, msg: String) -> None:
        self._update(rewritten=msg.data)

    def _on_chunk(self, _msg: Any) -> None:
        with self.lock:
            self._observed = replace(self._observed, chunks=self._observed.chunks + 1)

    def _on_joints(self, msg: Any) -> None:
        vel = list(msg.velocity) if len(msg.velocity) == len(msg.name) else [0.0] * len(msg.name)
        joints = {n: (float(p), float(v)) for n, p, v in zip(msg.name, msg.position, vel, strict=False)}
        stamp = stamp_to_seconds(msg.header.stamp)
        with self.lock:
            if self._first_joint_stamp == float("inf"):
                self._first_joint_stamp = stamp
            self._observed = replace(self._observed, joints=joints, joint_stamp=stamp,
                                     joint_messages=self._observed.joint_messages + 1)

    def _on_image(self, msg: Any) -> None:
        try:
            frame = image_to_numpy(msg)
        except MessageError:
            return
        with self.lock:
            self._observed = replace(self._observed, frame=frame, frame_count=self._observed.frame_count + 1)

    def _on_status(self, name: str, msg: Any) -> None:
        for report in diagnostics_to_dict(msg).values():
            entry = {"level": report["level"], "message": report["message"], **report["values"]}
            with self.lock:
                self._observed = replace(self._observed, status={**self._observed.status, name: entry})

    # ---- stop ---------------------------------------------------------------------------------------------
    def stop_stack(self, timeout: float = 5.0) -> None:
        """Stop the nodes this client started (no-op when attached to a stack started elsewhere)."""
        if self.group is not None:
            self.group.stop(timeout)
            self.group = None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the nodes this client started, its spin thread and its node (and its context, if it made it)."""
        self.stop_stack(timeout)
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        if self._own_context:
            rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> StackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
