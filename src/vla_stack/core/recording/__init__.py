"""Recording (ROS-free part): ROS 2 message definitions from .msg files, topic selection, and
an MCAP writer for already-serialised (CDR) ROS 2 messages with per-topic statistics.

The ROS side (`vla_stack.ros.recorder`) discovers topics, subscribes with `raw=True` (rclpy
hands over the CDR bytes, so nothing is deserialised and re-encoded) and feeds this writer.
"""

from vla_stack.core.recording.mcap_recording import McapRecording, RecordingSummary, TopicStats
from vla_stack.core.recording.msgdefs import MessageDefinitionError, MessageDefinitions, default_search_roots
from vla_stack.core.recording.selection import DEFAULT_STACK_TOPIC_PATTERNS, select_topics

__all__ = [
    "McapRecording", "RecordingSummary", "TopicStats", "MessageDefinitionError", "MessageDefinitions",
    "default_search_roots", "DEFAULT_STACK_TOPIC_PATTERNS", "select_topics",
]
