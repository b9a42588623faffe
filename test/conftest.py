"""Shared test fixtures.

Real-process ROS tests (`@pytest.mark.ros`) start node executables as OS processes and talk to
them over real DDS from an rclpy node inside the test process. Every test session gets its own
ROS_DOMAIN_ID and localhost-only discovery, so concurrent runs on one machine never see each
other and no discovery traffic leaves the machine.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Environment for this process and every node it starts; must be set before rclpy.init().
from vla_stack.bringup import localhost_dds_environment  # noqa: E402  (ROS-free module)

_LOG_DIR = Path(tempfile.mkdtemp(prefix="vla_stack_test_ros_log_"))
TEST_ENV = {
    "ROS_DOMAIN_ID": os.environ.get("VLA_STACK_TEST_DOMAIN_ID", str(10 + os.getpid() % 90)),
    **localhost_dds_environment(),  # shared memory + loopback-only discovery, no multicast
    "MUJOCO_GL": "egl",
    "PYTHONUNBUFFERED": "1",
    "ROS_LOG_DIR": str(_LOG_DIR),
    "RCUTILS_COLORIZED_OUTPUT": "0",
}
os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
os.environ.update(TEST_ENV)
os.environ.setdefault("HOME", str(_LOG_DIR))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """Environment (a full copy) every node process of this session starts with."""
    return dict(os.environ)


class NodeProcess:
    """A node started for a test; `.output` holds its log lines, `.stop()` ends it with Ctrl-C."""

    def __init__(self, managed) -> None:
        self._managed = managed

    @property
    def output(self) -> list[str]:
        return self._managed.output

    def text(self) -> str:
        """Everything the node printed so far."""
        return "\n".join(self._managed.output)

    @property
    def pid(self) -> int | None:
        """Process id of the node (the node itself: a `prefix` such as setpriv execs it)."""
        return self._managed.pid

    def alive(self) -> bool:
        return self._managed.poll() is None

    def returncode(self) -> int | None:
        return self._managed.poll()

    def wait_for_output(self, needle: str, timeout: float = 20.0) -> bool:
        """True once a line containing `needle` was printed (polls; False on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in list(self._managed.output)):
                return True
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL, as when a node crashes."""
        import signal

        self._managed.signal(signal.SIGKILL)
        self._managed.proc.wait(5)

    def stop(self, timeout: float = 10.0) -> int | None:
        return self._managed.stop(timeout)


@pytest.fixture
def start_node(ros_env) -> Iterator[Callable[..., NodeProcess]]:
    """Factory: start_node(executable, name=None, params=None, param_files=(), remaps=None, args=(), namespace="", env=None, prefix=()).

    Starts the node exactly as `vla-stack up` / `ros2 run` would (`namespace` as `vla-stack up
    --namespace`, `env` added to the session environment, `prefix` argv run before the node, e.g.
    `setpriv ...`); stops all started nodes at teardown.
    """
    from vla_stack.bringup import ManagedProcess, NodeSpec, node_command

    started: list[NodeProcess] = []

    def factory(executable, name=None, params=None, param_files=(), remaps=None, args=(), echo=False, namespace="",
                env=None, prefix=(), rt_priority=0):
        params = dict(params or {})
        if executable == "planner_node":
            params.setdefault("resume_file", "")  # tests share a ROS domain: never resume another test's task
        spec = NodeSpec(
            executable=executable, name=name or executable, parameters=tuple(Path(p) for p in param_files),
            overrides=dict(params or {}), remappings=dict(remaps or {}), arguments=tuple(args), rt_priority=rt_priority,
        )
        sink = (lambda line: print(line, flush=True)) if echo else (lambda line: None)
        managed = ManagedProcess(spec, list(prefix) + node_command(spec, namespace),
                                 {**ros_env, **spec.process_environment(), **(env or {})}, sink)
        managed.start()
        proc = NodeProcess(managed)
        started.append(proc)
        return proc

    yield factory
    for proc in started:
        proc.stop(timeout=5.0)


class RosTestNode:
    """An rclpy node in the test process, spun in a background thread.

    Use `subscribe(topic, msg_type, qos)` to collect messages into a list, `publisher(...)`
    to publish, and `wait_until(predicate, timeout)` to wait without asserting on timing.
    """

    def __init__(self, rclpy_mod, context) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy_mod
        self.node = rclpy_mod.create_node(f"test_node_{os.getpid()}", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self.lock = threading.Lock()

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down during teardown
                if self._stop.is_set():
                    return
                raise

    def subscribe(self, topic: str, msg_type, qos=None) -> list:
        """Subscribe and return the list messages get appended to."""
        from vla_stack.ros.interfaces import SENSOR_QOS

        received: list = []

        def cb(msg):
            with self.lock:
                received.append(msg)

        self.node.create_subscription(msg_type, topic, cb, qos or SENSOR_QOS)
        return received

    def publisher(self, topic: str, msg_type, qos=None):
        """A publisher on `topic` (default: reliable, depth 10)."""
        from vla_stack.ros.interfaces import EVENT_QOS

        return self.node.create_publisher(msg_type, topic, qos or EVENT_QOS)

    @staticmethod
    def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, period: float = 0.05) -> bool:
        """Poll `predicate` until true (returns True) or `timeout` s pass (returns False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(period)
        return bool(predicate())

    def get_parameters(self, service: str, names: list[str]) -> dict[str, object]:
        """Values of `names` from a node's `.../get_parameters` service (None for undeclared ones)."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        client = self.node.create_client(GetParameters, service)
        assert client.wait_for_service(timeout_sec=60.0), f"{service} never appeared (node not started there?)"
        future = client.call_async(GetParameters.Request(names=names))
        assert self.wait_until(future.done, timeout=30.0), f"no answer from {service}"
        values = future.result().values
        assert len(values) == len(names)
        return {n: parameter_value_to_python(v) for n, v in zip(names, values, strict=True)}

    def publish_until(self, pub, msg, predicate: Callable[[], bool], timeout: float = 20.0, period: float = 0.2) -> bool:
        """Publish `msg` every `period` s until `predicate()` holds (covers discovery delays)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pub.publish(msg)
            if self.wait_until(predicate, timeout=period, period=0.02):
                return True
        return bool(predicate())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture(scope="session")
def _rclpy_context():
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield rclpy, context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture
def ros_node(_rclpy_context) -> Iterator[RosTestNode]:
    """A fresh rclpy test node (spinning in the background) for one test."""
    rclpy_mod, context = _rclpy_context
    node = RosTestNode(rclpy_mod, context)
    try:
        yield node
    finally:
        node.close()
