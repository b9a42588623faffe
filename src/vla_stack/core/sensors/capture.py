"""ROS-free frame capture: OpenCV (V4L2 devices, video files, streams) and a synthetic source.

`Capture` wraps one `FrameSource` backend and adds what a lab camera needs:

- timestamps taken the moment a frame is grabbed (before decoding), from an injectable clock;
- RGB output (OpenCV delivers BGR or grey; both become (H, W, 3) uint8 RGB);
- an optional output size (frames are resized in software when the source delivers another
  size; one log line says so);
- reconnect with exponential backoff when the source cannot be opened or stops delivering
  (device unplugged, file not there yet): one log line per attempt, counters in `stats`,
  never an exception out of `read()` / `run()`;
- video files play at their own frame rate (or `fps`), optionally looping.

Backends register in `CAPTURE_BACKENDS` ("opencv", "synthetic"); `CaptureConfig.backend`
picks one by name. The logger is anything with `.info/.warning/.error(str)` (a `logging.Logger`
or an rclpy node logger).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vla_stack.core.registry import Registry
from vla_stack.core.types import CameraFrame

CAPTURE_BACKENDS = Registry("capture backend")
"""Frame source backends by name: create(name, config=CaptureConfig) -> FrameSource."""


class CaptureError(RuntimeError):
    """A source could not be opened; the text says which source and why."""


class Logger(Protocol):
    """What `Capture` logs through (logging.Logger and rclpy loggers both fit)."""

    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...
    def error(self, msg: str) -> Any: ...


@dataclass
class CaptureConfig:
    """What to capture and how; see the field help."""

    source: str = field(
        default="0",
        metadata={
            "help": "device index ('0'), V4L2 path ('/dev/video0', "
            "'/dev/v4l/by-id/...'), video file path, or stream URL (rtsp://, http://); "
            "for the synthetic backend a pattern name ('bars', 'noise')"
        },
    )
    backend: str = field(default="opencv", metadata={"help": "frame source backend: 'opencv' or 'synthetic'"})
    loop: bool = field(
        default=False, metadata={"help": "video files: start again at the end instead of stopping"}
    )
    width: int = field(
        default=0,
        metadata={
            "help": "output width, px (0 = as the source delivers); asked "
            "from devices, and frames of another size are resized"
        },
    )
    height: int = field(default=0, metadata={"help": "output height, px (0 = as the source delivers)"})
    fps: float = field(
        default=0.0,
        metadata={
            "help": "frame rate, Hz (0 = source's own): asked from devices "
            "(faster frames are dropped), playback rate of files"
        },
    )
    fourcc: str = field(
        default="",
        metadata={
            "help": "pixel format asked from V4L2 devices, e.g. 'MJPG' "
            "(needed for high resolutions over USB 2), '' = driver default"
        },
    )
    frame_id: str = field(
        default="camera_color_optical_frame", metadata={"help": "optical frame of the frames"}
    )
    reconnect_period: float = field(
        default=0.5,
        metadata={
            "help": "first retry delay after a failed open or "
            "a lost source, s (doubles up to reconnect_max_period)"
        },
    )
    reconnect_max_period: float = field(default=5.0, metadata={"help": "longest retry delay, s"})
    max_read_failures: int = field(
        default=5,
        metadata={"help": "consecutive failed reads before a live source counts as lost and is reopened"},
    )

    def __post_init__(self) -> None:
        self.source = str(self.source).strip()
        if not self.source:
            raise ValueError("source must not be empty (device index, /dev/videoN, file path or URL)")
        if self.width < 0 or self.height < 0 or (self.width == 0) != (self.height == 0):
            raise ValueError(
                f"width and height must both be 0 (source size) or both positive, got {self.width}x{self.height}"
            )
        if not (math.isfinite(self.fps) and self.fps >= 0):
            raise ValueError(f"fps must be >= 0 (0 = source's own rate), got {self.fps}")
        if self.fourcc and len(self.fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters (e.g. 'MJPG') or empty, got '{self.fourcc}'")
        if not (self.reconnect_period > 0 and self.reconnect_max_period >= self.reconnect_period):
            raise ValueError(
                f"need 0 < reconnect_period <= reconnect_max_period, got {self.reconnect_period}, {self.reconnect_max_period}"
            )
        if self.max_read_failures < 1:
            raise ValueError(f"max_read_failures must be >= 1, got {self.max_read_failures}")


@dataclass
class CaptureStats:
    """Counters of one `Capture` (read them for diagnostics).

    state: "connecting" (not opened yet), "streaming", "reconnecting" (waiting to retry),
    "ended" (file finished, not looping), "closed".
    """

    frames: int = 0
    read_failures: int = 0
    open_failures: int = 0
    reconnects: int = 0
    loops: int = 0
    dropped: int = 0
    state: str = "connecting"
    last_error: str = ""


class FrameSource(ABC):
    """Contract of a capture backend. `open` may raise CaptureError; nothing else raises.

    `kind` is "device" or "stream" (live: frames come at the source's pace, missed ones are
    gone), "file" (can end, can rewind, paced by the reader) or "synthetic" (paced by the reader).
    """

    kind: str = "device"

    @abstractmethod
    def open(self) -> None:
        """Connect; raise CaptureError with a reason on failure."""

    @abstractmethod
    def grab(self) -> bool:
        """Acquire the next frame without decoding it; False on failure or end of file."""

    @abstractmethod
    def retrieve(self) -> np.ndarray | None:
        """Decode the last grabbed frame as (H, W, 3) uint8 RGB; None on failure."""

    def rewind(self) -> bool:
        """Go back to the first frame (files); False when not possible."""
        return False

    @abstractmethod
    def close(self) -> None:
        """Release the source (idempotent)."""

    @property
    def nominal_fps(self) -> float:
        """Frame rate the source reports, Hz (0 = unknown)."""
        return 0.0

    def describe(self) -> str:
        """Short human-readable name of the source for log lines."""
        return type(self).__name__


# ----------------------------------------------------------------------------- OpenCV backend
def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is a dependency
        raise CaptureError(
            "OpenCV is not installed: pip install opencv-python-headless (see requirements.txt)"
        ) from exc
    return cv2


def parse_source(source: str) -> tuple[str, int | str]:
    """Classify a source string: ("device", index) | ("stream", url) | ("file", path).

    V4L2 paths (/dev/video3, or a /dev/v4l/by-id/... symlink to one) become their index, which
    is how OpenCV's V4L2 backend opens devices.
    """
    s = source.strip()
    if re.fullmatch(r"\d+", s):
        return "device", int(s)
    if "://" in s:
        return "stream", s
    if s.startswith("/dev/"):
        real = os.path.realpath(s)
        m = re.search(r"video(\d+)$", real)
        if m is None:
            raise CaptureError(f"{s} (-> {real}) is not a V4L2 video device path (/dev/videoN)")
        return "device", int(m.group(1))
    return "file", s


@CAPTURE_BACKENDS.register("opencv")
class OpenCVSource(FrameSource):
    """OpenCV `VideoCapture`: V4L2 devices (by index or /dev path), video files, stream URLs.

    Args:
        config: the capture config (source, width/height/fps/fourcc asked from devices).
    """

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self.kind, self._target = parse_source(config.source)
        self._cap = None
        self._fps = 0.0

    def describe(self) -> str:
        if self.kind == "device":
            return f"V4L2 device /dev/video{self._target}"
        return f"{self.kind} {self._target}"

    def open(self) -> None:
        cv2 = _cv2()
        self.close()
        if self.kind == "device":
            dev = f"/dev/video{self._target}"
            if os.name == "posix" and not os.path.exists(dev):
                raise CaptureError("the device node does not exist (camera unplugged, or wrong index?)")
            cap = cv2.VideoCapture(int(self._target), cv2.CAP_V4L2 if os.name == "posix" else cv2.CAP_ANY)
        elif self.kind == "file":
            if not Path(self._target).is_file():
                raise CaptureError("the file does not exist")
            cap = cv2.VideoCapture(str(self._target), cv2.CAP_ANY)
        else:
            cap = cv2.VideoCapture(str(self._target), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise CaptureError("OpenCV could not open it (busy, no permission, or unsupported format)")
        if self.kind == "device":
            c = self.config
            if c.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))
            if c.width and c.height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
            if c.fps:
                cap.set(cv2.CAP_PROP_FPS, c.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # latest frame, not a queue of stale ones
            # a grab that blocks (rather than fails) on a lost device ends after this, where the
            # backend supports it (ignored otherwise)
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2000)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0
        self._cap = cap

    def grab(self) -> bool:
        if self._cap is None:
            return False
        try:
            return bool(self._cap.grab())
        except Exception:  # OpenCV raises cv2.error on some driver failures
            return False

    def retrieve(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        cv2 = _cv2()
        try:
            ok, frame = self._cap.retrieve()
        except Exception:
            return None
        if not ok or frame is None or frame.size == 0:
            return None
        if frame.ndim == 2:
            return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        if frame.shape[2] == 4:
            return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def rewind(self) -> bool:
        if self._cap is None or self.kind != "file":
            return False
        cv2 = _cv2()
        if self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return True
        try:  # some containers cannot seek: reopen
            self.open()
            return True
        except CaptureError:
            return False

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def nominal_fps(self) -> float:
        return self._fps


# ----------------------------------------------------------------------------- synthetic backend
@CAPTURE_BACKENDS.register("synthetic")
class SyntheticSource(FrameSource):
    """Generated frames for tests and demos without a camera.

    Frame i is deterministic: a colour gradient with a vertical bar at x = 4 i mod width
    ("bars") or uniform noise seeded by i ("noise"). Failures can be injected to exercise
    reconnects.

    Args:
        config: capture config; `source` is the pattern, width/height default to 320x240,
            fps (default 30 Hz) is the nominal rate.
        fail_opens: number of initial `open()` calls that fail.
        unplug_after: grabs fail after this many frames until the next `open()` (None = never).
        frame_count: the source ends after this many frames like a file (None = endless);
            with `kind="file"` it can be rewound.
    """

    def __init__(
        self,
        config: CaptureConfig | None = None,
        fail_opens: int = 0,
        unplug_after: int | None = None,
        frame_count: int | None = None,
    ) -> None:
        self.config = config or CaptureConfig(source="bars", backend="synthetic")
        self.pattern = self.config.source if self.config.source in ("bars", "noise") else "bars"
        self.width = self.config.width or 320
        self.height = self.config.height or 240
        self.fail_opens = fail_opens
        self.unplug_after = unplug_after
        self.frame_count = frame_count
        self.kind = "file" if frame_count is not None else "synthetic"
        self.opens = 0
        self.index = -1
        self._since_open = 0
        self._open = False

    def open(self) -> None:
        self.opens += 1
        if self.opens <= self.fail_opens:
            raise CaptureError(f"synthetic source: injected open failure {self.opens}/{self.fail_opens}")
        self._open = True
        self._since_open = 0

    def grab(self) -> bool:
        if not self._open:
            return False
        if self.unplug_after is not None and self._since_open >= self.unplug_after:
            return False
        if self.frame_count is not None and self.index + 1 >= self.frame_count:
            return False
        self.index += 1
        self._since_open += 1
        return True

    def retrieve(self) -> np.ndarray | None:
        if not self._open or self.index < 0:
            return None
        return synthetic_frame(self.index, self.width, self.height, self.pattern)

    def rewind(self) -> bool:
        self.index = -1
        return self._open

    def close(self) -> None:
        self._open = False

    @property
    def nominal_fps(self) -> float:
        return self.config.fps or 30.0

    def describe(self) -> str:
        return f"synthetic '{self.pattern}' {self.width}x{self.height}"


def synthetic_frame(index: int, width: int, height: int, pattern: str = "bars") -> np.ndarray:
    """Frame `index` of the synthetic source: (height, width, 3) uint8 RGB."""
    if pattern == "noise":
        return np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = np.broadcast_to(x, (height, width)).astype(np.uint8)
    img[..., 1] = np.broadcast_to(y, (height, width)).astype(np.uint8)
    img[..., 2] = 128
    bar = (4 * index) % width
    img[:, bar : bar + 4] = 255
    return img


# ----------------------------------------------------------------------------- the wrapper
class Capture:
    """Frames from one source with capture timestamps, RGB conversion and reconnects.

    Args:
        config: what to capture.
        clock: time source of the frame stamps, s (default time.time; a node passes its ROS
            clock so stamps are on ROS time).
        monotonic: time source for retry delays and playback pacing, s (default time.monotonic;
            tests inject a fake one).
        logger: where the one-line reports go (default: logging.getLogger(__name__)).
        source_factory: builds the FrameSource (default: CAPTURE_BACKENDS[config.backend]).

    Nothing connects in the constructor; the first `read()` opens the source.
    """

    def __init__(
        self,
        config: CaptureConfig,
        clock: Callable[[], float] = time.time,
        logger: Logger | None = None,
        source_factory: Callable[[], FrameSource] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.monotonic = monotonic
        self.log: Logger = logger or logging.getLogger(__name__)
        factory = source_factory or (lambda: CAPTURE_BACKENDS.create(config.backend, config=config))
        self.source: FrameSource = factory()
        self.stats = CaptureStats()
        self._is_open = False
        self._ever_opened = False
        self._retry_at = -math.inf
        self._backoff = config.reconnect_period
        self._attempt = 0
        self._consecutive_failures = 0
        self._warned_resize = False
        self._next_due = -math.inf
        self.size: tuple[int, int] | None = None
        """(width, height) of the frames delivered last, px."""

    # -- state ---------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """True while the source is connected."""
        return self._is_open

    @property
    def ended(self) -> bool:
        """True once a non-looping file has played to its end."""
        return self.stats.state == "ended"

    @property
    def frame_period(self) -> float:
        """Seconds between delivered frames (0 = as fast as the source delivers)."""
        fps = self.config.fps or (
            self.source.nominal_fps if self.source.kind in ("file", "synthetic") else 0.0
        )
        if not fps and self.source.kind in ("file", "synthetic"):
            fps = 30.0  # a file that does not say: play at a camera-like rate
        return 1.0 / fps if fps else 0.0

    def seconds_until_retry(self) -> float:
        """Time until the next open attempt, s (0 when connected or due)."""
        return 0.0 if self._is_open else max(0.0, self._retry_at - self.monotonic())

    # -- connection ----------------------------------------------------------------------
    def _schedule_retry(self, reason: str, lost: bool) -> None:
        self._attempt += 1
        self.stats.last_error = reason
        self.stats.state = "reconnecting"
        delay = self._backoff
        self._retry_at = self.monotonic() + delay
        self._backoff = min(self._backoff * 2.0, self.config.reconnect_max_period)
        what = "lost" if lost else "cannot be opened"
        self.log.warning(
            f"camera source {self.source.describe()} {what}: {reason}; retrying in {delay:.1f} s "
            f"(attempt {self._attempt}, {self.stats.reconnects} reconnects so far)"
        )

    def _try_open(self) -> bool:
        try:
            self.source.open()
        except CaptureError as exc:
            self.stats.open_failures += 1
            self._schedule_retry(str(exc), lost=False)
            return False
        except Exception as exc:  # a backend bug must not kill the capture thread
            self.stats.open_failures += 1
            self._schedule_retry(f"{type(exc).__name__}: {exc}", lost=False)
            return False
        if self._ever_opened:
            self.stats.reconnects += 1
        self._ever_opened = True
        self._is_open = True
        self._attempt = 0
        self._backoff = self.config.reconnect_period
        self._consecutive_failures = 0
        self.stats.state = "streaming"
        fps = self.source.nominal_fps
        self.log.info(
            f"camera source {self.source.describe()} opened"
            + (f" ({fps:.1f} Hz reported)" if fps else "")
            + (f", reconnect #{self.stats.reconnects}" if self.stats.reconnects else "")
        )
        return True

    def _lost(self, reason: str) -> None:
        self.source.close()
        self._is_open = False
        self._schedule_retry(reason, lost=True)

    def close(self) -> None:
        """Release the source; `read()` reopens it."""
        self.source.close()
        self._is_open = False
        self.stats.state = "closed"

    # -- frames --------------------------------------------------------------------------
    def read(self) -> CameraFrame | None:
        """One capture attempt, never raising.

        Returns a CameraFrame (rgb8, stamped at grab time on `clock`), or None when the source
        is not connected (a retry is scheduled), a read failed, or a non-looping file ended.
        """
        if self.ended:
            return None
        if not self._is_open:
            if self.monotonic() < self._retry_at or not self._try_open():
                return None
        if not self.source.grab():
            if self.source.kind != "file":
                return self._read_failed("grab failed")
            if not self.config.loop:
                return self._end_of_file()
            if not (self.source.rewind() and self.source.grab()):
                return self._read_failed("cannot rewind the video file to loop it")
            self.stats.loops += 1
        stamp = self.clock()  # capture time: right after the grab, before decoding
        image = self.source.retrieve()
        if image is None:
            return self._read_failed("decoding the grabbed frame failed")
        self._consecutive_failures = 0
        image = self._resize(image)
        self.stats.frames += 1
        self.size = (int(image.shape[1]), int(image.shape[0]))
        return CameraFrame(image=image, stamp=stamp, frame_id=self.config.frame_id, encoding="rgb8")

    def _end_of_file(self) -> None:
        self.stats.state = "ended"
        self.source.close()
        self._is_open = False
        self.log.info(
            f"camera source {self.source.describe()} reached its end after {self.stats.frames} frames; "
            "not looping (set loop: true to repeat): capture stopped"
        )
        return None

    def _read_failed(self, reason: str) -> None:
        self.stats.read_failures += 1
        self._consecutive_failures += 1
        if self._consecutive_failures >= self.config.max_read_failures or self.source.kind == "file":
            self._lost(f"{reason} ({self._consecutive_failures} consecutive failed reads)")
        return None

    def _resize(self, image: np.ndarray) -> np.ndarray:
        w, h = self.config.width, self.config.height
        if not w or (image.shape[1], image.shape[0]) == (w, h):
            return image
        if not self._warned_resize:
            self._warned_resize = True
            self.log.warning(
                f"camera source {self.source.describe()} delivers {image.shape[1]}x{image.shape[0]}, "
                f"{w}x{h} was asked: resizing every frame in software (set width/height to the native size to avoid it)"
            )
        import cv2

        interp = cv2.INTER_AREA if w < image.shape[1] else cv2.INTER_LINEAR
        return cv2.resize(image, (w, h), interpolation=interp)

    def run(self, on_frame: Callable[[CameraFrame], None], stop: threading.Event) -> None:
        """Capture until `stop` is set, calling `on_frame` for each delivered frame.

        Files and synthetic sources are paced at `frame_period`; live sources deliver at their
        own rate and frames arriving faster than `fps` are dropped (counted in stats.dropped).
        Exceptions from `on_frame` are logged and capture continues.
        """
        while not stop.is_set():
            if self.ended:
                stop.wait(0.2)
                continue
            if not self._is_open:
                wait = self.seconds_until_retry()
                if wait > 0:
                    stop.wait(min(wait, 0.2))
                    continue
            live = self.source.kind in ("device", "stream")
            now = self.monotonic()
            if not live and now < self._next_due:
                stop.wait(min(self._next_due - now, 0.2))
                continue
            frame = self.read()
            if frame is None:
                if self._is_open and live:
                    stop.wait(0.005)  # a transient failure on a live source: do not spin
                continue
            period, t = self.frame_period, self.monotonic()
            if period:
                if live and t < self._next_due - 0.25 * period:
                    self.stats.dropped += 1  # the device runs faster than the fps asked for
                    continue
                if not math.isfinite(self._next_due) or t > self._next_due + period:
                    self._next_due = t + period  # (re)start the cadence, never catch up a backlog
                else:
                    self._next_due += period
            try:
                on_frame(frame)
            except Exception as exc:
                self.log.error(f"frame handler failed ({type(exc).__name__}: {exc}); capture continues")
