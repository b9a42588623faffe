"""Camera calibration files in the ROS `camera_calibration` / `camera_info_manager` YAML format.

The format (what `ros2 run camera_calibration cameracalibrator` saves and what
`camera_info_manager` loads)::

    image_width: 640
    image_height: 480
    camera_name: scene_camera
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    projection_matrix: {rows: 3, cols: 4, data: [fx', 0, cx', Tx, 0, fy', cy', Ty, 0, 0, 1, 0]}

Files found in the wild are read leniently where the meaning is unambiguous (the legacy key
`camera_model` for `distortion_model`, a plain list for `distortion_coefficients`, missing
rectification/projection matrices default to identity and [K | 0]); anything else that is
wrong raises `CalibrationError` naming the file and the key.

Intrinsics are in pixels of the calibrated image size. When the capture size differs,
`scale_calibration` / `scale_intrinsics` rescale them (pixel centres at integer coordinates,
as OpenCV and ROS use: u' = (u + 0.5) * s - 0.5). Distortion coefficients act on normalised
coordinates and do not change with the image size.

ROS-free: numpy and PyYAML only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import yaml

from vla_stack.core.types import CameraIntrinsics

# Number of distortion coefficients each ROS distortion model takes.
DISTORTION_LENGTHS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (5,),
    "rational_polynomial": (8, 12, 14),
    "equidistant": (4,),
    "": (0,),
}


class CalibrationError(ValueError):
    """A calibration file is missing, unreadable or malformed; the text says which file and key."""


@dataclass(frozen=True)
class CameraCalibration:
    """Everything a camera_calibration YAML holds.

    Args:
        camera_name: name stored in the file (camera_info_manager checks it against the driver's).
        intrinsics: K, D and the calibrated image size (pixels); `frame_id` is not part of the
            file and is set by whoever publishes it.
        rectification: (3, 3) rectification rotation R (identity for a monocular camera).
        projection: (3, 4) projection matrix P of the rectified image, pixels.
    """

    camera_name: str
    intrinsics: CameraIntrinsics
    rectification: np.ndarray = field(default_factory=lambda: np.eye(3))
    projection: np.ndarray | None = None

    def __post_init__(self) -> None:
        r = np.asarray(self.rectification, dtype=np.float64)
        if r.shape != (3, 3) or not np.all(np.isfinite(r)):
            raise CalibrationError(f"rectification must be a finite 3x3 matrix, got shape {r.shape}")
        p = self.projection
        if p is None:
            p = np.hstack([self.intrinsics.K, np.zeros((3, 1))])
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (3, 4) or not np.all(np.isfinite(p)):
            raise CalibrationError(f"projection must be a finite 3x4 matrix, got shape {p.shape}")
        object.__setattr__(self, "rectification", r)
        object.__setattr__(self, "projection", p)

    @staticmethod
    def from_intrinsics(intrinsics: CameraIntrinsics, camera_name: str = "camera") -> CameraCalibration:
        """Monocular calibration from intrinsics alone (R = identity, P = [K | 0])."""
        return CameraCalibration(camera_name, intrinsics)

    def with_frame_id(self, frame_id: str) -> CameraCalibration:
        """Same calibration with the intrinsics' optical frame set to `frame_id`."""
        return replace(self, intrinsics=replace(self.intrinsics, frame_id=frame_id))


# ----------------------------------------------------------------------------- parsing
def _matrix(
    data: Mapping, key: str, shape: tuple[int, int], source: str, required: bool = True
) -> np.ndarray | None:
    """Read `{rows, cols, data}` under `key` as a finite float array of `shape`."""
    if key not in data or data[key] is None:
        if required:
            raise CalibrationError(f"{source}: missing key '{key}'")
        return None
    entry = data[key]
    if isinstance(entry, Mapping):
        if "data" not in entry:
            raise CalibrationError(f"{source}: '{key}' has no 'data' list")
        values = entry["data"]
        rows, cols = entry.get("rows", shape[0]), entry.get("cols", shape[1])
    elif isinstance(entry, list):  # lenient: a bare list
        values, rows, cols = entry, shape[0], shape[1]
    else:
        raise CalibrationError(
            f"{source}: '{key}' must be a mapping with rows/cols/data, got {type(entry).__name__}"
        )
    if not isinstance(values, list):
        raise CalibrationError(
            f"{source}: '{key}.data' must be a list of numbers, got {type(values).__name__}"
        )
    try:
        rows, cols = int(rows), int(cols)
        arr = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{source}: '{key}' holds a value that is not a number ({exc})") from None
    if (rows, cols) != shape:
        raise CalibrationError(f"{source}: '{key}' must be {shape[0]}x{shape[1]}, file says {rows}x{cols}")
    if arr.size != rows * cols:
        raise CalibrationError(f"{source}: '{key}' says {rows}x{cols} but 'data' has {arr.size} values")
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"{source}: '{key}' contains NaN/inf")
    return arr.reshape(shape)


