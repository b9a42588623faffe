"""camera_node: a ROS-free OpenCV capture (V4L2 device, video file, stream) published as a ROS camera.

Publishes (names are parameters `topics.*`, relative so namespaces work):
- `camera/color/image_raw` (sensor_msgs/Image, rgb8), stamped when the frame was grabbed;
- `camera/color/camera_info` (sensor_msgs/CameraInfo), same stamp and frame_id, from the
  calibration YAML at `camera_info_url` scaled to the delivered size, or an ideal pinhole from
  `fx` / `fovy` when there is no calibration;
- `<node name>/status` (diagnostic_msgs/DiagnosticArray) every `status_period` s: source state,
  frame and reconnect counters.

Service `camera/color/set_camera_info` (sensor_msgs/SetCameraInfo), as camera_info_manager
offers, so `camera_calibration`'s calibrator can store a new calibration in `camera_info_url`.

Capture runs in its own thread (`vla_stack.core.sensors.capture.Capture`); a missing or lost
source is logged once per retry with backoff and the node keeps running. Bad parameters are
logged and replaced by their defaults.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Any

import rclpy
from rclpy.node import Node
from sensor_msgs.srv import SetCameraInfo

from vla_stack.core.sensors.calibration import (
    CalibrationError,
    CameraCalibration,
    aspect_ratio_mismatch,
    load_calibration,
    resolve_camera_info_url,
    save_calibration,
    scale_calibration,
)
from vla_stack.core.sensors.capture import Capture, CaptureConfig
from vla_stack.core.types import CameraFrame, CameraIntrinsics
from vla_stack.ros import interfaces
from vla_stack.ros.conversions import (
    MessageError,
    calibration_to_camera_info,
    camera_info_to_calibration,
    diagnostics_msg,
    numpy_to_image,
)
from vla_stack.ros.node_runner import spin_node
from vla_stack.ros.params import (
    config_from_parameters,
    dataclass_parameter_spec,
    declare_parameters,
    ros_seconds,
)

# ----------------------------------------------------------------------------- the node
CAMERA_PARAMETERS: dict[str, tuple[Any, str]] = {
    **dataclass_parameter_spec(CaptureConfig),
    "camera_info_url": (
        "",
        "calibration YAML (camera_calibration format): path, file:///... or "
        "package://vla_stack/config/calibration/...; '' = none (ideal pinhole from fx/fovy)",
    ),
    "camera_name": ("camera", "camera name for ${NAME} in camera_info_url and for saved calibrations"),
    "fovy": (60.0, "vertical field of view of the ideal pinhole camera_info used without calibration, deg"),
    "fx": (
        0.0,
        "focal length of the ideal pinhole camera_info without calibration, px at the "
        "published size (fx = fy); 0 = derive from fovy",
    ),
    "status_period": (1.0, "period of the diagnostics on <node name>/status, s"),
    "topics.image": (interfaces.COLOR_IMAGE.name, "image topic (rgb8)"),
    "topics.camera_info": (interfaces.CAMERA_INFO.name, "camera_info topic"),
}


class CameraNode(Node):
    """Thin node around `Capture`: publishes image + camera_info per frame and diagnostics."""

    def __init__(self, node_name: str = "camera_node") -> None:
        super().__init__(node_name)
        log = self.get_logger()
        values = declare_parameters(self, CAMERA_PARAMETERS)
        self.capture_config = config_from_parameters(CaptureConfig, values, log)
        self.camera_info_url = str(values["camera_info_url"]).strip()
        self.camera_name = str(values["camera_name"])
        self.fovy = _positive(values["fovy"], 60.0, "fovy", log, upper=179.0)
        self.fx = _positive(values["fx"], 0.0, "fx", log, allow_zero=True)
        status_period = _positive(values["status_period"], 1.0, "status_period", log)

        self._lock = threading.Lock()
        self._calibration: CameraCalibration | None = None
        self._calibration_note = ""
        self._info_cache: tuple[tuple[int, int], CameraCalibration] | None = None
        self._load_calibration()

        self.image_pub = self.create_publisher(
            interfaces.COLOR_IMAGE.msg_type, str(values["topics.image"]), interfaces.COLOR_IMAGE.pub_qos
        )
        self.info_pub = self.create_publisher(
            interfaces.CAMERA_INFO.msg_type, str(values["topics.camera_info"]), interfaces.CAMERA_INFO.pub_qos
        )
        status_topic = interfaces.status(self.get_name())
        self.status_pub = self.create_publisher(
            status_topic.msg_type, status_topic.name, status_topic.pub_qos
        )
        info_ns = (
            str(values["topics.camera_info"]).rsplit("/", 1)[0]
            if "/" in str(values["topics.camera_info"])
            else ""
        )
        self.create_service(
            interfaces.SET_CAMERA_INFO.srv_type,
            f"{info_ns}/{interfaces.SET_CAMERA_INFO.name}" if info_ns else interfaces.SET_CAMERA_INFO.name,
            self._on_set_camera_info,
        )

        self.capture = Capture(self.capture_config, clock=lambda: ros_seconds(self), logger=log)
        self._stop = threading.Event()
        self._frames_at_status = 0
        self._thread = threading.Thread(
            target=self.capture.run, args=(self._publish, self._stop), name="capture", daemon=True
        )
        self._thread.start()
        self.create_timer(status_period, self._publish_status)
        log.info(
            f"camera_node: source '{self.capture_config.source}' ({self.capture_config.backend}) -> "
            f"{self.image_pub.topic_name}, {self.info_pub.topic_name}; camera_info: {self._calibration_note}"
        )

    # -- calibration -----------------------------------------------------------------------
    def _load_calibration(self) -> None:
        if not self.camera_info_url:
            self._calibration_note = self._pinhole_note()
            return
        try:
            url = str(resolve_camera_info_url(self.camera_info_url, self.camera_name))
            self._calibration = load_calibration(url, frame_id=self.capture_config.frame_id)
            self._calibration_note = f"calibration {url} ({self._calibration.intrinsics.width}x{self._calibration.intrinsics.height})"
        except CalibrationError as exc:
            self._calibration = None
            self._calibration_note = self._pinhole_note()
            self.get_logger().error(
                f"cannot use calibration: {exc}; publishing {self._calibration_note} instead"
            )

    def _pinhole_note(self) -> str:
        return f"ideal pinhole fx={self.fx:g} px" if self.fx > 0 else f"ideal pinhole fovy={self.fovy:g} deg"

    def calibration_for(self, width: int, height: int) -> CameraCalibration:
        """Calibration of the published camera at `width` x `height` px (cached per size)."""
        with self._lock:
            cached = self._info_cache
            if cached is not None and cached[0] == (width, height):
                return cached[1]
            calib = self._calibration
            frame_id = self.capture_config.frame_id
            if calib is None:
                if self.fx > 0:
                    intr = CameraIntrinsics(
                        width,
                        height,
                        self.fx,
                        self.fx,
                        (width - 1) / 2.0,
                        (height - 1) / 2.0,
                        frame_id=frame_id,
                    )
                else:
                    intr = CameraIntrinsics.from_fovy(width, height, self.fovy, frame_id=frame_id)
                result = CameraCalibration.from_intrinsics(intr, self.camera_name)
            else:
                src = (calib.intrinsics.width, calib.intrinsics.height)
                if src != (width, height):
                    if aspect_ratio_mismatch(src, (width, height)):
                        self.get_logger().warning(
                            f"calibration is for {src[0]}x{src[1]} but frames are {width}x{height} (another aspect "
                            "ratio: the driver probably crops, so scaled intrinsics are approximate); "
                            "publishing scaled intrinsics anyway: calibrate at this size"
                        )
                    else:
                        self.get_logger().info(
                            f"scaling the {src[0]}x{src[1]} calibration to the {width}x{height} frames"
                        )
                result = scale_calibration(calib, width, height).with_frame_id(frame_id)
            self._info_cache = ((width, height), result)
            return result

    def _on_set_camera_info(
        self, request: SetCameraInfo.Request, response: SetCameraInfo.Response
    ) -> SetCameraInfo.Response:
        try:
            calib = camera_info_to_calibration(request.camera_info, self.camera_name)
        except MessageError as exc:
            response.success, response.status_message = False, f"rejected: {exc}"
            self.get_logger().error(f"set_camera_info rejected: {exc}; keeping the current camera_info")
            return response
        with self._lock:
            self._calibration = calib.with_frame_id(self.capture_config.frame_id)
            self._info_cache = None
        if not self.camera_info_url:
            response.success = True
            response.status_message = "applied; not saved (camera_info_url is empty): lost at restart"
        else:
            try:
                path = save_calibration(
                    calib, resolve_camera_info_url(self.camera_info_url, self.camera_name)
                )
                response.success, response.status_message = True, f"applied and saved to {path}"
            except CalibrationError as exc:
                response.success, response.status_message = False, f"applied but not saved: {exc}"
        self._calibration_note = f"set_camera_info ({calib.intrinsics.width}x{calib.intrinsics.height})"
        self.get_logger().info(f"set_camera_info: {response.status_message}")
        return response

    # -- frames ------------------------------------------------------------------------------
    def _publish(self, frame: CameraFrame) -> None:
        if self._stop.is_set() or not rclpy.ok(context=self.context):
            return
        h, w = frame.image.shape[:2]
        image_msg = numpy_to_image(frame.image, "rgb8", stamp=frame.stamp, frame_id=frame.frame_id)
        info_msg = calibration_to_camera_info(self.calibration_for(w, h), stamp=frame.stamp)
        info_msg.header.frame_id = frame.frame_id
        self.image_pub.publish(image_msg)
        self.info_pub.publish(info_msg)

    def _publish_status(self) -> None:
        s = self.capture.stats
        level = {"streaming": "OK", "ended": "WARN", "connecting": "WARN"}.get(s.state, "ERROR")
        message = {
            "streaming": "streaming",
            "ended": "video file ended (loop is off)",
            "connecting": "opening the source",
            "reconnecting": f"source unavailable, retrying: {s.last_error}",
        }.get(s.state, s.state)
        size = self.capture.size
        values = {
            "source": self.capture_config.source,
            "state": s.state,
            "frames": s.frames,
            "frames_since_last_status": s.frames - self._frames_at_status,
            "reconnects": s.reconnects,
            "open_failures": s.open_failures,
            "read_failures": s.read_failures,
            "dropped": s.dropped,
            "loops": s.loops,
            "size": f"{size[0]}x{size[1]}" if size else "",
            "camera_info": self._calibration_note,
            "last_error": s.last_error,
        }
        self._frames_at_status = s.frames
        self.status_pub.publish(diagnostics_msg(self.get_name(), level, message, values, ros_seconds(self)))

    def stop(self) -> None:
        """Stop the capture thread and release the source."""
        self._stop.set()
        self._thread.join(timeout=3.0)
        self.capture.close()


def _positive(
    value: Any, default: float, name: str, logger, allow_zero: bool = False, upper: float = math.inf
) -> float:
    """A finite positive float parameter, or its default with one log line."""
    try:
        v = float(value)
        if (
            isinstance(value, bool)
            or not math.isfinite(v)
            or v > upper
            or v < 0
            or (v == 0 and not allow_zero)
        ):
            raise ValueError
        return v
    except (TypeError, ValueError):
        logger.error(
            f"parameter {name}={value!r} rejected (needs a {'non-negative' if allow_zero else 'positive'} number"
            f"{f' below {upper:g}' if math.isfinite(upper) else ''}); using the default {default!r}"
        )
        return default


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vla_stack camera_node` / `vla-stack up`."""
    return spin_node(CameraNode, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
