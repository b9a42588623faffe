"""Record ROS 2 topics to MCAP without the ros2 CLI (`vla-stack record`, `recorder_node`).

`Recorder` is a node that looks at the ROS graph every `discovery_period` s, subscribes to
every selected topic as it appears (`vla_stack.core.recording.select_topics`: explicit names
or globs, the stack's topics by default, or all), and writes each message's CDR bytes as
received (rclpy `raw=True` subscriptions: nothing is deserialised) into a
`vla_stack.core.recording.McapRecording`. Message types are resolved by name from the graph
("sensor_msgs/msg/Image" -> `sensor_msgs.msg.Image`, imported on demand); their definitions
come from the .msg files the ROS 2 message wheels install under `<prefix>/share/`
(`vla_stack.core.recording.MessageDefinitions`). Log time = receive time (wall clock, ns),
as rosbag2 does.

QoS per topic follows its publishers (like rosbag2): reliable only when every publisher is
reliable, transient-local when every publisher is (so latched state such as planner/subtask
is in the file even if it was published before the recorder started).
"""

from __future__ import annotations

import fnmatch
import importlib
import time
from collections.abc import Callable, Sequence

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vla_stack.core.recording import McapRecording, MessageDefinitionError, MessageDefinitions, select_topics


def import_message_type(type_name: str) -> type:
    """The Python class of "pkg/msg/Type" (e.g. sensor_msgs.msg.Image).

    Raises ImportError naming the package when it is not installed.
    """
    parts = type_name.split("/")
    if len(parts) != 3:
        raise ImportError(f"'{type_name}' is not a pkg/msg/Type name")
    pkg, kind, name = parts
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"message type {type_name} is not installed (pip install ros-{pkg.replace('_', '-')}?): {exc}") from exc


class TopicRecorder:
    """Subscribes `node` to the selected topics as they appear and writes them to `recording`.

    Args:
        node: the node whose graph view and subscriptions are used.
        recording: the MCAP file being written.
        topics: names or globs (relative to `namespace`, or absolute); empty = stack topics.
        all_topics: record everything in the graph.
        exclude: globs to leave out.
        namespace: the stack's namespace.
        discovery_period: how often to look for new topics, s.
        definitions: message definition source (default: search the install prefixes).
        max_rates: {glob: Hz}: topics matching a glob are written at most this often (e.g.
            {"*image*": 2.0} keeps a long recording of camera streams small); others in full.
    """

    def __init__(
        self,
        node: Node,
        recording: McapRecording,
        topics: Sequence[str] = (),
        all_topics: bool = False,
        exclude: Sequence[str] = (),
        namespace: str = "",
        discovery_period: float = 0.5,
        definitions: MessageDefinitions | None = None,
        max_rates: dict[str, float] | None = None,
    ) -> None:
        self.node = node
        self.max_rates = {k: float(v) for k, v in (max_rates or {}).items() if float(v) > 0}
        self.recording = recording
        self.topics = list(topics)
        self.all_topics = all_topics
        self.exclude = list(exclude)
        self.namespace = namespace
        self.definitions = definitions or MessageDefinitions()
        self._subscriptions: dict[str, object] = {}
        self._refused: set[str] = set()
        self.discover()
        node.create_timer(max(0.05, float(discovery_period)), self.discover)

    def discover(self) -> None:
        """Subscribe to selected topics that appeared since the last look."""
        log = self.node.get_logger()
        available = {name: types for name, types in self.node.get_topic_names_and_types()}
        chosen, notes = select_topics(available, self.topics, self.all_topics, self.exclude, self.namespace)
        for note in notes:
            if note not in self.recording.notes:
                self.recording.notes.append(note)
                log.warning(note)
        for topic, type_name in chosen.items():
            if topic in self._subscriptions or topic in self._refused:
                continue
            try:
                msg_type = import_message_type(type_name)
                schema = self.definitions.schema_text(type_name)
                self.recording.add_topic(topic, type_name, schema)
            except (ImportError, MessageDefinitionError, ValueError) as exc:
                self._refused.add(topic)
                note = f"{topic}: not recorded ({exc})"
                self.recording.notes.append(note)
                log.error(note)
                continue
            qos = self._qos_for(topic)
            self._subscriptions[topic] = self.node.create_subscription(
                msg_type, topic, self._writer_for(topic), qos, raw=True
            )
            log.info(f"recording {topic} ({type_name}, {qos.reliability.name.lower()}, {qos.durability.name.lower()})")

    def _writer_for(self, topic: str) -> Callable[[bytes], None]:
        rel = topic.lstrip("/")
        rates = [hz for pattern, hz in self.max_rates.items() if fnmatch.fnmatch(rel, pattern.lstrip("/"))]
        if not rates:
            def write(data: bytes) -> None:
                self.recording.write(topic, data, time.time_ns())

            return write
        min_gap = int(1e9 / min(rates))
        last = [-min_gap]

        def write_limited(data: bytes) -> None:
            now = time.time_ns()
            if now - last[0] >= min_gap:
                last[0] = now
                self.recording.write(topic, data, now)

        return write_limited

    def _qos_for(self, topic: str) -> QoSProfile:
        infos = self.node.get_publishers_info_by_topic(topic)
        reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=100,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )

    @property
    def recorded_topics(self) -> list[str]:
        """Topics subscribed so far."""
        return sorted(self._subscriptions)


class Recorder(Node):
    """A node that only records (what `vla-stack record` runs); arguments as `TopicRecorder`.

    Args:
        node_name: ROS node name.
        context: rclpy context (default: the global one).
    """

    def __init__(
        self,
        recording: McapRecording,
        topics: Sequence[str] = (),
        all_topics: bool = False,
        exclude: Sequence[str] = (),
        namespace: str = "",
        discovery_period: float = 0.5,
        definitions: MessageDefinitions | None = None,
        node_name: str = "recorder",
        context=None,
    ) -> None:
        super().__init__(node_name, context=context)
        self.topic_recorder = TopicRecorder(
            self, recording, topics, all_topics, exclude, namespace, discovery_period, definitions
        )
