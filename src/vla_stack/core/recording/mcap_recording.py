"""MCAP file of ROS 2 messages (profile "ros2", schemas "ros2msg", messages "cdr").

Messages arrive already serialised: rclpy's `raw=True` subscriptions hand over the CDR bytes
exactly as they travelled over DDS, so they are written unchanged. This is the layout that
`mcap_ros2.writer.Writer` (mcap-ros2-support) produces, without its Python CDR re-encoding;
every schema is checked with mcap-ros2-support's decoder when it is registered, so a file is
only written with definitions that `mcap_ros2.decoder.DecoderFactory` (and Foxglove) can read.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TopicStats:
    """What was recorded on one topic. Times are log times, ns since the epoch."""

    topic: str
    type_name: str
    count: int = 0
    bytes: int = 0
    first_ns: int = 0
    last_ns: int = 0

    @property
    def rate_hz(self) -> float:
        """Mean message rate between the first and last message, Hz (0 with < 2 messages)."""
        if self.count < 2 or self.last_ns <= self.first_ns:
            return 0.0
        return (self.count - 1) / ((self.last_ns - self.first_ns) * 1e-9)


@dataclass
class RecordingSummary:
    """Result of a recording.

    Args:
        path: the MCAP file.
        duration_s: wall time between opening and closing, s.
        topics: per-topic statistics (topics that were subscribed, even with 0 messages).
        file_bytes: size of the finished file.
        notes: things the operator should know (skipped topics, unknown types).
    """

    path: Path
    duration_s: float
    topics: list[TopicStats] = field(default_factory=list)
    file_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total_messages(self) -> int:
        """Messages written, all topics."""
        return sum(t.count for t in self.topics)

    def table(self) -> str:
        """Human-readable summary: one line per topic, then totals and notes."""
        width = max([len(t.topic) for t in self.topics] + [5])
        lines = [f"{'topic':<{width}}  {'type':<36} {'msgs':>7} {'rate Hz':>8} {'MB':>8}"]
        for t in sorted(self.topics, key=lambda s: s.topic):
            lines.append(f"{t.topic:<{width}}  {t.type_name:<36} {t.count:>7} {t.rate_hz:>8.1f} {t.bytes / 1e6:>8.2f}")
        lines.append(
            f"{len(self.topics)} topics, {self.total_messages} messages in {self.duration_s:.1f} s -> "
            f"{self.path} ({self.file_bytes / 1e6:.2f} MB)"
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {
            "path": str(self.path), "duration_s": self.duration_s, "file_bytes": self.file_bytes,
            "total_messages": self.total_messages, "notes": list(self.notes),
            "topics": [
                {"topic": t.topic, "type": t.type_name, "count": t.count, "bytes": t.bytes, "rate_hz": round(t.rate_hz, 3)}
                for t in self.topics
            ],
        }


class McapRecording:
    """An MCAP file being written. Thread-safe.

    Args:
        path: output file (parent directories are created).
        compression: "zstd", "lz4" or "none".
        chunk_size: chunk size, bytes.
        metadata: optional key/values stored as an MCAP metadata record "vla_stack".
        clock_ns: wall clock for the duration (injectable for tests).

    Raises:
        ImportError: mcap / mcap-ros2-support are not installed (says what to install).
        ValueError: unknown compression.
    """

    def __init__(
        self,
        path: str | Path,
        compression: str = "zstd",
        chunk_size: int = 1024 * 1024,
        metadata: dict[str, str] | None = None,
        clock_ns=time.time_ns,
    ) -> None:
        try:
            from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
            from mcap.writer import CompressionType, Writer
            from mcap_ros2 import __version__ as mcap_ros2_version
            from mcap_ros2.decoder import DecoderFactory
        except ImportError as exc:
            raise ImportError("recording needs mcap and mcap-ros2-support: pip install mcap mcap-ros2-support") from exc
        kinds = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
        if compression not in kinds:
            raise ValueError(f"compression must be one of {sorted(kinds)}, got {compression!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=kinds[compression])
        self._writer.start(profile=Profile.ROS2, library=f"vla_stack (mcap-ros2-support {mcap_ros2_version} layout)")
        if metadata:
            self._writer.add_metadata("vla_stack", {str(k): str(v) for k, v in metadata.items()})
        self._schema_encoding = SchemaEncoding.ROS2
        self._message_encoding = MessageEncoding.CDR
        self._decoders = DecoderFactory()
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self.stats: dict[str, TopicStats] = {}
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self._clock_ns = clock_ns
        self._opened_ns = clock_ns()
        self._sequence = 0
        self._closed = False

    def add_topic(self, topic: str, type_name: str, schema_text: str) -> None:
        """Register `topic` with message type `type_name` ("std_msgs/msg/String") and its
        ros2msg schema (`MessageDefinitions.schema_text`). Registering a topic twice is a no-op.

        Raises ValueError when mcap-ros2-support cannot parse the schema (nothing is registered).
        """
        from mcap.records import Schema

        with self._lock:
            if topic in self._channels:
                return
            if type_name not in self._schemas:
                probe = Schema(id=0, name=type_name, encoding=self._schema_encoding, data=schema_text.encode())
                try:
                    self._decoders.decoder_for(self._message_encoding, probe)
                except Exception as exc:  # noqa: BLE001 - any parse failure means: unusable schema
                    raise ValueError(f"schema of {type_name} cannot be parsed by mcap-ros2-support: {exc}") from exc
                self._schemas[type_name] = self._writer.register_schema(type_name, self._schema_encoding, schema_text.encode())
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding=self._message_encoding, schema_id=self._schemas[type_name]
            )
            self.stats[topic] = TopicStats(topic, type_name)

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """Append one CDR-serialised message of a registered topic (log time = receive time, ns)."""
        with self._lock:
            if self._closed:
                return
            channel = self._channels.get(topic)
            if channel is None:
                raise KeyError(f"topic {topic} is not registered (add_topic first)")
            self._sequence += 1
            self._writer.add_message(
                channel_id=channel, log_time=int(log_time_ns),
                publish_time=int(publish_time_ns if publish_time_ns is not None else log_time_ns),
                data=bytes(data), sequence=self._sequence,
            )
            st = self.stats[topic]
            if st.count == 0:
                st.first_ns = int(log_time_ns)
            st.count += 1
            st.bytes += len(data)
            st.last_ns = int(log_time_ns)

    def close(self) -> RecordingSummary:
        """Finish the file (summary section, footer) and return the statistics. Idempotent."""
        with self._lock:
            if not self._closed:
                self._writer.finish()
                self._file.close()
                self._closed = True
            duration = (self._clock_ns() - self._opened_ns) * 1e-9
            size = self.path.stat().st_size if self.path.exists() else 0
            return RecordingSummary(self.path, duration, list(self.stats.values()), size, list(self.notes))
