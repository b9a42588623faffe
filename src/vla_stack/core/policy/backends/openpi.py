"""Remote policy over the openpi websocket protocol (π0 / π0.5 servers, `vla-stack serve-policy`).

The robot side of openpi's policy server, with what a robot needs beyond `openpi_client`:

- every blocking call has a timeout (connect, metadata, each reply): `infer` never hangs;
- a dropped or timed-out connection is closed and re-opened on a later call, with exponential
  backoff (`reconnect_initial` .. `reconnect_max`); while backing off, `infer` fails fast with
  `PolicyError("disconnected")` saying when it retries, so the caller holds the robot;
- a reply that is late is never matched to a later request (the connection is dropped);
- replies are checked (actions present, shape, finite) and converted to absolute joint
  targets (`KeyMap.action_mode`), gripper to width (`KeyMap.gripper_mode`).

The connection is opened lazily on the first `infer` (or `connect()`), never in the
constructor. Needs `msgpack` and `websockets` (installed with the stack).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vla_stack.core.policy.backends import POLICIES
from vla_stack.core.policy.backends.openpi_protocol import (
    KeyMap,
    actions_from_wire,
    observation_to_wire,
    pack,
    unpack,
)
from vla_stack.core.policy.types import Guidance, Observation, PolicyError, PolicyMetadata, actions_to_chunk
from vla_stack.core.robot_profile import RobotProfile, load_robot_profile
from vla_stack.core.types import ActionChunk


@dataclass(frozen=True)
class OpenPIConfig:
    """Connection and mapping settings of the openpi backend."""

    host: str = field(default="localhost", metadata={"help": "server host, or a ws:// / wss:// URI"})
    port: int = field(default=8000, metadata={"help": "server port (ignored when host is a URI with a port)"})
    api_key: str = field(default="", metadata={"help": "sent as 'Authorization: Api-Key <key>' when set"})
    horizon: int = field(default=16, metadata={"help": "chunk length the stack uses (longer replies are cut)"})
    control_period: float = field(default=0.05, metadata={"help": "time between chunk points, s"})
    connect_timeout: float = field(default=3.0, metadata={"help": "connect + metadata timeout, s"})
    infer_timeout: float = field(default=1.0, metadata={"help": "time to wait for one reply, s"})
    reconnect_initial: float = field(default=0.5, metadata={"help": "first reconnect delay, s (doubles each failure)"})
    reconnect_max: float = field(default=10.0, metadata={"help": "largest reconnect delay, s"})
    keys: KeyMap = field(default_factory=KeyMap, metadata={"help": "observation/reply key mapping"})

    def __post_init__(self) -> None:
        if not 1 <= int(self.port) <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        for name in ("connect_timeout", "infer_timeout", "reconnect_initial", "reconnect_max", "control_period"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")

    @property
    def uri(self) -> str:
        """ws:// URI of the server."""
        if self.host.startswith(("ws://", "wss://")):
            return self.host
        return f"ws://{self.host}:{self.port}"


