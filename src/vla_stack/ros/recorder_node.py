"""recorder_node: record topics to MCAP as a node of a profile (same as `vla-stack record`).

Parameters: `output` (file; "" = recordings/vla_stack_<date>_<time>.mcap), `topics` (names or
globs; empty = all stack topics), `all_topics`, `exclude`, `duration` (s; 0 = until shutdown),
`discovery_period` (s), `compression` (zstd | lz4 | none). The file is finished and a per-topic
summary logged on shutdown (Ctrl-C / SIGTERM / `vla-stack up` stopping) or after `duration`.
"""

from __future__ import annotations

import sys
import time

from rclpy.node import Node

from vla_stack.core.recording import McapRecording
from vla_stack.ros.node_runner import spin_node
from vla_stack.ros.params import declare_parameters
from vla_stack.ros.record_cli import default_output
from vla_stack.ros.recorder import TopicRecorder

RECORDER_PARAMETERS = {
    "output": ("", "MCAP file to write ('' = recordings/vla_stack_<date>_<time>.mcap in the working directory)"),
    "topics": ([""], "topics to record: names or globs relative to the node's namespace, or absolute ([''] = all stack topics)"),
    "all_topics": (False, "record every topic in the ROS graph"),
    "exclude": ([""], "globs of topics to leave out"),
    "duration": (0.0, "stop recording after this many s (0 = until shutdown)"),
    "discovery_period": (0.5, "how often to look for new topics, s"),
    "compression": ("zstd", "chunk compression: zstd | lz4 | none"),
}


class RecorderNode(Node):
    """Declares the parameters above, opens the MCAP file and records into it."""

    def __init__(self, node_name: str = "recorder_node") -> None:
        super().__init__(node_name)
        v = declare_parameters(self, RECORDER_PARAMETERS)
        topics = [str(t) for t in v["topics"] if str(t).strip()]
        exclude = [str(t) for t in v["exclude"] if str(t).strip()]
        self.output = str(v["output"]) or str(default_output())
        compression = str(v["compression"])
        if compression not in ("zstd", "lz4", "none"):
            self.get_logger().error(f"parameter compression={compression!r} rejected (zstd | lz4 | none); using zstd")
            compression = "zstd"
        self.duration = max(0.0, float(v["duration"]))
        self.started = time.monotonic()
        self.recording = McapRecording(self.output, compression=compression, metadata={"recorder": "recorder_node"})
        namespace = self.get_namespace().strip("/")
        self.topic_recorder = TopicRecorder(
            self, self.recording, topics, bool(v["all_topics"]), exclude, namespace, float(v["discovery_period"])
        )
        what = ", ".join(topics) if topics else ("every topic" if v["all_topics"] else "all stack topics")
        self.get_logger().info(f"recorder_node: recording {what} to {self.output}")

    def done(self) -> bool:
        """True once `duration` has passed (never when duration is 0)."""
        return self.duration > 0 and time.monotonic() - self.started >= self.duration

    def stop(self) -> None:
        """Called by `spin_node` on shutdown: finish the file."""
        self.finish()

    def finish(self) -> None:
        """Close the file and log the summary."""
        summary = self.recording.close()
        for line in summary.table().splitlines():
            self.get_logger().info(line)


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vla_stack recorder_node` / `vla-stack up`."""
    return spin_node(RecorderNode, args, until=lambda node: node.done())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
