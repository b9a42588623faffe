"""grounding_node: personalised grounding (Visual Attentive Prompting) as a ROS 2 node around
`vla_stack.core.grounding.GroundingPipeline`.

Subscribes (names from `vla_stack.ros.interfaces`; each camera `NS` in the `cameras` list):
- `NS/color/image_raw` (Image rgb8/bgr8), `NS/aligned_depth_to_color/image_raw` (Image 32FC1 m or
  16UC1 mm, aligned to colour), `NS/color/camera_info` (CameraInfo);
- `task/instruction` (String): "bring my cup to the tray" -> which enrolled objects to ground;
- `grounding/exclude` (String JSON, latched, from the planner): instances not to select ("not that one");
- `grounding/select` (String JSON, `contracts.SelectionRequest`, from the planner or a dashboard): the
  user's choice among the candidates of the last "ambiguous" answer ("the left one", a click), resolved
  spatially; the chosen instance is highlighted, tracked and kept as user-confirmed (status found,
  reason "user chose ..."); a choice that does not fit is refused with the reason (status value
  `selection`), nothing changes;
- `planner/subtask` (String JSON, latched): only with `online_confirmation`, to see a pick done;
- `grounding/enroll` (String JSON): enrol a personal object at run time,
  `{"name": "my_mug", "category": "cup", "images": ["/path/a.png", ...], "aliases": [], "overwrite": false,
  "not_mine": ["/path/other_mug.png"]}` (photos checked, the object's own decision rule derived; "not_mine":
  look-alikes that are not it, optional).

Publishes (first camera of `cameras`; other cameras under `grounding/NS/...`):
- `grounding/prompted_image` (Image rgb8, the camera frame's header): the personal object highlighted
  (the plain image when there is nothing to ground, so a policy behind it always has an image);
- `grounding/mask` (Image mono8, 255 = object);
- `grounding/target` (PoseStamped): grasp point of the first personal object, in `base_frame` when the
  camera's pose is configured (`camera_poses`), else in the camera optical frame; only while found;
- `grounding/instruction` (String, latched): the rewritten instruction ("bring the red-highlighted cup
  to the tray"), or the instruction unchanged when it has no personal reference;
- `grounding/markers` (MarkerArray): centroid, grasp approach and label per found object (rviz2);
- `grounding/status` (DiagnosticArray "grounding"): status found / not_found / ambiguous /
  no_reference, reason, match scores of every candidate, mode (detect/track), latencies.

Online confirmation (`online_confirmation`, default false): a user's choice or confirmation and a
pick the planner reports done add the object's current view to its memory (bounded, its rule
re-derived); "not that one" adds the excluded instance's view as a negative. Each is logged.

Services (std_srvs/Trigger): `~/reload_memory` re-reads the personal-object memory directory;
`~/reset` forgets the task (instruction, tracks, exclusions, place) and reloads the memory.

Threads: `vla_stack.core.grounding.scheduler.GroundingScheduler` owns them and every rule of when
to detect, adopt and report: detection (proposals + embeddings + matching + mask, 0.1-1 s on a
CPU) runs in its worker thread; the camera callback only tracks (optical flow, ~10 ms) and
publishes, so the highlighted image keeps up with the camera. A detection result is adopted on
the next frame and the tracker carries it forward to that frame; one started before an
instruction / exclusion change or a reset is discarded. Status is published only once the first
detection for the current instruction has finished (the planner never sees a premature
"not_found"). This node converts messages, calls the scheduler and publishes what it returns.

Bad input (empty or malformed images, NaN depth, a depth frame too far from the colour stamp,
stale or out-of-order frames, garbage instructions, malformed JSON) is logged with the reason and
skipped; the node keeps running and never publishes a target it did not ground.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.node import Node

from vla_stack.core.contracts import (
    ContractError,
    parse_enroll,
    parse_exclusion,
    parse_selection,
    parse_subtask,
)
from vla_stack.core.grounding.embedders import EMBEDDERS
from vla_stack.core.grounding.imageops import resolve_color
from vla_stack.core.grounding.matching import MatchConfig
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.core.grounding.pipeline import (
    Exclusion,
    GroundingConfig,
    GroundingFrame,
    GroundingPipeline,
)
from vla_stack.core.grounding.places import PlaceConfig
from vla_stack.core.grounding.prompting import HighlightStyle
from vla_stack.core.grounding.proposals import DETECTORS
from vla_stack.core.grounding.scheduler import GroundingScheduler, GroundingUpdate, StatusReport
from vla_stack.core.grounding.segmenters import SEGMENTERS
from vla_stack.core.grounding.target import TargetConfig
from vla_stack.core.robot_profile import DEFAULT_ROBOT, load_robot_profile
from vla_stack.core.types import CameraIntrinsics, Pose
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import (
    MessageError,
    camera_info_to_intrinsics,
    depth_to_metres,
    diagnostics_msg,
    image_to_numpy,
    numpy_to_image,
    object_markers,
    pose_to_msg,
    stamp_to_seconds,
)
from vla_stack.ros.node_runner import spin_node
from vla_stack.ros.params import (
    bounded_float,
    config_from_parameters,
    dataclass_parameter_spec,
    declare_parameters,
    ros_seconds,
)

STATUS_TOPIC = itf.status("grounding")

NODE_PARAMETERS: dict[str, tuple[Any, str]] = {
    "robot": (DEFAULT_ROBOT, "robot profile (name under config/robots or a YAML path): its base_frame is the frame_id of "
              "targets when the camera pose is known"),
    "cameras": (["camera"], "camera namespaces: NS/color/image_raw, NS/aligned_depth_to_color/image_raw, "
                "NS/color/camera_info; the first one publishes grounding/* and the 3D target"),
    "camera_poses": ([], "pose of each camera's optical frame in base_frame, 7 numbers per camera in `cameras` "
                     "order (x y z qx qy qz qw, like static_transform_publisher); [] (or [0.0]) = unknown: targets "
                     "stay in the camera frame"),
    "depth_sync_tolerance": (0.05, "use a depth frame only if its stamp is within this of the colour stamp, s"),
    "max_frame_age": (1.0, "drop colour frames older than this (node clock - stamp), s; 0 = no check"),
    "status_period": (0.2, "grounding/status at most this often, s (changes of status go out at once)"),
    "detector_args": ("{}", "JSON keyword arguments of the detector (e.g. {\"model_dir\": \"/models/gdino\"})"),
    "embedder_args": ("{}", "JSON keyword arguments of the embedder"),
    "segmenter_args": ("{}", "JSON keyword arguments of the segmenter"),
    "tracker_args": ("{}", "JSON keyword arguments of the tracker"),
    "topics.instruction": (itf.INSTRUCTION.name, "instruction input (String)"),
    "topics.exclude": (itf.GROUNDING_EXCLUDE.name, "exclusions from the planner (String JSON)"),
    "topics.enroll": (itf.GROUNDING_ENROLL.name, "run-time enrolment (String JSON)"),
    "topics.select": (itf.GROUNDING_SELECT.name, "the user's choice of candidate (String JSON)"),
    "topics.subtask": (itf.PLANNER_SUBTASK.name, "planner subtask (String JSON; read with online_confirmation only)"),
    "online_confirmation": (False, "add the object's view to its memory when the user chooses or confirms it and when "
                            "the planner's pick of it is done, and the excluded instance's view as a negative on 'not that "
                            "one' (bounded, rule re-derived; off by default: a wrong confirmation drifts the memory)"),
    "topics.prompted_image": (itf.PROMPTED_IMAGE.name, "highlighted image output (Image rgb8)"),
    "topics.mask": (itf.GROUNDING_MASK.name, "mask output (Image mono8)"),
    "topics.target": (itf.GROUNDING_TARGET.name, "grasp point output (PoseStamped)"),
    "topics.rewritten": (itf.GROUNDING_INSTRUCTION.name, "rewritten instruction output (String, latched)"),
    "topics.place_target": (itf.GROUNDING_PLACE.name, "place point output (PoseStamped, latched)"),
    "place.enabled": (True, "locate the support to put the object on (the widest low cluster on the table, e.g. a "
                      "tray) and publish grounding/place_target; needs depth and the camera pose"),
    "topics.markers": (itf.GROUNDING_MARKERS.name, "rviz2 markers output (MarkerArray)"),
    "topics.status": (STATUS_TOPIC.name, "status output (DiagnosticArray)"),
}
_SKIP = ("detector_args", "embedder_args", "segmenter_args", "tracker_args", "matching", "target", "highlight",
         "base_frame")


def grounding_parameter_spec() -> dict[str, tuple[Any, str]]:
    """Every parameter: node settings, GroundingConfig, matching.*, target.*, highlight.*."""
    return {
        **NODE_PARAMETERS,
        **dataclass_parameter_spec(GroundingConfig, skip=_SKIP),
        **dataclass_parameter_spec(MatchConfig, prefix="matching."),
        **dataclass_parameter_spec(TargetConfig, prefix="target."),
        **dataclass_parameter_spec(PlaceConfig, prefix="place."),
        **dataclass_parameter_spec(HighlightStyle, prefix="highlight."),
    }


@dataclass
class _Camera:
    """Per-camera message state (executor thread); detection state lives in the scheduler."""

    index: int  # camera index in the scheduler (0 = primary)
    ns: str
    pose: Pose | None
    intrinsics: CameraIntrinsics | None = None
    depth: tuple[float, np.ndarray] | None = None
    waiting_color: Any = None  # colour message waiting for the depth frame of its stamp
    last_stamp: float = -np.inf
    pubs: dict[str, Any] = field(default_factory=dict)


class GroundingNode(Node):
    """Thin ROS wrapper of `GroundingScheduler` + `GroundingPipeline` (see the module docstring)."""

    def __init__(self, node_name: str = "grounding_node") -> None:
        super().__init__(node_name)
        log = self.get_logger()
        values = declare_parameters(self, grounding_parameter_spec())
        self.values = values
        config = self._config(values)
        self.config = config
        self.memory = PersonalObjectMemory(config.memory_root or None)
        # one set of (possibly heavy) stage objects shared by every camera's pipeline
        detector = DETECTORS.create(config.detector, **config.detector_args)
        embedder = EMBEDDERS.create(config.embedder, **config.embedder_args)
        segmenter = SEGMENTERS.create(config.segmenter, **config.segmenter_args)
        cams = [str(c).strip().strip("/") for c in values["cameras"] if str(c).strip()] or ["camera"]
        poses = self._camera_poses(values["camera_poses"], cams)
        self.cameras: list[_Camera] = []
        pipelines: list[GroundingPipeline] = []
        for k, ns in enumerate(cams):
            pipelines.append(GroundingPipeline(config, self.memory, detector=detector, embedder=embedder, segmenter=segmenter))
            self.cameras.append(_Camera(k, ns, poses[k]))
        self.depth_tol = self._bounded(values, "depth_sync_tolerance", 0.0, 5.0, 0.05)
        self.max_age = self._bounded(values, "max_frame_age", 0.0, 3600.0, 1.0)
        self.status_period = self._bounded(values, "status_period", 0.0, 60.0, 0.2)

        def topic(key: str) -> str:
            return str(values[f"topics.{key}"])

        # ---- publishers: the first camera on the contract names, the others under grounding/NS/
        for k, cam in enumerate(self.cameras):
            def name(key: str, cam: _Camera = cam, k: int = k) -> str:
                base = topic(key)
                return base if k == 0 else base.replace("grounding/", f"grounding/{cam.ns}/", 1)
            cam.pubs["image"] = self.create_publisher(itf.PROMPTED_IMAGE.msg_type, name("prompted_image"), itf.PROMPTED_IMAGE.pub_qos)
            cam.pubs["mask"] = self.create_publisher(itf.GROUNDING_MASK.msg_type, name("mask"), itf.GROUNDING_MASK.pub_qos)
        self.target_pub = self.create_publisher(itf.GROUNDING_TARGET.msg_type, topic("target"), itf.GROUNDING_TARGET.pub_qos)
        self.rewritten_pub = self.create_publisher(
            itf.GROUNDING_INSTRUCTION.msg_type, topic("rewritten"), itf.GROUNDING_INSTRUCTION.pub_qos
        )
        self.markers_pub = self.create_publisher(itf.GROUNDING_MARKERS.msg_type, topic("markers"), itf.GROUNDING_MARKERS.pub_qos)
        self.status_pub = self.create_publisher(STATUS_TOPIC.msg_type, topic("status"), STATUS_TOPIC.pub_qos)
        self.place_pub = self.create_publisher(itf.GROUNDING_PLACE.msg_type, topic("place_target"), itf.GROUNDING_PLACE.pub_qos)
        self.place_enabled = bool(values["place.enabled"])
        self.place_config = config_from_parameters(PlaceConfig, values, log, prefix="place.")

        # ---- subscriptions
        for cam in self.cameras:
            self.create_subscription(itf.COLOR_IMAGE.msg_type, f"{cam.ns}/color/image_raw",
                                     lambda m, c=cam: self._guard(self._on_color, c, m), itf.COLOR_IMAGE.sub_qos)
            self.create_subscription(itf.DEPTH_IMAGE.msg_type, f"{cam.ns}/aligned_depth_to_color/image_raw",
                                     lambda m, c=cam: self._guard(self._on_depth, c, m), itf.DEPTH_IMAGE.sub_qos)
            self.create_subscription(itf.CAMERA_INFO.msg_type, f"{cam.ns}/color/camera_info",
                                     lambda m, c=cam: self._guard(self._on_info, c, m), itf.CAMERA_INFO.sub_qos)
        self.create_subscription(itf.INSTRUCTION.msg_type, topic("instruction"),
                                 lambda m: self._guard(self._on_instruction, m), itf.INSTRUCTION.sub_qos)
        self.create_subscription(itf.GROUNDING_EXCLUDE.msg_type, topic("exclude"),
                                 lambda m: self._guard(self._on_exclude, m), itf.GROUNDING_EXCLUDE.sub_qos)
        self.create_subscription(itf.GROUNDING_ENROLL.msg_type, topic("enroll"),
                                 lambda m: self._guard(self._on_enroll, m), itf.GROUNDING_ENROLL.sub_qos)
        self.create_subscription(itf.GROUNDING_SELECT.msg_type, topic("select"),
                                 lambda m: self._guard(self._on_select, m), itf.GROUNDING_SELECT.sub_qos)
        self.online_confirmation = bool(values["online_confirmation"])
        if self.online_confirmation:
            self.create_subscription(itf.PLANNER_SUBTASK.msg_type, topic("subtask"),
                                     lambda m: self._guard(self._on_subtask, m), itf.PLANNER_SUBTASK.sub_qos)
        self.create_service(itf.GROUNDING_RELOAD_MEMORY.srv_type, itf.GROUNDING_RELOAD_MEMORY.name, self._on_reload)
        self.create_service(itf.GROUNDING_RESET.srv_type, itf.GROUNDING_RESET.name, self._on_reset)

        # ---- detection worker, adoption and reporting rules
        self.scheduler = GroundingScheduler(
            pipelines, [c.ns for c in self.cameras], place=self.place_config if self.place_enabled else None,
            status_period=self.status_period, logger=log, online_confirmation=self.online_confirmation)
        log.info(
            f"grounding_node: cameras {[c.ns for c in self.cameras]} (poses "
            f"{['known' if c.pose is not None else 'unknown' for c in self.cameras]}), backends "
            f"{config.detector}/{config.embedder}/{config.segmenter}/{config.tracker}, "
            f"{'personal (VAP)' if config.personal else 'GENERIC baseline (no personal memory)'}, memory "
            f"{self.memory.root} with {self.memory.names() or 'no objects'}; instructions on {topic('instruction')}"
        )

    # ------------------------------------------------------------------ setup helpers
    def _config(self, values: dict[str, Any]) -> GroundingConfig:
        log = self.get_logger()
        kwargs: dict[str, Any] = {}
        for key in ("detector_args", "embedder_args", "segmenter_args", "tracker_args"):
            try:
                parsed = json.loads(str(values[key]) or "{}")
                if not isinstance(parsed, dict):
                    raise ValueError("not a JSON object")
                kwargs[key] = parsed
            except ValueError as exc:
                log.error(f"parameter {key}={values[key]!r} rejected ({exc}); using {{}}")
        try:
            profile = load_robot_profile(str(values["robot"]))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"grounding_node: cannot load robot profile '{values['robot']}': {exc}") from exc
        kwargs["base_frame"] = profile.base_frame
        base = config_from_parameters(GroundingConfig, values, log)
        matching = config_from_parameters(MatchConfig, values, log, prefix="matching.")
        target = config_from_parameters(TargetConfig, values, log, prefix="target.")
        highlight = config_from_parameters(HighlightStyle, values, log, prefix="highlight.")
        try:
            return GroundingConfig(**{**{f: getattr(base, f) for f in base.__dataclass_fields__ if f not in _SKIP},
                                      **kwargs, "matching": matching, "target": target, "highlight": highlight})
        except (KeyError, ValueError) as exc:
            log.error(f"grounding configuration rejected ({exc}); using the defaults (offline backends)")
            return GroundingConfig(matching=matching, target=target, highlight=highlight, base_frame=profile.base_frame)

    def _camera_poses(self, flat: Any, cams: list[str]) -> list[Pose | None]:
        vals = [float(v) for v in flat]
        if len(vals) <= 1:
            return [None] * len(cams)
        out: list[Pose | None] = [None] * len(cams)
        if len(vals) % 7 or len(vals) // 7 > len(cams):
            self.get_logger().error(
                f"camera_poses has {len(vals)} numbers; need 7 per camera ({len(cams)} cameras): poses ignored, "
                "targets stay in the camera frame")
            return out
        for k in range(len(vals) // 7):
            p, q = np.array(vals[7 * k:7 * k + 3]), np.array(vals[7 * k + 3:7 * k + 7])
            if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q)) and abs(np.linalg.norm(q) - 1) < 1e-3):
                self.get_logger().error(f"camera_poses of '{cams[k]}' rejected (need finite xyz + unit quaternion)")
                continue
            out[k] = Pose(p, q, 0.0, self.config.base_frame)
        return out

    def _bounded(self, values: dict, name: str, lo: float, hi: float, default: float) -> float:
        return bounded_float(values, name, lo, hi, default, self.get_logger())

    def _guard(self, fn, *args) -> None:
        """Run a callback; an unexpected exception is logged, never kills the node."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001  (a bug in one frame must not stop grounding)
            self.get_logger().error(f"{fn.__name__} failed: {type(exc).__name__}: {exc}", throttle_duration_sec=2.0)

    # ------------------------------------------------------------------ inputs
    def _on_info(self, cam: _Camera, msg) -> None:
        try:
            cam.intrinsics = camera_info_to_intrinsics(msg)
        except (MessageError, ValueError) as exc:
            self.get_logger().warning(f"{cam.ns}: camera_info rejected: {exc}", throttle_duration_sec=5.0)

    def _on_depth(self, cam: _Camera, msg) -> None:
        try:
            depth = depth_to_metres(msg)
        except (MessageError, ValueError) as exc:
            self.get_logger().warning(f"{cam.ns}: depth image rejected: {exc}", throttle_duration_sec=5.0)
            return
        cam.depth = (stamp_to_seconds(msg.header.stamp), depth)
        waiting = cam.waiting_color
        if waiting is not None and abs(stamp_to_seconds(waiting.header.stamp) - cam.depth[0]) <= self.depth_tol:
            cam.waiting_color = None
            self._process_color(cam, waiting)

    def _on_color(self, cam: _Camera, msg) -> None:
        # Drivers publish colour and depth separately, in either order: a colour frame whose depth
        # has not arrived yet waits for it (at most until the next colour frame, which then
        # processes it without depth).
        stamp = stamp_to_seconds(msg.header.stamp)
        if cam.depth is not None and abs(cam.depth[0] - stamp) <= self.depth_tol:
            self._process_color(cam, msg)
            return
        previous, cam.waiting_color = cam.waiting_color, msg
        if previous is not None:
            self._process_color(cam, previous)

    def _on_instruction(self, msg) -> None:
        update = self.scheduler.set_instruction(msg.data, ros_seconds(self))
        self._publish_rewritten(update.rewritten)
        self._publish_status(update.status)

    def _on_exclude(self, msg) -> None:
        try:
            req = parse_exclusion(msg.data)
        except ValueError as exc:
            self.get_logger().warning(f"grounding/exclude rejected: {exc}")
            return
        primary = self.cameras[0]
        frame = req.frame_id or self.config.base_frame
        if frame != self.config.base_frame and (primary.intrinsics is None or frame != primary.intrinsics.frame_id):
            self.get_logger().warning(
                f"grounding/exclude in frame '{frame}' ignored: need '{self.config.base_frame}' or the camera frame")
            return
        exclusions = [Exclusion(tuple(p), req.radius, frame) for p in req.exclusions]
        try:
            self.scheduler.set_exclusions(exclusions)
        except ValueError as exc:
            self.get_logger().warning(f"grounding/exclude rejected: {exc}")
            return
        self.get_logger().info(
            f"exclusions: {len(exclusions)} instance(s) ({req.reason or 'planner'}); re-grounding" if exclusions
            else "exclusions cleared")

    def _on_enroll(self, msg) -> None:
        try:
            req = parse_enroll(msg.data)
        except ContractError as exc:
            self.get_logger().warning(f"grounding/enroll rejected: {exc} (need JSON name, category, images)")
            return
        self.scheduler.enroll(req.name, req.category, list(req.images), list(req.aliases), req.overwrite,
                              list(req.not_mine))

    def _on_select(self, msg) -> None:
        try:
            req = parse_selection(msg.data)
        except ContractError as exc:
            self.get_logger().warning(f"grounding/select rejected: {exc}")
            return
        self.get_logger().info(f"selection from the {req.source}: {req.describe()} ({req.text[:80]!r})")
        update = self.scheduler.select(req.selector, req.index, req.box, req.object, req.generation, req.text,
                                       ros_seconds(self))
        self._publish_status(update.status)

    def _on_subtask(self, msg) -> None:
        try:
            sub = parse_subtask(msg.data)
        except ContractError as exc:
            self.get_logger().warning(f"planner/subtask rejected: {exc}", throttle_duration_sec=5.0)
            return
        self.scheduler.on_subtask(sub.skill, sub.status, sub.plan_id, sub.index, str(sub.arguments.get("object", "")))

    def _on_reset(self, request, response):
        """Forget the task (instruction, tracks, exclusions, place) and re-read the memory: a new episode."""
        self.scheduler.reset()
        for cam in self.cameras:
            cam.last_stamp = -np.inf
        self.get_logger().info(f"reset: task forgotten; memory {self.scheduler.memory_names}")
        response.success = True
        response.message = "grounding reset: instruction, tracks, exclusions and place forgotten; memory reloaded"
        return response

    def _on_reload(self, request, response):
        self.scheduler.request_reload()
        response.success = True
        response.message = f"reloading the personal-object memory from {self.memory.root}"
        return response

    # ------------------------------------------------------------------ frames
    def _process_color(self, cam: _Camera, msg) -> None:
        log = self.get_logger()
        try:
            rgb = image_to_numpy(msg)
            if msg.encoding == "bgr8":
                rgb = rgb[..., ::-1]
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
                raise MessageError(f"need a colour image (rgb8/bgr8), got encoding '{msg.encoding}' {rgb.shape}")
        except (MessageError, ValueError) as exc:
            log.warning(f"{cam.ns}: colour image rejected: {exc}", throttle_duration_sec=2.0)
            return
        stamp = stamp_to_seconds(msg.header.stamp)
        if stamp < cam.last_stamp:
            log.warning(f"{cam.ns}: frame stamped {stamp:.3f} s is older than the last one ({cam.last_stamp:.3f} s); "
                        "dropped", throttle_duration_sec=2.0)
            return
        if self.max_age > 0 and stamp > 0 and ros_seconds(self) - stamp > self.max_age:
            log.warning(f"{cam.ns}: frame is {ros_seconds(self) - stamp:.2f} s old (max_frame_age {self.max_age} s); "
                        "dropped", throttle_duration_sec=2.0)
            return
        cam.last_stamp = stamp
        depth = None
        if cam.depth is not None and abs(cam.depth[0] - stamp) <= self.depth_tol:
            depth = cam.depth[1]
            if depth.shape != rgb.shape[:2]:
                log.warning(f"{cam.ns}: depth {depth.shape} does not match colour {rgb.shape[:2]}; depth ignored",
                            throttle_duration_sec=5.0)
                depth = None
        elif self.cameras[0] is cam and self.scheduler.target_names:
            log.warning(f"{cam.ns}: no depth frame within {self.depth_tol * 1000:.0f} ms of the colour frame; "
                        "grounding without depth (no proposals, no 3D target)", throttle_duration_sec=5.0)
        rgb = np.ascontiguousarray(rgb)
        frame = GroundingFrame(rgb, depth, cam.intrinsics, cam.pose, stamp)
        update = self.scheduler.on_frame(cam.index, frame, ros_seconds(self))
        if update is None:
            return  # stopped: publish nothing
        if update.result is None:  # nothing to ground: the plain image, no markers
            self._publish_images(cam, rgb, None, msg.header)
            if cam is self.cameras[0]:
                self.markers_pub.publish(object_markers([], stamp))
            return
        self._publish_images(cam, update.result.highlighted, update.result.mask, msg.header)
        if cam is self.cameras[0]:
            self._publish_result(update)

    # ------------------------------------------------------------------ outputs
    def _publish_images(self, cam: _Camera, rgb: np.ndarray, mask: np.ndarray | None, header) -> None:
        stamp = stamp_to_seconds(header.stamp)
        cam.pubs["image"].publish(numpy_to_image(rgb, "rgb8", stamp, header.frame_id))
        if mask is not None:
            cam.pubs["mask"].publish(numpy_to_image(mask.astype(np.uint8) * 255, "mono8", stamp, header.frame_id))

    def _publish_rewritten(self, text: str | None) -> None:
        if text:  # the scheduler hands each new rewritten instruction over once
            self.rewritten_pub.publish(itf.GROUNDING_INSTRUCTION.msg_type(data=text))

    def _publish_place(self, place: Pose | None) -> None:
        if place is not None:
            self.place_pub.publish(pose_to_msg(place))

    def _publish_result(self, update: GroundingUpdate) -> None:
        """Primary camera: target, markers, and what the scheduler says is due (rewritten, place, status)."""
        result = update.result
        assert result is not None
        found = [o for o in result.objects if o.status == "found"]
        markers = []
        for o in found:
            t = o.target
            if t is None:
                continue
            centroid = t.centroid_base or t.centroid_camera
            grasp = t.grasp_base or t.grasp_camera
            markers.append((o.name, resolve_color(o.color), centroid, grasp, f"{o.score:.3f}"))
        primary = result.primary()
        if primary is not None and primary.status == "found" and primary.target is not None:
            grasp = primary.target.grasp_base or primary.target.grasp_camera
            self.target_pub.publish(pose_to_msg(Pose(grasp.position, grasp.orientation, result.stamp, grasp.frame_id)))
        self.markers_pub.publish(object_markers(markers, result.stamp))
        self._publish_rewritten(update.rewritten)
        self._publish_place(update.place)
        self._publish_status(update.status)

    def _publish_status(self, report: StatusReport | None) -> None:
        if report is not None:
            self.status_pub.publish(diagnostics_msg("grounding", report.level, report.message, report.values,
                                                    ros_seconds(self)))

    def stop(self) -> None:
        """Stop the detection worker (joined for at most 2 s); nothing is published afterwards."""
        self.scheduler.stop(timeout=2.0)


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vla_stack grounding_node` / `vla-stack up`."""
    return spin_node(GroundingNode, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