@POLICIES.register("openpi", config=OpenPIConfig)
class OpenPIPolicy:
    """`Policy` backed by a remote openpi-protocol server (see the module docstring).

    Args:
        config: connection and mapping settings.
        clock: monotonic clock (s), injectable for tests.
    """

    def __init__(self, config: OpenPIConfig | None = None, clock=time.monotonic, profile: RobotProfile | None = None,
                 **kwargs) -> None:
        self.config = config or OpenPIConfig(**kwargs)
        self.profile = profile or load_robot_profile()
        self._clock = clock
        self._conn = None
        self.server_metadata: dict = {}
        self._backoff = self.config.reconnect_initial
        self._next_attempt = 0.0
        self._backoff_used = 0.0
        self.failures = 0
        self.last_error = ""
        self.last_server_timing: dict = {}
        self.metadata = PolicyMetadata.for_robot(self.profile, name="openpi", horizon=self.config.horizon,
                                                 control_period=self.config.control_period, supports_guidance=False)

    # ---- connection ------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._conn is not None

    def connect(self) -> dict:
        """Open the connection (if not open) and return the server's metadata.

        Raises PolicyError("disconnected") when the server cannot be reached (or while backing
        off after a failure), PolicyError("bad_reply") when its first frame is not metadata.
        """
        if self._conn is not None:
            return self.server_metadata
        now = self._clock()
        if now < self._next_attempt:
            raise PolicyError("disconnected", f"policy server {self.config.uri} unreachable ({self.last_error}); "
                                              f"next reconnect attempt in {self._next_attempt - now:.1f} s")
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        headers = {"Authorization": f"Api-Key {self.config.api_key}"} if self.config.api_key else None
        try:
            conn = connect(self.config.uri, open_timeout=self.config.connect_timeout, close_timeout=1.0,
                           compression=None, max_size=None, additional_headers=headers, proxy=None, legacy=True)
        except (OSError, TimeoutError, WebSocketException) as exc:
            self._fail(f"cannot connect to {self.config.uri}: {exc}")
            raise PolicyError("disconnected", f"cannot connect to policy server {self.config.uri}: {exc}; "
                                              f"retrying in {self._backoff_used:.1f} s") from exc
        try:
            first = conn.recv(timeout=self.config.connect_timeout)
            meta = unpack(first) if isinstance(first, bytes) else None
        except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
            conn.close()
            self._fail(f"no metadata from {self.config.uri}: {exc}")
            raise PolicyError("disconnected", f"policy server {self.config.uri} sent no metadata: {exc}") from exc
        if not isinstance(meta, dict):
            conn.close()
            self._fail("first frame was not a metadata dict")
            raise PolicyError("bad_reply", f"policy server {self.config.uri}: first frame was not a metadata dict")
        self._conn = conn
        self.server_metadata = meta
        self._backoff = self.config.reconnect_initial
        ext = meta.get("vla_stack", {}) if isinstance(meta.get("vla_stack"), dict) else {}
        self.metadata = PolicyMetadata.for_robot(
            self.profile, name=f"openpi:{meta.get('name', self.config.uri)}", horizon=self.config.horizon,
            control_period=self.config.control_period,
            supports_guidance=bool(ext.get("supports_guidance", False)) and self.config.keys.extensions,
        )
        return meta

    def _fail(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        self._backoff_used = self._backoff
        self._next_attempt = self._clock() + self._backoff
        self._backoff = min(self.config.reconnect_max, self._backoff * 2.0)

    def close(self) -> None:
        """Close the connection (the next `infer` reconnects)."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken socket may fail in many ways
                pass
            self._conn = None

    def _drop(self, reason: str) -> None:
        self.close()
        self._fail(reason)

    # ---- Policy ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Nothing to forget per episode (the connection stays open)."""

    def infer(self, observation: Observation, guidance: Guidance | None = None) -> ActionChunk:
        """Send `observation` (and, if the server supports it, the RTC `guidance`), return the chunk.

        Raises:
            PolicyError: "disconnected" (unreachable / dropped / backing off), "timeout" (no
            reply within `infer_timeout`; the connection is dropped), "server_error" (the
            server sent a traceback), "bad_reply" (no usable actions).
        """
        from websockets.exceptions import ConnectionClosed, WebSocketException

        self.connect()
        conn = self._conn
        send_guidance = guidance if self.metadata.supports_guidance else None
        payload = pack(observation_to_wire(observation, self.config.keys, send_guidance, self.profile))
        try:
            conn.send(payload)
            reply = conn.recv(timeout=self.config.infer_timeout)
        except TimeoutError as exc:
            self._drop(f"no reply within {self.config.infer_timeout:.2f} s")
            raise PolicyError("timeout", f"policy server {self.config.uri} did not answer within "
                                         f"{self.config.infer_timeout:.2f} s; connection dropped, will reconnect") from exc
        except ConnectionClosed as exc:
            self._drop(f"connection closed: {exc}")
            raise PolicyError("disconnected", f"policy server {self.config.uri} closed the connection ({exc}); "
                                              f"reconnecting in {self._backoff_used:.1f} s") from exc
        except (OSError, WebSocketException) as exc:
            self._drop(f"connection error: {exc}")
            raise PolicyError("disconnected", f"connection to policy server {self.config.uri} failed: {exc}") from exc
        if isinstance(reply, str):
            self._drop("server error")
            first_lines = " | ".join(reply.strip().splitlines()[-3:])
            raise PolicyError("server_error", f"policy server {self.config.uri} failed: {first_lines}")
        try:
            data = unpack(reply)
        except ValueError as exc:
            self._drop("undecodable reply")
            raise PolicyError("bad_reply", f"reply from {self.config.uri} is not msgpack: {exc}") from exc
        if isinstance(data, dict):
            self.last_server_timing = dict(data.get("server_timing", {}) or {})
        actions = actions_from_wire(data, self.config.keys, observation, self.config.horizon, self.config.control_period,
                                    self.profile)
        return actions_to_chunk(actions, observation.stamp, self.metadata)