def _distortion(data: Mapping, source: str) -> tuple[str, tuple[float, ...]]:
    model = data.get("distortion_model", data.get("camera_model"))
    entry = data.get("distortion_coefficients", data.get("distortion_coefficents"))  # common typo in the wild
    if entry is None:
        if model not in (None, ""):
            raise CalibrationError(
                f"{source}: distortion_model '{model}' given but no 'distortion_coefficients'"
            )
        return "plumb_bob", (0.0,) * 5
    if isinstance(entry, Mapping):
        values = entry.get("data")
        rows, cols = entry.get("rows", 1), entry.get("cols", None)
    else:
        values, rows, cols = entry, 1, None
    if not isinstance(values, list):
        raise CalibrationError(f"{source}: 'distortion_coefficients.data' must be a list of numbers")
    try:
        coeffs = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(
            f"{source}: 'distortion_coefficients' holds a value that is not a number ({exc})"
        ) from None
    if cols is not None and int(rows) * int(cols) != len(coeffs):
        raise CalibrationError(
            f"{source}: 'distortion_coefficients' says {rows}x{cols} but 'data' has {len(coeffs)} values"
        )
    if not all(math.isfinite(c) for c in coeffs):
        raise CalibrationError(f"{source}: 'distortion_coefficients' contains NaN/inf")
    if model is None:
        model = "plumb_bob" if len(coeffs) == 5 else "rational_polynomial" if len(coeffs) == 8 else ""
        if not model:
            raise CalibrationError(
                f"{source}: no 'distortion_model' and {len(coeffs)} coefficients (cannot guess the model)"
            )
    model = str(model)
    allowed = DISTORTION_LENGTHS.get(model)
    if allowed is None:
        raise CalibrationError(
            f"{source}: unknown distortion_model '{model}' (known: {sorted(m for m in DISTORTION_LENGTHS if m)})"
        )
    if len(coeffs) not in allowed:
        raise CalibrationError(
            f"{source}: distortion_model '{model}' takes {' or '.join(map(str, allowed))} coefficients, file has {len(coeffs)}"
        )
    return model, coeffs


def parse_calibration(
    data: object, source: str = "<calibration>", frame_id: str = "camera_color_optical_frame"
) -> CameraCalibration:
    """Build a CameraCalibration from the parsed YAML mapping of a camera_calibration file.

    Args:
        data: the mapping `yaml.safe_load` returned.
        source: file name for error messages.
        frame_id: optical frame to put into the intrinsics (the file has none).

    Raises:
        CalibrationError: naming the key that is missing or malformed.
    """
    if not isinstance(data, Mapping):
        raise CalibrationError(
            f"{source}: expected a YAML mapping with image_width, camera_matrix, ..., got {type(data).__name__}"
        )
    for key in ("image_width", "image_height"):
        if key not in data:
            raise CalibrationError(f"{source}: missing key '{key}'")
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CalibrationError(f"{source}: '{key}' must be a positive integer, got {value!r}")
    width, height = int(data["image_width"]), int(data["image_height"])
    k = _matrix(data, "camera_matrix", (3, 3), source)
    assert k is not None
    if not np.allclose(k[2], [0.0, 0.0, 1.0]) or abs(k[1, 0]) > 1e-9:
        raise CalibrationError(
            f"{source}: 'camera_matrix' must be [fx, s, cx, 0, fy, cy, 0, 0, 1], got {k.reshape(-1).tolist()}"
        )
    if abs(k[0, 1]) > 1e-6:
        raise CalibrationError(
            f"{source}: 'camera_matrix' has skew {k[0, 1]} (not supported: recalibrate with zero skew)"
        )
    if not (k[0, 0] > 0 and k[1, 1] > 0):
        raise CalibrationError(
            f"{source}: focal lengths in 'camera_matrix' must be positive, got fx={k[0, 0]}, fy={k[1, 1]}"
        )
    model, coeffs = _distortion(data, source)
    r = _matrix(data, "rectification_matrix", (3, 3), source, required=False)
    p = _matrix(data, "projection_matrix", (3, 4), source, required=False)
    name = data.get("camera_name", "camera")
    intrinsics = CameraIntrinsics(
        width=width,
        height=height,
        fx=float(k[0, 0]),
        fy=float(k[1, 1]),
        cx=float(k[0, 2]),
        cy=float(k[1, 2]),
        distortion_model=model,
        distortion=coeffs,
        frame_id=frame_id,
    )
    return CameraCalibration(
        str(name) if name is not None else "camera", intrinsics, np.eye(3) if r is None else r, p
    )


