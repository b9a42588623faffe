"""camera_node and tactile_node as real processes over DDS, fed by video files written here with OpenCV."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.srv import SetCameraInfo
from std_srvs.srv import Trigger

from vla_stack.core.sensors.calibration import CameraCalibration, load_calibration, save_calibration
from vla_stack.core.types import CameraIntrinsics, Wrench
from vla_stack.paths import config_path
from vla_stack.ros import interfaces
from vla_stack.ros.conversions import (
    MessageError,
    calibration_to_camera_info,
    camera_info_to_calibration,
    diagnostics_to_dict,
    image_to_numpy,
    raw_wrench_to_core,
    stamp_to_seconds,
    wrench_to_msg,
)

pytestmark = pytest.mark.ros

W, H = 160, 120


def write_video(path, frames_bgr, fps=30.0):
    """Write BGR frames with OpenCV (MJPG/AVI); written under a temporary name, then renamed."""
    tmp = path.with_name("writing_" + path.name)
    writer = cv2.VideoWriter(
        str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (frames_bgr[0].shape[1], frames_bgr[0].shape[0])
    )
    assert writer.isOpened()
    for f in frames_bgr:
        writer.write(f)
    writer.release()
    tmp.replace(path)  # the node never sees half a file
    return path


def red_blue_frames(n=20):
    """Left half red, right half blue, given in OpenCV's BGR order."""
    f = np.zeros((H, W, 3), np.uint8)
    f[:, : W // 2] = (0, 0, 230)
    f[:, W // 2 :] = (230, 0, 0)
    return [f.copy() for _ in range(n)]


def check_rgb_image(msg: Image):
    assert msg.encoding == "rgb8" and (msg.width, msg.height) == (W, H) and msg.step == 3 * W
    img = image_to_numpy(msg).astype(int)
    left, right = img[:, : W // 2 - 4].reshape(-1, 3).mean(0), img[:, W // 2 + 4 :].reshape(-1, 3).mean(0)
    assert left[0] > 200 and left[2] < 30, f"left half should be red in RGB, got {left}"
    assert right[2] > 200 and right[0] < 30, f"right half should be blue in RGB, got {right}"


def test_camera_node_publishes_a_video_file_with_scaled_calibration(tmp_path, start_node, ros_node):
    video = write_video(tmp_path / "scene.avi", red_blue_frames())
    # calibrated at 320x240; the file delivers 160x120 -> K is scaled by 1/2
    calib = CameraCalibration.from_intrinsics(CameraIntrinsics(320, 240, 300.0, 310.0, 159.5, 119.5), "scene")
    calib_file = save_calibration(calib, tmp_path / "scene.yaml")
    images = ros_node.subscribe(interfaces.COLOR_IMAGE.name, Image)
    infos = ros_node.subscribe(interfaces.CAMERA_INFO.name, CameraInfo)
    status = ros_node.subscribe("camera_node/status", DiagnosticArray, interfaces.COMMAND_QOS)
    node = start_node(
        "camera_node",
        param_files=[config_path("camera_node.yaml")],  # the shipped file parses
        params={
            "source": str(video),
            "loop": True,
            "width": 0,
            "height": 0,
            "fps": 30.0,
            "camera_info_url": f"file://{calib_file}",
            "frame_id": "test_cam_optical",
            "status_period": 0.5,
        },
    )
    assert ros_node.wait_until(lambda: len(images) >= 25 and len(infos) >= 25 and status, timeout=30), (
        node.text()
    )
    with ros_node.lock:
        imgs, cams, stats = list(images), list(infos), list(status)
    for msg in imgs[:3]:
        check_rgb_image(msg)
        assert msg.header.frame_id == "test_cam_optical"
    info = cams[-1]
    assert (info.width, info.height) == (W, H) and info.header.frame_id == "test_cam_optical"
    np.testing.assert_allclose(info.k, [150.0, 0, 79.5, 0, 155.0, 59.5, 0, 0, 1])
    np.testing.assert_allclose(info.p, [150.0, 0, 79.5, 0, 0, 155.0, 59.5, 0, 0, 0, 1, 0])
    assert info.distortion_model == "plumb_bob"
    # image and camera_info of a frame carry the same capture stamp; stamps increase; more than
    # the 20 frames of the file arrived, so it looped
    image_stamps = [stamp_to_seconds(m.header.stamp) for m in imgs]
    assert set(image_stamps) & {stamp_to_seconds(m.header.stamp) for m in cams}
    assert all(b > a for a, b in zip(image_stamps, image_stamps[1:], strict=False))
    assert "scaling the 320x240 calibration to the 160x120 frames" in node.text()
    last = diagnostics_to_dict(stats[-1])["camera_node"]
    assert last["values"]["state"] == "streaming" and last["level"] == "OK"

    # camera_calibration's calibrator stores a new calibration through set_camera_info:
    # applied to the published camera_info at once and written back to camera_info_url
    new = CameraCalibration.from_intrinsics(CameraIntrinsics(W, H, 123.0, 124.0, 80.0, 60.0), "scene")
    client = ros_node.node.create_client(SetCameraInfo, "camera/color/set_camera_info")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(SetCameraInfo.Request(camera_info=calibration_to_camera_info(new)))
    assert ros_node.wait_until(future.done, timeout=10)
    assert future.result().success, future.result().status_message
    assert ros_node.wait_until(lambda: infos[-1].k[0] == 123.0, timeout=10)
    saved = load_calibration(calib_file)
    assert (saved.intrinsics.width, saved.intrinsics.fx, saved.intrinsics.fy) == (W, 123.0, 124.0)
    # a malformed one is refused and changes nothing
    bad = calibration_to_camera_info(new)
    bad.k = [float("nan")] * 9
    future = client.call_async(SetCameraInfo.Request(camera_info=bad))
    assert ros_node.wait_until(future.done, timeout=10)
    assert not future.result().success and "K must be 9 finite numbers" in future.result().status_message
    assert load_calibration(calib_file).intrinsics.fx == 123.0
    assert node.alive()


def test_camera_node_survives_missing_source_and_bad_calibration_then_recovers(
    tmp_path, start_node, ros_node
):
    video = tmp_path / "arrives_later.avi"
    bad_calib = tmp_path / "broken.yaml"
    bad_calib.write_text(
        "image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: [1, 2]}\n"
    )
    images = ros_node.subscribe(interfaces.COLOR_IMAGE.name, Image)
    infos = ros_node.subscribe(interfaces.CAMERA_INFO.name, CameraInfo)
    node = start_node(
        "camera_node",
        params={
            "source": str(video),
            "loop": True,
            "camera_info_url": str(bad_calib),
            "fx": 100.0,
            "fps": 30,
            "reconnect_period": 0.2,
            "reconnect_max_period": 0.4,
            "width": -5,
            "height": 0,
        },
    )
    assert node.wait_for_output("cannot use calibration", timeout=20), node.text()
    assert "'camera_matrix' says 3x3 but 'data' has 2 values" in node.text()
    assert "publishing ideal pinhole fx=100 px instead" in node.text()
    assert node.wait_for_output("parameter width=-5 rejected", timeout=5), node.text()
    # keeps retrying with backoff, one line per attempt, and stays alive
    assert ros_node.wait_until(lambda: node.text().count("does not exist; retrying") >= 3, timeout=20), (
        node.text()
    )
    assert node.alive() and not images
    write_video(video, red_blue_frames())  # the camera "comes back"
    assert ros_node.wait_until(lambda: len(images) >= 3 and len(infos) >= 3, timeout=20), node.text()
    check_rgb_image(images[-1])
    with ros_node.lock:
        info = infos[-1]
    np.testing.assert_allclose(
        [info.k[0], info.k[4], info.k[2], info.k[5]], [100.0, 100.0, (W - 1) / 2, (H - 1) / 2]
    )
    assert "opened" in node.text() and node.alive()


def gel_frames(n_free: int, n_contact: int, seed: int = 0):
    """BGR frames of a gel: n_free without contact, then n_contact with a bump centred at (110, 50) px."""
    rng = np.random.default_rng(seed)
    u = np.linspace(0, 1, W)[None, :]
    v = np.linspace(0, 1, H)[:, None]
    base = np.stack(
        [
            np.broadcast_to(120 + 40 * u, (H, W)),
            np.broadcast_to(90 + 60 * v, (H, W)),
            np.broadcast_to(100 + 30 * u * v, (H, W)),
        ],
        axis=-1,
    )
    uu, vv = np.meshgrid(np.arange(W), np.arange(H))
    bump = 70 * np.exp(-((uu - 110) ** 2 + (vv - 50) ** 2) / (2 * 10.0**2))
    frames = []
    for i in range(n_free + n_contact):
        img = base + (np.stack([bump, -0.5 * bump, 0.3 * bump], -1) if i >= n_free else 0)
        img = img + rng.normal(0, 2.0, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def test_tactile_node_contact_estimate_rises_with_contact(tmp_path, start_node, ros_node):
    video = write_video(tmp_path / "digit.avi", gel_frames(30, 30))
    status = ros_node.subscribe("tactile/left/status", DiagnosticArray)
    images = ros_node.subscribe("tactile/left/image", Image)
    contacts = ros_node.subscribe("tactile/left/contact", Image)
    node = start_node(
        "tactile_node",
        param_files=[config_path("tactile_node.yaml")],
        params={
            "sensor": "left",
            "source": str(video),
            "loop": True,
            "width": 0,
            "height": 0,
            "fps": 30.0,
            "reference_frames": 5,
        },
    )

    def estimates():
        with ros_node.lock:
            msgs = list(status)
        out = []
        for m in msgs:
            d = diagnostics_to_dict(m)["tactile/left"]
            if "in_contact" in d["values"]:
                out.append(d["values"])
        return out

    def contact_appeared():
        """A no-contact estimate followed by a contact one (the clip loops: free, then pressed)."""
        flags = [x["in_contact"] == "True" for x in estimates()]
        return any(not a and b for a, b in zip(flags, flags[1:], strict=False))

    assert ros_node.wait_until(contact_appeared, timeout=30), node.text()
    assert ros_node.wait_until(lambda: len(contacts) >= 3 and len(images) >= 3, timeout=10)
    est = estimates()
    free = [float(x["contact_area_fraction"]) for x in est if x["in_contact"] == "False"]
    touching = [x for x in est if x["in_contact"] == "True"]
    assert max(free) < 0.002
    areas = [float(x["contact_area_fraction"]) for x in touching]
    # a 70-level bump with sigma 10 px exceeds the threshold within ~16 px: ~4 % of 160x120
    assert min(areas) > 0.02 and max(areas) < 0.1
    assert all(float(x["pressure"]) > 0.2 for x in touching)
    assert all(math.dist((float(x["centroid_u"]), float(x["centroid_v"])), (110, 50)) < 4 for x in touching)
    # the estimate rises when the contact frames appear
    flags = [x["in_contact"] == "True" for x in est]
    rise = next(i for i in range(1, len(flags)) if flags[i] and not flags[i - 1])
    assert float(est[rise]["load"]) > 10 * float(est[rise - 1]["load"]) + 1e-3
    with ros_node.lock:
        mask_msg = contacts[-1]
        image_msg = images[-1]
    assert mask_msg.encoding == "mono8" and (mask_msg.width, mask_msg.height) == (W, H)
    assert image_msg.encoding == "rgb8" and (image_msg.width, image_msg.height) == (W, H)
    assert set(np.unique(image_to_numpy(mask_msg))) <= {0, 255}
    assert "reference ready" in node.text() and node.alive()


def test_tactile_node_wrench_passthrough_removes_bias_and_rejects_nan(start_node, ros_node):
    node = start_node(
        "tactile_node", params={"vision_enabled": False, "wrench_passthrough": True, "bias_samples": 5}
    )
    out = ros_node.subscribe("wrench", WrenchStamped)
    raw_pub = ros_node.publisher("wrench_raw", WrenchStamped, interfaces.WRENCH.pub_qos)
    bias_f, bias_t = np.array([1.0, -2.0, 15.0]), np.array([0.1, 0.2, -0.3])
    stamp = [100.0]

    def raw(extra_f=(0, 0, 0)):
        stamp[0] += 0.01
        return wrench_to_msg(Wrench(bias_f + np.asarray(extra_f, float), bias_t, stamp[0], "ft_sensor"))

    def latest():
        with ros_node.lock:
            return out[-1] if out else None

    # the bias forms from the first 5 samples; then a 4 N push on z comes out as 4 N
    assert ros_node.publish_until(raw_pub, raw(), lambda: latest() is not None, timeout=20), node.text()
    assert ros_node.publish_until(
        raw_pub, raw((0, 0, 4.0)), lambda: latest().wrench.force.z == pytest.approx(4.0), timeout=10
    )
    msg = latest()
    assert msg.header.frame_id == "ft_sensor"
    assert msg.wrench.force.x == pytest.approx(0.0) and msg.wrench.torque.z == pytest.approx(0.0)

    # NaN samples: rejected with a reason, nothing published for them, the node keeps going
    nan_msg = wrench_to_msg(Wrench([math.nan, 0, 0], [0, 0, 0], 200.0, "ft_sensor"))
    ros_node.publish_until(
        raw_pub, nan_msg, lambda: "F/T sample rejected: non-finite force.x=nan" in node.text(), timeout=10
    )
    assert "F/T sample rejected: non-finite force.x=nan" in node.text()
    with ros_node.lock:
        assert all(math.isfinite(m.wrench.force.x) for m in out)
        assert not any(stamp_to_seconds(m.header.stamp) == 200.0 for m in out)

    # re-zero with a 3 N tool load: afterwards the load reads as zero
    client = ros_node.node.create_client(Trigger, "/tactile_node/rezero")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert ros_node.wait_until(future.done, timeout=10)
    assert future.result().success and "next 5 valid samples" in future.result().message
    assert ros_node.publish_until(
        raw_pub, raw((0, 0, 3.0)), lambda: abs(latest().wrench.force.z) < 1e-9, timeout=10
    ), node.text()
    assert node.alive()


def test_calibration_and_raw_wrench_conversions():
    """The conversions these nodes added (no DDS needed)."""
    calib = CameraCalibration(
        "stereo_left",
        CameraIntrinsics(640, 480, 500.0, 501.0, 320.0, 240.0, frame_id="left_optical"),
        rectification=np.eye(3),
        projection=np.array([[490.0, 0, 321, -49.0], [0, 490.0, 241, 0], [0, 0, 1, 0]]),
    )
    msg = calibration_to_camera_info(calib, stamp=3.5)
    assert (
        msg.p[3] == -49.0
        and msg.header.frame_id == "left_optical"
        and stamp_to_seconds(msg.header.stamp) == 3.5
    )
    back = camera_info_to_calibration(msg, "stereo_left")
    assert back.intrinsics == calib.intrinsics
    np.testing.assert_array_equal(back.projection, calib.projection)
    msg.r = [0.0] * 9  # "not set" in uncalibrated camera_info -> identity
    np.testing.assert_array_equal(camera_info_to_calibration(msg).rectification, np.eye(3))
    msg.p = [1.0] * 11
    with pytest.raises(MessageError, match="P 12"):
        camera_info_to_calibration(msg)
    raw = raw_wrench_to_core(wrench_to_msg(Wrench([math.nan, 1, 2], [0, 0, 0], 1.0, "ft")))
    assert math.isnan(raw.force[0]) and raw.frame_id == "ft"  # kept for the consumer to reject with a reason
