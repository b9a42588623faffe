"""A policy server speaking the openpi websocket protocol (`vla-stack serve-policy`).

Serves any `Policy` (by default the built-in expert) to any openpi client: openpi's own
`openpi_client.websocket_client_policy.WebsocketClientPolicy`, or this stack's `openpi`
backend on another machine. Protocol in `openpi_protocol.py`:

- on connect: metadata {"name", "horizon", "control_period", "action_dim", "action_keys",
  "observation_keys", "vla_stack": {"protocol_version", "supports_guidance"}};
- per request: the observation dict -> {"actions": (H, 8) float32 absolute arm joint targets
  (rad) + gripper width (m), "policy_timing": {"infer_ms"}, "server_timing": {"infer_ms",
  "prev_total_ms"}};
- on error: a text frame with the traceback, then close with code 1011; `GET /healthz` -> 200.

Thread-safe: each connection has its own thread; inference is serialised by a lock (the
built-in expert is single-threaded anyway).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus

from vla_stack.core.policy.backends.openpi_protocol import (
    PROTOCOL_EXTENSION_VERSION,
    KeyMap,
    pack,
    unpack,
    wire_to_observation,
)
from vla_stack.core.policy.types import Policy, chunk_to_actions

LOG = logging.getLogger("vla_stack.serve_policy")


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the policy server listens."""

    host: str = field(default="0.0.0.0", metadata={"help": "interface to listen on (0.0.0.0 = all)"})
    port: int = field(default=8000, metadata={"help": "TCP port (0 = any free port)"})
    keys: KeyMap = field(default_factory=KeyMap, metadata={"help": "observation/reply key mapping"})

    def __post_init__(self) -> None:
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")


class PolicyServer:
    """openpi-protocol server around `policy` (see the module docstring).

    Args:
        policy: what to serve.
        config: host, port, key mapping.

    Use `start()` (background thread) + `stop()`, or `serve_forever()`.
    """

    def __init__(self, policy: Policy, config: ServerConfig | None = None) -> None:
        self.policy = policy
        self.config = config or ServerConfig()
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None
        self.requests = 0
        self.errors = 0

    @property
    def metadata(self) -> dict:
        """What clients receive on connect."""
        meta = self.policy.metadata
        keys = self.config.keys
        return {
            "name": meta.name, "horizon": meta.horizon, "control_period": meta.control_period,
            "action_dim": meta.action_dim, "arm_joints": list(meta.arm_joints),
            "action_keys": {"actions": "arm joint targets rad (7) + gripper width m", "mode": "absolute"},
            "observation_keys": {"state": keys.state, "prompt": keys.prompt, "images": list(keys.images)},
            "vla_stack": {"protocol_version": PROTOCOL_EXTENSION_VERSION, "supports_guidance": meta.supports_guidance},
        }

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._server is None:
            return int(self.config.port)
        return int(self._server.socket.getsockname()[1])

    def _health(self, connection, request):
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "OK\n")
        return None

    def _handle(self, connection) -> None:
        from websockets.exceptions import ConnectionClosed

        peer = connection.remote_address
        LOG.info("client %s connected", peer)
        try:
            connection.send(pack(self.metadata))
            prev_total = None
            while True:
                t0 = time.monotonic()
                frame = connection.recv()
                try:
                    data = unpack(frame) if isinstance(frame, bytes) else None
                    if not isinstance(data, dict):
                        raise ValueError("expected a binary msgpack frame holding an observation dict")
                    obs, guidance = wire_to_observation(data, self.config.keys)
                    t_inf = time.monotonic()
                    with self._lock:
                        chunk = self.policy.infer(obs, guidance if self.policy.metadata.supports_guidance else None)
                    infer_ms = (time.monotonic() - t_inf) * 1e3
                    actions = chunk_to_actions(chunk, self.policy.metadata).astype("float32")
                except Exception:  # noqa: BLE001 - any failure goes back to the client as a traceback
                    self.errors += 1
                    LOG.exception("inference failed for %s", peer)
                    connection.send(traceback.format_exc())
                    connection.close(code=1011, reason="Internal server error: traceback in previous frame")
                    return
                timing = {"infer_ms": infer_ms}
                if prev_total is not None:
                    timing["prev_total_ms"] = prev_total
                connection.send(pack({"actions": actions, "policy_timing": {"infer_ms": infer_ms},
                                      "server_timing": timing}))
                self.requests += 1
                prev_total = (time.monotonic() - t0) * 1e3
        except ConnectionClosed:
            LOG.info("client %s disconnected", peer)

    def start(self) -> PolicyServer:
        """Listen in a background thread; returns self."""
        from websockets.sync.server import serve

        self._server = serve(self._handle, self.config.host, self.config.port, compression=None, max_size=None,
                             process_request=self._health)
        self._thread = threading.Thread(target=self._server.serve_forever, name="policy-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Listen in the calling thread until `stop()` (or Ctrl-C)."""
        from websockets.sync.server import serve

        with serve(self._handle, self.config.host, self.config.port, compression=None, max_size=None,
                   process_request=self._health) as server:
            self._server = server
            server.serve_forever()

    def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            try:
                self._server.shutdown()
            except OSError:  # already closed (serve_forever's context exited)
                pass
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._server = None
