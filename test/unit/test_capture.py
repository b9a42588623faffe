"""Capture wrapper: real OpenCV file playback, RGB order, stamps, looping, reconnects (no ROS)."""

from __future__ import annotations

import logging
import threading

import cv2
import numpy as np
import pytest

from vla_stack.core.sensors.capture import (
    CAPTURE_BACKENDS,
    Capture,
    CaptureConfig,
    OpenCVSource,
    SyntheticSource,
    parse_source,
    synthetic_frame,
)

W, H, N = 64, 48, 12


class FakeClock:
    """Settable clock: both stamps and retry timing."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def write_video(path, frames_bgr, fps=30.0):
    """Write BGR frames with OpenCV's own writer (MJPG in AVI: always available)."""
    h, w = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for f in frames_bgr:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture
def video(tmp_path):
    """N frames: pure red in BGR order (0, 0, 255), brightness ramp encoded in the green channel."""
    frames = []
    for i in range(N):
        f = np.zeros((H, W, 3), np.uint8)
        f[..., 2] = 220  # red (BGR!)
        f[..., 1] = 10 * i  # green ramp: tells frames apart
        frames.append(f)
    return write_video(tmp_path / "clip.avi", frames, fps=25.0)


def collect_logger():
    lines: list[tuple[str, str]] = []

    class L:
        def info(self, m):
            lines.append(("info", m))

        def warning(self, m):
            lines.append(("warning", m))

        def error(self, m):
            lines.append(("error", m))

    return L(), lines


def test_file_frames_are_rgb_and_stamped_at_capture(video):
    clock = FakeClock(5.0)
    cap = Capture(CaptureConfig(source=str(video), frame_id="cam"), clock=clock, monotonic=clock)
    frame = cap.read()
    assert frame is not None and frame.encoding == "rgb8" and frame.frame_id == "cam"
    assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
    r, g, b = frame.image.reshape(-1, 3).mean(axis=0)
    assert r > 200 and b < 20 and g < 15  # BGR (0, 0, 220) arrives as RGB (220, 0, 0)
    assert frame.stamp == 5.0
    clock.t = 6.25
    second = cap.read()
    assert second.stamp == 6.25  # stamp = clock at grab time, not a file timestamp
    assert second.image[..., 1].mean() > frame.image[..., 1].mean()  # next frame of the clip
    assert cap.source.nominal_fps == pytest.approx(25.0)
    assert cap.frame_period == pytest.approx(1 / 25.0)


def test_file_without_loop_ends_cleanly(video):
    log, lines = collect_logger()
    cap = Capture(CaptureConfig(source=str(video)), logger=log)
    frames = [cap.read() for _ in range(N + 3)]
    assert sum(f is not None for f in frames) == N
    assert cap.ended and cap.stats.state == "ended"
    assert any("reached its end after 12 frames" in m for _, m in lines)
    assert cap.read() is None  # stays ended, no exception


def test_file_loop_restarts_at_the_first_frame(video):
    cap = Capture(CaptureConfig(source=str(video), loop=True))
    greens = [cap.read().image[..., 1].mean() for _ in range(2 * N + 2)]
    assert cap.stats.loops == 2 and cap.stats.frames == 2 * N + 2
    np.testing.assert_allclose(greens[N], greens[0], atol=3)  # frame N is frame 0 again
    np.testing.assert_allclose(greens[N + 1], greens[1], atol=3)


def test_resize_to_requested_size(video):
    log, lines = collect_logger()
    cap = Capture(CaptureConfig(source=str(video), width=32, height=24), logger=log)
    frame = cap.read()
    assert frame.image.shape == (24, 32, 3) and cap.size == (32, 24)
    cap.read()
    assert sum("resizing every frame" in m for _, m in lines) == 1  # said once, not per frame


def test_missing_file_retries_with_backoff_then_recovers(tmp_path, video):
    target = tmp_path / "later.avi"
    clock = FakeClock()
    log, lines = collect_logger()
    cap = Capture(
        CaptureConfig(source=str(target), reconnect_period=0.5, reconnect_max_period=2.0),
        clock=clock,
        monotonic=clock,
        logger=log,
    )
    assert cap.read() is None and cap.stats.open_failures == 1 and cap.stats.state == "reconnecting"
    assert "does not exist" in lines[-1][1] and "retrying in 0.5 s" in lines[-1][1]
    assert cap.read() is None and cap.stats.open_failures == 1  # waiting: no new attempt yet
    delays = []
    for _ in range(4):
        clock.t += cap.seconds_until_retry()
        delays.append(float(lines[-1][1].split("retrying in ")[1].split(" s")[0]))
        assert cap.read() is None
    delays.append(float(lines[-1][1].split("retrying in ")[1].split(" s")[0]))
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]  # doubles, capped at reconnect_max_period
    target.write_bytes(video.read_bytes())  # the file appears
    clock.t += cap.seconds_until_retry()
    frame = cap.read()
    assert frame is not None and cap.stats.state == "streaming" and cap.stats.open_failures == 5
    assert any("opened" in m for _, m in lines)


