"""camera_calibration YAML: parse, write back, scale to the capture size, clear errors (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from vla_stack.core.sensors.calibration import (
    CalibrationError,
    CameraCalibration,
    aspect_ratio_mismatch,
    calibration_yaml,
    load_calibration,
    load_intrinsics,
    parse_calibration,
    resolve_camera_info_url,
    save_calibration,
    scale_calibration,
    scale_intrinsics,
)
from vla_stack.core.types import CameraIntrinsics
from vla_stack.paths import config_path

EXAMPLE = config_path("calibration", "example_camera.yaml")

VALID = {
    "image_width": 640,
    "image_height": 480,
    "camera_name": "cam",
    "camera_matrix": {"rows": 3, "cols": 3, "data": [500.0, 0, 319.5, 0, 510.0, 239.5, 0, 0, 1]},
    "distortion_model": "plumb_bob",
    "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.1, -0.2, 0.001, 0.002, 0.05]},
    "rectification_matrix": {"rows": 3, "cols": 3, "data": [1, 0, 0, 0, 1, 0, 0, 0, 1]},
    "projection_matrix": {"rows": 3, "cols": 4, "data": [495.0, 0, 318.0, 0, 0, 505.0, 240.0, 0, 0, 0, 1, 0]},
}


def _variant(**changes):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_shipped_example_parses():
    calib = load_calibration(EXAMPLE, frame_id="cam_optical")
    intr = calib.intrinsics
    assert (intr.width, intr.height) == (640, 480)
    assert intr.fx == pytest.approx(554.3827) and intr.cy == pytest.approx(239.1846)
    assert intr.distortion_model == "plumb_bob" and len(intr.distortion) == 5
    assert intr.frame_id == "cam_optical" and calib.camera_name == "example_camera"
    assert calib.projection[0, 0] == pytest.approx(548.1473)


def test_parse_reads_every_field():
    calib = parse_calibration(VALID)
    intr = calib.intrinsics
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == (500.0, 510.0, 319.5, 239.5)
    assert intr.distortion == (0.1, -0.2, 0.001, 0.002, 0.05)
    np.testing.assert_array_equal(calib.rectification, np.eye(3))
    assert calib.projection.shape == (3, 4) and calib.projection[1, 2] == 240.0


def test_write_then_read_round_trip(tmp_path):
    calib = parse_calibration(VALID)
    path = save_calibration(calib, tmp_path / "sub" / "cam.yaml")
    back = load_calibration(f"file://{path}")
    assert back.intrinsics == calib.intrinsics
    np.testing.assert_array_equal(back.projection, calib.projection)
    # what ROS tools read: the written file is plain camera_calibration YAML
    raw = yaml.safe_load(path.read_text())
    assert raw["camera_matrix"] == {
        "rows": 3,
        "cols": 3,
        "data": [500.0, 0.0, 319.5, 0.0, 510.0, 239.5, 0.0, 0.0, 1.0],
    }
    assert raw["distortion_coefficients"]["cols"] == 5


def test_bare_intrinsics_write_identity_rectification(tmp_path):
    intr = CameraIntrinsics(320, 240, 300.0, 300.0, 160.0, 120.0, "equidistant", (0.1, 0.01, 0.0, 0.0))
    path = save_calibration(intr, tmp_path / "fisheye.yaml", camera_name="wrist")
    back = load_calibration(path)
    assert back.camera_name == "wrist" and back.intrinsics.distortion_model == "equidistant"
    np.testing.assert_allclose(back.projection, np.hstack([intr.K, np.zeros((3, 1))]))


def test_lenient_forms_found_in_the_wild():
    data = _variant(rectification_matrix=None, projection_matrix=None, distortion_model=None)
    data["camera_model"] = "plumb_bob"  # legacy key
    data["distortion_coefficients"] = [0.0, 0.0, 0.0, 0.0, 0.0]  # bare list
    calib = parse_calibration(data)
    np.testing.assert_array_equal(calib.projection[:, :3], calib.intrinsics.K)
    no_distortion = parse_calibration(_variant(distortion_model=None, distortion_coefficients=None))
    assert no_distortion.intrinsics.distortion == (0.0,) * 5


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("just a string", "expected a YAML mapping"),
        (_variant(image_width=None), "missing key 'image_width'"),
        (_variant(image_height=-4), "'image_height' must be a positive integer"),
        (_variant(image_width=640.5), "'image_width' must be a positive integer"),
        (_variant(camera_matrix=None), "missing key 'camera_matrix'"),
        (_variant(camera_matrix={"rows": 3, "cols": 3, "data": [1, 2, 3]}), "'data' has 3 values"),
        (_variant(camera_matrix={"rows": 2, "cols": 3, "data": [1, 0, 0, 0, 1, 0]}), "must be 3x3"),
        (
            _variant(camera_matrix={"rows": 3, "cols": 3, "data": [500, 0, 1, 0, "x", 1, 0, 0, 1]}),
            "not a number",
        ),
        (
            _variant(camera_matrix={"rows": 3, "cols": 3, "data": [500, 0, 1, 0, ".nan", 1, 0, 0, 1]}),
            "not a number",
        ),
        (
            _variant(camera_matrix={"rows": 3, "cols": 3, "data": [-5, 0, 1, 0, 5, 1, 0, 0, 1]}),
            "must be positive",
        ),
        (_variant(camera_matrix={"rows": 3, "cols": 3, "data": [5, 0, 1, 0, 5, 1, 0, 1, 1]}), "must be [fx"),
        (_variant(distortion_model="fisheye_magic"), "unknown distortion_model 'fisheye_magic'"),
        (_variant(distortion_model="equidistant"), "takes 4 coefficients, file has 5"),
        (_variant(distortion_coefficients={"rows": 1, "cols": 4, "data": [0, 0, 0, 0, 0]}), "says 1x4"),
        (_variant(projection_matrix={"rows": 3, "cols": 3, "data": [1] * 9}), "must be 3x4"),
    ],
)
def test_malformed_files_name_the_problem(data, needle):
    with pytest.raises(CalibrationError, match=None) as info:
        parse_calibration(data, source="cam.yaml")
    assert needle in str(info.value) and "cam.yaml" in str(info.value)


def test_nan_in_matrix_is_rejected():
    data = _variant(camera_matrix={"rows": 3, "cols": 3, "data": [500, 0, float("nan"), 0, 5, 1, 0, 0, 1]})
    with pytest.raises(CalibrationError, match="NaN/inf"):
        parse_calibration(data)


def test_file_errors(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_width: [unclosed\n")
    with pytest.raises(CalibrationError, match="not valid YAML"):
        load_calibration(bad)
    with pytest.raises(CalibrationError, match="unsupported URL scheme"):
        resolve_camera_info_url("http://example.invalid/cam.yaml")


def test_url_forms(tmp_path, monkeypatch):
    assert resolve_camera_info_url("package://vla_stack/config/calibration/example_camera.yaml") == EXAMPLE
    assert resolve_camera_info_url(f"file://{tmp_path}/a.yaml") == tmp_path / "a.yaml"
    monkeypatch.setenv("ROS_HOME", str(tmp_path))
    assert (
        resolve_camera_info_url("file://${ROS_HOME}/camera_info/${NAME}.yaml", "wrist")
        == tmp_path / "camera_info" / "wrist.yaml"
    )


def test_scaling_keeps_the_principal_point_on_the_sensor():
    intr = parse_calibration(VALID).intrinsics
    half = scale_intrinsics(intr, 320, 240)
    assert (half.fx, half.fy) == (250.0, 255.0)
    # image centre (319.5, 239.5) at 640x480 is the centre (159.5, 119.5) at 320x240
    assert (half.cx, half.cy) == (159.5, 119.5)
    assert half.distortion == intr.distortion
    back = scale_intrinsics(half, 640, 480)
    assert back.fx == pytest.approx(intr.fx) and back.cx == pytest.approx(intr.cx)


def test_scaled_intrinsics_project_points_where_the_resized_image_has_them():
    """A 3-D point projects onto the same place of the scene in the full and the scaled image."""
    intr = parse_calibration(VALID).intrinsics
    small = scale_intrinsics(intr, 160, 120)
    point = np.array([0.1, -0.05, 1.2])
    u_full = intr.K @ point / point[2]
    u_small = small.K @ point / point[2]
    # pixel centre convention: u_small = (u_full + 0.5) / 4 - 0.5
    np.testing.assert_allclose(u_small[:2], (u_full[:2] + 0.5) / 4.0 - 0.5)


def test_scale_calibration_scales_projection_too():
    calib = parse_calibration(VALID)
    scaled = scale_calibration(calib, 1280, 960)
    assert scaled.projection[0, 0] == pytest.approx(990.0) and scaled.projection[1, 1] == pytest.approx(
        1010.0
    )
    assert scaled.intrinsics.width == 1280
    assert scale_calibration(calib, 640, 480) is calib
    assert load_intrinsics(EXAMPLE, 320, 240).fx == pytest.approx(554.3827 / 2)


def test_aspect_ratio_mismatch_flags_cropping_drivers():
    assert not aspect_ratio_mismatch((640, 480), (320, 240))
    assert aspect_ratio_mismatch((640, 480), (1280, 720))


def test_with_frame_id_and_from_intrinsics():
    intr = CameraIntrinsics.from_fovy(64, 48, 60.0)
    calib = CameraCalibration.from_intrinsics(intr).with_frame_id("wrist_optical")
    assert calib.intrinsics.frame_id == "wrist_optical"
    assert "image_width: 64" in calibration_yaml(calib)
