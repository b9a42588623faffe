"""The Policy protocol on each backend, and the openpi wire protocol: our server against the
real `openpi_client` package from PyPI, our client against our server, timeouts and a dropped
server handled without hanging."""

import socket
import threading

import numpy as np
import pytest

from vla_stack.core.policy.backends import POLICIES
from vla_stack.core.policy.backends.builtin import BuiltinExpertConfig, BuiltinExpertPolicy
from vla_stack.core.policy.backends.openpi import OpenPIConfig, OpenPIPolicy
from vla_stack.core.policy.backends.openpi_protocol import (
    KeyMap,
    actions_from_wire,
    observation_to_wire,
    pack,
    unpack,
    wire_to_observation,
)
from vla_stack.core.policy.backends.server import PolicyServer, ServerConfig
from vla_stack.core.policy.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vla_stack.core.policy.features import FEATURE_DIM, ActionNormalizer, FeatureNormalizer
from vla_stack.core.policy.model import ActionExpertConfig
from vla_stack.core.policy.rtc import prefix_weights
from vla_stack.core.policy.types import (
    Guidance,
    Observation,
    Policy,
    PolicyError,
    chunk_to_actions,
)
from vla_stack.core.robot_profile import load_robot_profile

H = 16

GRIPPER_JOINT = load_robot_profile("panda").gripper.joint


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A small randomly initialised checkpoint (the protocol does not care how good it is)."""
    import torch

    from vla_stack.core.policy.model import ActionExpert

    torch.manual_seed(0)
    cfg = ActionExpertConfig(width=32, depth=1, heads=2, cond_tokens=2, flow_steps=4)
    model = ActionExpert(cfg)
    with torch.no_grad():
        model.action_out.weight.normal_(0.0, 0.1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(path, cfg, {k: v.numpy() for k, v in model.state_dict().items()},
                    FeatureNormalizer(np.zeros(FEATURE_DIM, np.float32), np.ones(FEATURE_DIM, np.float32)),
                    ActionNormalizer(np.zeros((H, 7), np.float32), np.full((H, 7), 0.05, np.float32)),
                    np.zeros((5, 16), np.float32), metrics={"note": "test"}, profile=load_robot_profile("panda"))
    return path


def observation(stamp: float = 12.5) -> Observation:
    return Observation(
        arm_positions=np.array([0.0, -0.78, 0.0, -2.36, 0.0, 1.57, 0.78]), gripper_width=0.08,
        target_position=np.array([0.5, 0.0, 0.045]), grasp_position=np.array([0.5, 0.0, 0.065]), grasp_yaw=0.3,
        place_position=np.array([0.45, 0.35, 0.073]), tactile=np.arange(10.0), stamp=stamp, instruction="bring my cup",
    )


@pytest.fixture
def server(tiny_checkpoint):
    srv = PolicyServer(BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=str(tiny_checkpoint), seed=3)),
                       ServerConfig(host="127.0.0.1", port=0)).start()
    yield srv
    srv.stop()


def test_builtin_backend_implements_the_protocol(tiny_checkpoint):
    policy = POLICIES.create("builtin", config=BuiltinExpertConfig(checkpoint=str(tiny_checkpoint), seed=1))
    assert isinstance(policy, Policy) and policy.metadata.supports_guidance
    obs = observation()
    chunk = policy.infer(obs)
    assert chunk.joint_names[-1] == GRIPPER_JOINT and len(chunk.joint_names) == 8
    assert chunk.stamp == obs.stamp and chunk.horizon == H
    assert np.allclose(chunk.times, 0.05 * np.arange(1, H + 1))
    actions = chunk_to_actions(chunk, policy.metadata)
    assert np.all((actions[:, 7] >= 0) & (actions[:, 7] <= 0.08))
    # seeded: reset() restarts the sampler's sequence
    policy.reset()
    again = chunk_to_actions(policy.infer(obs), policy.metadata)
    assert np.array_equal(actions, again)
    assert not np.array_equal(again, chunk_to_actions(policy.infer(obs), policy.metadata))
    # guidance: the first actions follow the committed prefix
    prefix = actions + 0.02
    guided = chunk_to_actions(policy.infer(obs, Guidance(prefix, prefix_weights(4, 8, H))), policy.metadata)
    assert np.abs(guided[:4, :7] - prefix[:4, :7]).max() < np.abs(again[:4, :7] - prefix[:4, :7]).max()
    with pytest.raises(PolicyError, match="Observation"):
        policy.infer({"state": [0.0] * 8})


def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="train one with"):
        load_checkpoint(tmp_path)


def test_wire_codec_round_trip_and_refuses_objects():
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(2.5), "t": "x", "n": [1, 2]}
    back = unpack(pack(data))
    assert np.array_equal(back["a"], data["a"]) and back["a"].dtype == np.float32
    assert back["s"] == 2.5 and back["t"] == "x" and back["n"] == [1, 2]
    with pytest.raises(ValueError, match="dtype"):
        pack({"bad": np.array([object()])})


def test_observation_mapping_round_trip_with_guidance():
    obs = observation()
    g = Guidance(np.ones((H, 8)) * 0.1, prefix_weights(2, 8, H))
    back, guidance = wire_to_observation(unpack(pack(observation_to_wire(obs, KeyMap(), g))), KeyMap())
    assert np.allclose(back.arm_positions, obs.arm_positions) and back.gripper_width == pytest.approx(0.08)
    assert np.allclose(back.grasp_position, obs.grasp_position) and back.grasp_yaw == pytest.approx(0.3)
    assert back.instruction == "bring my cup" and np.allclose(back.tactile, obs.tactile)
    assert guidance is not None and np.allclose(guidance.weights, g.weights)
    with pytest.raises(PolicyError, match="lacks key 'vla_stack/target_position'"):
        wire_to_observation({"observation/state": np.zeros(8)}, KeyMap())


def test_reply_mapping_modes():
    obs = observation()
    keys = KeyMap(action_mode="delta", gripper_mode="closed_fraction")
    raw = np.zeros((20, 8))
    raw[:, 0] = 0.1
    raw[:, 7] = 1.0  # fully closed
    out = actions_from_wire({"actions": raw}, keys, obs, H, 0.05)
    assert out.shape == (H, 8)  # 20 rows cut to 16
    assert np.allclose(out[:, 0], obs.arm_positions[0] + 0.1) and np.allclose(out[:, 7], 0.0)
    vel = actions_from_wire({"actions": np.ones((4, 7))}, KeyMap(action_mode="velocity", gripper_index=-1), obs, H, 0.05)
    assert np.allclose(vel[:4, 1] - obs.arm_positions[1], 0.05 * np.arange(1, 5))
    assert np.allclose(vel[4:], vel[3])  # short chunk padded with its last action
    assert np.allclose(vel[:, 7], obs.gripper_width)  # no gripper column: hold the opening
    for bad in ({}, {"actions": np.zeros((4, 3))}, {"actions": np.full((4, 8), np.nan)}):
        with pytest.raises(PolicyError):
            actions_from_wire(bad, KeyMap(), obs, H, 0.05)


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")  # inside openpi_client
def test_real_openpi_client_against_serve_policy(server, tiny_checkpoint):
    """The PyPI `openpi_client` talks to our server: metadata on connect, msgpack-numpy
    observation in, action chunk out, and a server-side error comes back as openpi reports it."""
    from openpi_client import msgpack_numpy
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    meta = client.get_server_metadata()
    assert meta["horizon"] == H and meta["vla_stack"]["supports_guidance"] is True
    obs = observation()
    reply = client.infer(observation_to_wire(obs, KeyMap()))
    assert reply["actions"].shape == (H, 8) and reply["actions"].dtype == np.float32
    assert "infer_ms" in reply["server_timing"]
    local = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=str(tiny_checkpoint), seed=3))
    assert np.allclose(reply["actions"], chunk_to_actions(local.infer(obs), local.metadata), atol=1e-5)
    # our codec and openpi's agree byte for byte on what they produce
    assert msgpack_numpy.unpackb(pack({"x": np.eye(2)}))["x"].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert unpack(msgpack_numpy.packb({"x": np.eye(2)}))["x"].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    # a malformed observation: the server answers with the traceback, as openpi servers do
    with pytest.raises(RuntimeError, match="lacks key"):
        client.infer({"observation/state": np.zeros(8, np.float32)})
    assert server.errors == 1


def test_openpi_backend_against_serve_policy(server, tiny_checkpoint):
    policy = OpenPIPolicy(OpenPIConfig(host="127.0.0.1", port=server.port, infer_timeout=5.0))
    assert isinstance(policy, Policy)
    obs = observation()
    chunk = policy.infer(obs)
    assert policy.metadata.supports_guidance  # learnt from the server's metadata
    assert chunk.stamp == obs.stamp and chunk.horizon == H
    local = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=str(tiny_checkpoint), seed=3))
    assert np.allclose(chunk_to_actions(chunk, policy.metadata), chunk_to_actions(local.infer(obs), local.metadata), atol=1e-5)
    # guidance travels to the server
    prefix = np.tile(obs.arm_positions.tolist() + [0.08], (H, 1))
    guided = chunk_to_actions(policy.infer(obs, Guidance(prefix, prefix_weights(4, 8, H))), policy.metadata)
    assert np.abs(guided[:4, :7] - prefix[:4, :7]).max() < 0.05
    policy.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast_and_backs_off():
    clock = [100.0]
    policy = OpenPIPolicy(OpenPIConfig(host="127.0.0.1", port=_free_port(), connect_timeout=1.0,
                                       reconnect_initial=0.5, reconnect_max=2.0), clock=lambda: clock[0])
    with pytest.raises(PolicyError) as first:
        policy.infer(observation())
    assert first.value.code == "disconnected"
    # within the backoff no connection is attempted at all
    with pytest.raises(PolicyError, match="next reconnect attempt in 0.5"):
        policy.infer(observation())
    clock[0] += 0.6
    with pytest.raises(PolicyError, match="cannot connect"):
        policy.infer(observation())
    assert policy._backoff == 2.0  # doubled twice, capped at reconnect_max


def test_silent_server_times_out_without_hanging():
    """A server that accepts, sends metadata and then never answers: infer raises 'timeout'."""
    from websockets.sync.server import serve

    release = threading.Event()

    def handler(conn):
        conn.send(pack({"name": "silent"}))
        try:
            conn.recv()
        except Exception:
            return
        release.wait(10)

    srv = serve(handler, "127.0.0.1", 0, compression=None)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        policy = OpenPIPolicy(OpenPIConfig(host="127.0.0.1", port=srv.socket.getsockname()[1], infer_timeout=0.3))
        with pytest.raises(PolicyError) as exc:
            policy.infer(observation())
        assert exc.value.code == "timeout" and not policy.connected
    finally:
        release.set()
        srv.shutdown()
        thread.join(5)


def test_dropped_server_is_reported_and_reconnected(tiny_checkpoint):
    clock = [0.0]
    port = _free_port()
    cfg = BuiltinExpertConfig(checkpoint=str(tiny_checkpoint))
    srv = PolicyServer(BuiltinExpertPolicy(cfg), ServerConfig(host="127.0.0.1", port=port)).start()
    policy = OpenPIPolicy(OpenPIConfig(host="127.0.0.1", port=port, reconnect_initial=1.0), clock=lambda: clock[0])
    policy.infer(observation())
    srv.stop()
    with pytest.raises(PolicyError) as exc:
        policy.infer(observation())
    assert exc.value.code in ("disconnected", "timeout") and not policy.connected
    with pytest.raises(PolicyError, match="next reconnect attempt"):
        policy.infer(observation())  # backing off: fails immediately
    srv = PolicyServer(BuiltinExpertPolicy(cfg), ServerConfig(host="127.0.0.1", port=port)).start()
    try:
        clock[0] += 1.5
        assert policy.infer(observation()).horizon == H  # reconnected
        assert policy.failures >= 1
    finally:
        srv.stop()


def test_builtin_falls_back_to_an_unguided_sample_when_guidance_diverges(tiny_checkpoint, monkeypatch):
    policy = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=str(tiny_checkpoint)))
    original = policy.runtime.sample

    def diverging(features, rng, steps=None, noise_scale=1.0, prefix=None, weights=None, max_guidance_weight=5.0):
        out = original(features, rng, steps, noise_scale, prefix, weights, max_guidance_weight)
        return out * 1e6 if prefix is not None else out

    monkeypatch.setattr(policy.runtime, "sample", diverging)
    obs = observation()
    prefix = chunk_to_actions(policy.infer(obs), policy.metadata)
    actions = chunk_to_actions(policy.infer(obs, Guidance(prefix, prefix_weights(4, 8, H))), policy.metadata)
    assert np.all(np.isfinite(actions)) and policy.guidance_skipped == 1
    assert "diverged" in policy.last_guidance_skipped
    monkeypatch.setattr(policy.runtime, "sample", lambda *a, **k: np.full((H, 8), np.nan))
    with pytest.raises(PolicyError) as exc:
        policy.infer(obs)
    assert exc.value.code == "diverged"