def resolve_camera_info_url(url: str | os.PathLike, camera_name: str = "camera") -> Path:
    """Path of a camera_info_manager URL.

    Accepts `file:///abs/path.yaml`, `package://<pkg>/relative/path.yaml`, and plain paths
    (relative ones against the working directory). `${NAME}` is replaced by `camera_name`
    and `${ROS_HOME}` by $ROS_HOME or ~/.ros, as camera_info_manager does.
    `package://vla_stack/...` resolves without a ROS install; other packages need
    ament_index_python (a ROS 2 install).

    Raises:
        CalibrationError: unsupported scheme or unknown package.
    """
    text = str(url).strip()
    ros_home = os.environ.get("ROS_HOME", str(Path.home() / ".ros"))
    text = text.replace("${NAME}", camera_name).replace("${ROS_HOME}", ros_home)
    if not text:
        raise CalibrationError("empty camera_info_url")
    parsed = urlparse(text)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # 1 letter: a Windows drive
        if parsed.scheme == "file":
            return Path(unquote(parsed.netloc + parsed.path))
        return Path(text).expanduser()
    if parsed.scheme == "package":
        package, rel = parsed.netloc, parsed.path.lstrip("/")
        if package == "vla_stack":
            from vla_stack.paths import share_dir

            return share_dir() / rel
        try:
            from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        except ImportError:
            raise CalibrationError(
                f"{text}: package:// URLs for '{package}' need a ROS 2 install (ament_index_python)"
            ) from None
        try:
            return Path(get_package_share_directory(package)) / rel
        except PackageNotFoundError:
            raise CalibrationError(f"{text}: package '{package}' not found in the ament index") from None
    raise CalibrationError(
        f"{text}: unsupported URL scheme '{parsed.scheme}' (use file://, package:// or a path)"
    )


