"""tactile_node: one vision-based tactile sensor (GelSight, DIGIT, ...) plus an optional F/T pass-through.

Vision part (`vision_enabled`), for sensor name S (parameter `sensor`):
- captures the sensor's video device (or a file) with `vla_stack.core.sensors.capture.Capture`;
- publishes `tactile/S/image` (sensor_msgs/Image rgb8, stamped at capture);
- publishes `tactile/S/contact` (mono8 contact mask, 255 = contact) when `publish_contact_map`;
- publishes `tactile/S/status` (diagnostic_msgs/DiagnosticArray) per frame with the contact
  estimate against the no-contact reference taken from the first `reference_frames` frames:
  in_contact, contact_area_fraction, contact_area_pixels, pressure, pressure_max, load
  (uncalibrated 0..1), centroid_u, centroid_v (px); once a second while no frames arrive;
- service `~/reset_reference` (std_srvs/Trigger): re-take the reference (nothing may touch the gel).

F/T pass-through (`wrench_passthrough`): subscribes `wrench_raw` (WrenchStamped from the F/T
driver), publishes the bias-removed `wrench` (same frame and stamp; nothing until the first
bias is complete), rejects NaN/inf samples with a log line; service `~/rezero`
(std_srvs/Trigger) takes a new bias from the next `bias_samples` samples.

Taxel-array pads (summed force as WrenchStamped on `tactile/S/force`) come from their own
drivers or the simulator, not from this node.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import rclpy
from rclpy.node import Node
from std_srvs.srv import Trigger

from vla_stack.core.sensors.capture import Capture, CaptureConfig
from vla_stack.core.tactile.vision_tactile import ContactEstimate, VisionTactileConfig, VisionTactileEstimator
from vla_stack.core.tactile.wrench_bias import WrenchBiasConfig, WrenchBiasRemover
from vla_stack.core.types import CameraFrame
from vla_stack.ros import interfaces
from vla_stack.ros.conversions import diagnostics_msg, numpy_to_image, raw_wrench_to_core, wrench_to_msg
from vla_stack.ros.node_runner import spin_node
from vla_stack.ros.params import (
    config_from_parameters,
    dataclass_parameter_spec,
    declare_parameters,
    ros_seconds,
)

TACTILE_PARAMETERS: dict[str, tuple[Any, str]] = {
    "sensor": ("digit", "sensor name: topics are tactile/<sensor>/image, /contact, /status"),
    "vision_enabled": (
        True,
        "capture and publish the vision-based tactile sensor (false: F/T pass-through only)",
    ),
    "publish_contact_map": (True, "also publish the mono8 contact mask on tactile/<sensor>/contact"),
    **dataclass_parameter_spec(CaptureConfig),
    **dataclass_parameter_spec(VisionTactileConfig),
    "wrench_passthrough": (
        False,
        "subscribe topics.wrench_raw and publish the bias-removed wrench on topics.wrench",
    ),
    **dataclass_parameter_spec(WrenchBiasConfig),
    "topics.wrench_raw": (interfaces.WRENCH_RAW.name, "raw F/T input topic (WrenchStamped)"),
    "topics.wrench": (interfaces.WRENCH.name, "bias-removed F/T output topic (WrenchStamped)"),
}
TACTILE_PARAMETERS["frame_id"] = ("tactile_optical_frame", "optical frame of the tactile sensor's camera")
TACTILE_PARAMETERS["source"] = ("0", "tactile sensor video device (index or /dev/videoN), video file, or URL")
TACTILE_PARAMETERS["reconnect_period"] = (
    0.5,
    "first retry delay after a failed open or a lost sensor, s (doubles up to reconnect_max_period)",
)


class TactileNode(Node):
    """Thin node: capture -> VisionTactileEstimator -> image/contact/status; wrench_raw -> WrenchBiasRemover -> wrench."""

    def __init__(self, node_name: str = "tactile_node") -> None:
        super().__init__(node_name)
        log = self.get_logger()
        values = declare_parameters(self, TACTILE_PARAMETERS)
        self.sensor = str(values["sensor"]).strip().strip("/") or "digit"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.capture: Capture | None = None
        self._reset_requested = threading.Event()
        self._last_frame_time = 0.0

        if bool(values["vision_enabled"]):
            self.capture_config = config_from_parameters(CaptureConfig, values, log)
            self.estimator = VisionTactileEstimator(config_from_parameters(VisionTactileConfig, values, log))
            self.publish_contact_map = bool(values["publish_contact_map"])
            image_t = interfaces.tactile_image(self.sensor)
            contact_t = interfaces.tactile_contact(self.sensor)
            status_t = interfaces.tactile_status(self.sensor)
            self.image_pub = self.create_publisher(image_t.msg_type, image_t.name, image_t.pub_qos)
            self.contact_pub = (
                self.create_publisher(contact_t.msg_type, contact_t.name, contact_t.pub_qos)
                if self.publish_contact_map
                else None
            )
            self.status_pub = self.create_publisher(status_t.msg_type, status_t.name, status_t.pub_qos)
            self.create_service(interfaces.TACTILE_RESET_REFERENCE.srv_type, interfaces.TACTILE_RESET_REFERENCE.name,
                                self._on_reset_reference)
            self.capture = Capture(self.capture_config, clock=lambda: ros_seconds(self), logger=log)
            self._thread = threading.Thread(
                target=self.capture.run, args=(self._on_frame, self._stop), name="capture", daemon=True
            )
            self._thread.start()
            self.create_timer(1.0, self._stale_status)
            log.info(
                f"tactile_node: sensor '{self.sensor}' from '{self.capture_config.source}' -> {self.image_pub.topic_name}, "
                f"{self.status_pub.topic_name}; taking the no-contact reference from the first "
                f"{self.estimator.config.reference_frames} frames: do not touch the gel now"
            )

        self.remover: WrenchBiasRemover | None = None
        if bool(values["wrench_passthrough"]):
            self.remover = WrenchBiasRemover(config_from_parameters(WrenchBiasConfig, values, log))
            self.wrench_pub = self.create_publisher(
                interfaces.WRENCH.msg_type, str(values["topics.wrench"]), interfaces.WRENCH.pub_qos
            )
            self.create_subscription(
                interfaces.WRENCH_RAW.msg_type,
                str(values["topics.wrench_raw"]),
                self._on_wrench,
                interfaces.WRENCH_RAW.sub_qos,
            )
            self.create_service(interfaces.TACTILE_REZERO.srv_type, interfaces.TACTILE_REZERO.name, self._on_rezero)
            log.info(
                f"tactile_node: F/T pass-through {values['topics.wrench_raw']} -> {self.wrench_pub.topic_name}; bias from the "
                f"first {self.remover.config.bias_samples} samples (keep the arm still and the gripper empty)"
            )
        if self.capture is None and self.remover is None:
            log.warning(
                "tactile_node: vision_enabled and wrench_passthrough are both false: this node does nothing"
            )

    # -- vision ------------------------------------------------------------------------------
    def _on_frame(self, frame: CameraFrame) -> None:
        if self._stop.is_set() or not rclpy.ok(context=self.context):
            return
        self._last_frame_time = frame.stamp
        if self._reset_requested.is_set():
            self._reset_requested.clear()
            self.estimator.reset_reference()
        try:
            estimate = self.estimator.update(frame.image, frame.stamp)
        except ValueError as exc:
            self.get_logger().warning(
                f"tactile frame rejected ({exc}); re-taking the reference from the next frames"
            )
            self.estimator.reset_reference()
            estimate = None
        self.image_pub.publish(
            numpy_to_image(frame.image, "rgb8", stamp=frame.stamp, frame_id=frame.frame_id)
        )
        if estimate is None:
            done, needed = self.estimator.reference_progress
            self._publish_status(
                "WARN", f"collecting the no-contact reference ({done}/{needed} frames)", {}, frame.stamp
            )
            if done == needed:
                self.get_logger().info(f"tactile '{self.sensor}': reference ready; contact estimates follow")
            return
        if self.contact_pub is not None:
            self.contact_pub.publish(
                numpy_to_image(estimate.contact_mask, "mono8", stamp=frame.stamp, frame_id=frame.frame_id)
            )
        self._publish_status(
            "OK", "contact" if estimate.in_contact else "no contact", contact_values(estimate), frame.stamp
        )

    def _publish_status(self, level: str, message: str, values: dict[str, object], stamp: float) -> None:
        stats = self.capture.stats if self.capture else None
        extra = (
            {"source_state": stats.state, "frames": stats.frames, "reconnects": stats.reconnects}
            if stats
            else {}
        )
        extra["reference_restarts"] = self.estimator.reference_restarts
        self.status_pub.publish(
            diagnostics_msg(f"tactile/{self.sensor}", level, message, {**values, **extra}, stamp)
        )

    def _stale_status(self) -> None:
        """Once a second without frames: say why (source down, file ended)."""
        assert self.capture is not None
        now = ros_seconds(self)
        if now - self._last_frame_time < 1.0:
            return
        s = self.capture.stats
        message = (
            "tactile sensor video ended (loop is off)"
            if s.state == "ended"
            else f"no frames: {s.last_error or s.state}"
        )
        self._publish_status("ERROR" if s.state == "reconnecting" else "WARN", message, {}, now)

    def _on_reset_reference(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._reset_requested.set()
        response.success = True
        response.message = f"re-taking the reference from the next {self.estimator.config.reference_frames} frames: do not touch the gel"
        self.get_logger().info(f"tactile '{self.sensor}': {response.message}")
        return response

    # -- force/torque ------------------------------------------------------------------------
    def _on_wrench(self, msg) -> None:
        assert self.remover is not None
        result = self.remover.update(raw_wrench_to_core(msg))
        if result.status == "ok":
            self.wrench_pub.publish(wrench_to_msg(result.wrench))
        elif result.status == "rejected":
            self.get_logger().warning(
                f"F/T sample rejected: {result.reason} ({self.remover.rejected} rejected so far); nothing published for it",
                throttle_duration_sec=2.0,
            )
        elif self.remover.bias_ready is False and self.remover.progress[0] == 1:
            self.get_logger().info("F/T bias: collecting; the bias-removed wrench starts when it is complete")

    def _on_rezero(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        assert self.remover is not None
        self.remover.rezero()
        response.success = True
        response.message = (
            f"re-zeroing: the next {self.remover.config.bias_samples} valid samples become the new bias "
            "(the old one stays in use until then)"
        )
        self.get_logger().info(f"F/T {response.message}")
        return response

    def stop(self) -> None:
        """Stop the capture thread and release the sensor."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3.0)
        if self.capture is not None:
            self.capture.close()


def contact_values(estimate: ContactEstimate) -> dict[str, object]:
    """DiagnosticArray key/values of a contact estimate (see the module docstring)."""
    u, v = estimate.centroid if estimate.centroid is not None else (float("nan"), float("nan"))
    return {
        "in_contact": estimate.in_contact,
        "contact_area_fraction": f"{estimate.area_fraction:.6f}",
        "contact_area_pixels": estimate.area_pixels,
        "pressure": f"{estimate.pressure:.4f}",
        "pressure_max": f"{estimate.pressure_max:.4f}",
        "load": f"{estimate.load:.6f}",
        "centroid_u": f"{u:.2f}",
        "centroid_v": f"{v:.2f}",
    }


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vla_stack tactile_node` / `vla-stack up`."""
    return spin_node(TactileNode, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