def test_device_loss_reconnects_and_counts():
    """A live source that stops delivering is closed, retried with backoff and reopened."""
    clock = FakeClock()
    log, lines = collect_logger()
    source = SyntheticSource(
        CaptureConfig(source="bars", backend="synthetic", width=32, height=24), fail_opens=2, unplug_after=3
    )
    source.kind = "device"  # behave like a camera: failures are losses, not end of file
    cap = Capture(
        CaptureConfig(source="bars", backend="synthetic", max_read_failures=2, reconnect_period=0.1),
        clock=clock,
        monotonic=clock,
        logger=log,
        source_factory=lambda: source,
    )
    got = 0
    for _ in range(60):
        clock.t += 0.05
        if cap.read() is not None:
            got += 1
    assert cap.stats.open_failures == 2
    assert cap.stats.reconnects >= 2  # unplugged after every 3 frames, reopened each time
    assert cap.stats.read_failures >= 2 * cap.stats.reconnects
    assert got >= 3 * (cap.stats.reconnects + 1) - 3
    assert any("lost: grab failed (2 consecutive failed reads)" in m for _, m in lines)
    assert any("cannot be opened: synthetic source: injected open failure" in m for _, m in lines)


def test_backend_exception_on_open_is_contained():
    class Broken(SyntheticSource):
        def open(self):
            raise OSError("driver exploded")

    log, lines = collect_logger()
    cap = Capture(
        CaptureConfig(source="bars", backend="synthetic"), logger=log, source_factory=lambda: Broken()
    )
    assert cap.read() is None
    assert "OSError: driver exploded" in lines[-1][1] and cap.stats.open_failures == 1


def test_missing_v4l2_device_is_a_clear_retry():
    log, lines = collect_logger()
    cap = Capture(CaptureConfig(source="/dev/video97"), logger=log)
    assert cap.read() is None
    assert "V4L2 device /dev/video97 cannot be opened: the device node does not exist" in lines[-1][1]
    assert "retrying" in lines[-1][1]


def test_parse_source():
    assert parse_source("2") == ("device", 2)
    assert parse_source("/dev/video4") == ("device", 4)
    assert parse_source("rtsp://cam.local/stream") == ("stream", "rtsp://cam.local/stream")
    assert parse_source("clips/a.mp4") == ("file", "clips/a.mp4")
    with pytest.raises(Exception, match="not a V4L2 video device"):
        parse_source("/dev/null")


def test_config_validation():
    with pytest.raises(ValueError, match="both be 0"):
        CaptureConfig(width=640)
    with pytest.raises(ValueError, match="fps"):
        CaptureConfig(fps=float("nan"))
    with pytest.raises(ValueError, match="fourcc"):
        CaptureConfig(fourcc="MJPEG")
    with pytest.raises(ValueError, match="reconnect_period"):
        CaptureConfig(reconnect_period=2.0, reconnect_max_period=1.0)
    with pytest.raises(ValueError, match="source"):
        CaptureConfig(source="  ")
    assert set(CAPTURE_BACKENDS.names()) >= {"opencv", "synthetic"}
    with pytest.raises(KeyError, match="did you mean 'opencv'"):
        Capture(CaptureConfig(backend="opencvv"))


def test_run_thread_delivers_paced_frames_and_stops(video):
    cap = Capture(CaptureConfig(source=str(video), loop=True, fps=200.0), logger=logging.getLogger("test"))
    frames = []
    stop = threading.Event()

    def on_frame(frame):
        frames.append(frame)
        if len(frames) >= 2 * N:
            stop.set()

    thread = threading.Thread(target=cap.run, args=(on_frame, stop), daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and len(frames) >= 2 * N
    stamps = [f.stamp for f in frames]
    assert all(b >= a for a, b in zip(stamps, stamps[1:], strict=False))  # monotonic capture stamps
    assert cap.stats.loops >= 1


def test_run_survives_a_failing_handler():
    log, lines = collect_logger()
    cap = Capture(CaptureConfig(source="bars", backend="synthetic", fps=500.0), logger=log)
    stop = threading.Event()
    calls = []

    def on_frame(frame):
        calls.append(frame)
        if len(calls) >= 3:
            stop.set()
        raise RuntimeError("publisher gone")

    cap.run(on_frame, stop)
    assert len(calls) >= 3 and sum("frame handler failed" in m for _, m in lines) >= 3


def test_synthetic_frames_are_deterministic():
    a, b = synthetic_frame(3, 40, 30), synthetic_frame(3, 40, 30)
    assert np.array_equal(a, b) and not np.array_equal(a, synthetic_frame(4, 40, 30))
    assert synthetic_frame(0, 40, 30, "noise").shape == (30, 40, 3)
    src = OpenCVSource(CaptureConfig(source="3"))
    assert src.describe() == "V4L2 device /dev/video3"