def load_calibration(
    url: str | os.PathLike, frame_id: str = "camera_color_optical_frame"
) -> CameraCalibration:
    """Read a camera_calibration YAML file (path or camera_info_manager URL).

    Raises:
        CalibrationError: file missing/unreadable, not YAML, or malformed (the message says which).
    """
    path = resolve_camera_info_url(url)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist")
    try:
        text = path.read_text()
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration file {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_calibration(data, source=str(path), frame_id=frame_id)


def load_intrinsics(
    url: str | os.PathLike,
    width: int | None = None,
    height: int | None = None,
    frame_id: str = "camera_color_optical_frame",
) -> CameraIntrinsics:
    """Intrinsics from a calibration file, scaled to `width` x `height` when given (pixels)."""
    calib = load_calibration(url, frame_id=frame_id)
    if width and height:
        calib = scale_calibration(calib, width, height)
    return calib.intrinsics


# ----------------------------------------------------------------------------- scaling
def _scale_coordinate(value: float, s: float) -> float:
    # pixel centres at integer coordinates: the edge of the image (-0.5) maps to itself
    return (value + 0.5) * s - 0.5


def scale_intrinsics(intrinsics: CameraIntrinsics, width: int, height: int) -> CameraIntrinsics:
    """Intrinsics of the same camera delivering `width` x `height` pixels instead.

    Focal lengths scale by the size ratio per axis, the principal point keeps its place on the
    sensor. Only right when the driver scales the whole sensor image; if the aspect ratio
    changes the driver probably crops (see `aspect_ratio_mismatch`).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    sx, sy = width / intrinsics.width, height / intrinsics.height
    return replace(
        intrinsics,
        width=int(width),
        height=int(height),
        fx=intrinsics.fx * sx,
        fy=intrinsics.fy * sy,
        cx=_scale_coordinate(intrinsics.cx, sx),
        cy=_scale_coordinate(intrinsics.cy, sy),
    )


def scale_calibration(calib: CameraCalibration, width: int, height: int) -> CameraCalibration:
    """`calib` for a capture of `width` x `height` pixels (K and P scaled, D and R unchanged)."""
    intr = calib.intrinsics
    if (width, height) == (intr.width, intr.height):
        return calib
    sx, sy = width / intr.width, height / intr.height
    p = calib.projection.copy()
    p[0, 0] *= sx
    p[0, 3] *= sx  # Tx = -fx' * baseline
    p[0, 2] = _scale_coordinate(p[0, 2], sx)
    p[1, 1] *= sy
    p[1, 3] *= sy
    p[1, 2] = _scale_coordinate(p[1, 2], sy)
    return CameraCalibration(calib.camera_name, scale_intrinsics(intr, width, height), calib.rectification, p)


def aspect_ratio_mismatch(
    calib_size: tuple[int, int], capture_size: tuple[int, int], tolerance: float = 0.01
) -> bool:
    """True when the aspect ratios of two (width, height) sizes differ by more than `tolerance` (relative).

    A mismatch usually means the driver crops rather than scales, so scaled intrinsics are wrong
    and the camera should be calibrated at the capture size.
    """
    a = calib_size[0] / calib_size[1]
    b = capture_size[0] / capture_size[1]
    return abs(a - b) / a > tolerance


# ----------------------------------------------------------------------------- writing
def _fmt(values: np.ndarray | tuple[float, ...]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in np.asarray(values, dtype=np.float64).reshape(-1)) + "]"


def calibration_yaml(calib: CameraCalibration) -> str:
    """The camera_calibration YAML text of `calib` (what `save_calibration` writes)."""
    intr = calib.intrinsics
    d = tuple(intr.distortion)
    return (
        f"image_width: {intr.width}\n"
        f"image_height: {intr.height}\n"
        f"camera_name: {yaml.safe_dump(calib.camera_name, default_style=None).splitlines()[0]}\n"
        "camera_matrix:\n  rows: 3\n  cols: 3\n"
        f"  data: {_fmt(intr.K)}\n"
        f"distortion_model: {intr.distortion_model or chr(34) * 2}\n"
        f"distortion_coefficients:\n  rows: 1\n  cols: {len(d)}\n  data: {_fmt(d) if d else '[]'}\n"
        "rectification_matrix:\n  rows: 3\n  cols: 3\n"
        f"  data: {_fmt(calib.rectification)}\n"
        "projection_matrix:\n  rows: 3\n  cols: 4\n"
        f"  data: {_fmt(calib.projection)}\n"
    )


def save_calibration(
    calib: CameraCalibration | CameraIntrinsics, url: str | os.PathLike, camera_name: str = "camera"
) -> Path:
    """Write `calib` as a camera_calibration YAML file (parent directories are created).

    Args:
        calib: a full calibration, or bare intrinsics (then R = identity, P = [K | 0]).
        url: path or file:// / package:// URL.
        camera_name: name to store when `calib` is bare intrinsics.

    Returns the path written. Raises CalibrationError when it cannot be written.
    """
    if isinstance(calib, CameraIntrinsics):
        calib = CameraCalibration.from_intrinsics(calib, camera_name)
    path = resolve_camera_info_url(url, calib.camera_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(calibration_yaml(calib))
        tmp.replace(path)  # atomic: a reader never sees half a file
    except OSError as exc:
        raise CalibrationError(f"cannot write calibration file {path}: {exc}") from None
    return path
