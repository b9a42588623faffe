"""The openpi policy-server wire protocol: websocket frames of msgpack with numpy arrays.

What goes over the wire (as openpi's `WebsocketPolicyServer` / `openpi_client` speak it):

1. On connect, the server sends one binary frame: the packed *metadata* dict.
2. The client sends a packed *observation* dict; the server answers with a packed dict
   holding at least "actions" (array (H, D)), plus timing ("server_timing": {"infer_ms": ...}).
3. On a server-side error the server sends a *text* frame with the traceback and closes the
   connection (code 1011).
4. `GET /healthz` on the same port answers 200 "OK".

numpy arrays are packed as maps {b"__ndarray__": True, b"data": raw bytes, b"dtype": dtype
string, b"shape": shape} and numpy scalars as {b"__npgeneric__": True, b"data": item,
b"dtype": dtype string}; object, void and complex dtypes are refused (never pickle).

Observation keys (configurable, `KeyMap`) default to openpi's generic layout:
"observation/state" (arm joints + gripper), "observation/image" (the grounding node's prompted
image), "prompt" (the rewritten instruction), and vla_stack extensions prefixed "vla_stack/"
(targets, planner latent, tactile, and optionally the real-time chunking prefix/weights) that
other servers ignore.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_stack.core.policy.types import Guidance, Observation, PolicyError
from vla_stack.core.robot_profile import RobotProfile, load_robot_profile

PROTOCOL_EXTENSION_VERSION = 1
"""Version of the vla_stack extensions (metadata["vla_stack"]["protocol_version"])."""


def _require_msgpack():
    try:
        import msgpack
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PolicyError("missing_dependency", "the openpi protocol needs `msgpack` (pip install msgpack)") from exc
    return msgpack


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in ("V", "O", "c"):
            raise ValueError(f"cannot send arrays of dtype {obj.dtype} over the openpi protocol")
        arr = np.ascontiguousarray(obj)
        return {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": arr.dtype.str, b"shape": list(arr.shape)}
    if isinstance(obj, np.generic):
        if obj.dtype.kind in ("V", "O", "c"):
            raise ValueError(f"cannot send scalars of dtype {obj.dtype} over the openpi protocol")
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _decode(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        return np.frombuffer(obj[b"data"], dtype=np.dtype(obj[b"dtype"])).reshape(obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def pack(obj: Any) -> bytes:
    """msgpack bytes of `obj` (dicts, lists, str, numbers, numpy arrays/scalars)."""
    return _require_msgpack().packb(obj, default=_encode, use_bin_type=True)


def unpack(data: bytes) -> Any:
    """Inverse of `pack` (arrays come back read-only, viewing the frame)."""
    return _require_msgpack().unpackb(data, object_hook=_decode, raw=False)


@dataclass(frozen=True)
class KeyMap:
    """Mapping between the stack's `Observation` and a server's observation/reply keys.

    Empty key = do not send that part.
    """

    state: str = field(default="observation/state", metadata={"help": "arm joints (rad) + gripper, one vector; '' = not sent"})
    joint_position: str = field(default="", metadata={"help": "arm joints only (rad), e.g. DROID 'observation/joint_position'"})
    gripper_position: str = field(default="", metadata={"help": "gripper only, e.g. DROID 'observation/gripper_position'"})
    images: tuple[str, ...] = field(default=("observation/image=prompted",),
                                    metadata={"help": "wire_key=image_name pairs (images named by the node: prompted, color, wrist)"})
    prompt: str = field(default="prompt", metadata={"help": "key of the instruction text"})
    extensions: bool = field(default=True, metadata={"help": "send vla_stack/* keys (targets, latent, tactile)"})
    actions: str = field(default="actions", metadata={"help": "reply key of the (H, D) action chunk"})
    action_mode: str = field(default="absolute", metadata={"help": "absolute (rad), delta (rad from now) or velocity (rad/s)"})
    gripper_index: int = field(default=7, metadata={"help": "column of the gripper in the reply's actions; -1 = none (hold)"})
    gripper_mode: str = field(default="width", metadata={"help": "width (m), closed_fraction (0 open .. 1 closed), or open_fraction"})

    def __post_init__(self) -> None:
        if self.action_mode not in ("absolute", "delta", "velocity"):
            raise ValueError(f"action_mode must be absolute, delta or velocity, got {self.action_mode!r}")
        if self.gripper_mode not in ("width", "closed_fraction", "open_fraction"):
            raise ValueError(f"gripper_mode must be width, closed_fraction or open_fraction, got {self.gripper_mode!r}")
        for pair in self.images:
            if "=" not in pair or not all(pair.split("=", 1)):
                raise ValueError(f"image mapping {pair!r} must look like 'wire_key=image_name'")
        if not self.actions:
            raise ValueError("the actions reply key must not be empty")

    def gripper_to_wire(self, width: float, max_width: float) -> float:
        """Gripper width (m) -> the server's gripper value (`max_width`: the robot's largest opening, m)."""
        if self.gripper_mode == "closed_fraction":
            return 1.0 - width / max_width
        if self.gripper_mode == "open_fraction":
            return width / max_width
        return width

    def gripper_from_wire(self, value: np.ndarray, max_width: float) -> np.ndarray:
        """The server's gripper values -> width, m (clipped to 0..`max_width`, the robot's largest opening)."""
        value = np.asarray(value, dtype=np.float64)
        if self.gripper_mode == "closed_fraction":
            value = (1.0 - value) * max_width
        elif self.gripper_mode == "open_fraction":
            value = value * max_width
        return np.clip(value, 0.0, max_width)


def _max_width(profile: RobotProfile | None) -> float:
    """The robot's largest gripper opening, m (default robot profile when None)."""
    profile = profile or load_robot_profile()
    if profile.gripper is None:
        raise PolicyError("bad_observation", f"robot profile '{profile.name}' has no gripper: the openpi layout needs one")
    return profile.max_opening


def observation_to_wire(obs: Observation, keys: KeyMap, guidance: Guidance | None = None,
                        profile: RobotProfile | None = None) -> dict:
    """The observation dict sent to a server (`profile`: the robot, default profile when None)."""
    out: dict[str, Any] = {}
    grip = np.float32(keys.gripper_to_wire(obs.gripper_width, _max_width(profile)))
    if keys.state:
        out[keys.state] = np.concatenate([obs.arm_positions, [grip]]).astype(np.float32)
    if keys.joint_position:
        out[keys.joint_position] = obs.arm_positions.astype(np.float32)
    if keys.gripper_position:
        out[keys.gripper_position] = np.array([grip], dtype=np.float32)
    for pair in keys.images:
        wire, name = pair.split("=", 1)
        if name in obs.images:
            out[wire] = np.ascontiguousarray(obs.images[name], dtype=np.uint8)
    if keys.prompt:
        out[keys.prompt] = obs.instruction
    if keys.extensions:
        out.update({
            "vla_stack/target_position": obs.target_position.astype(np.float32),
            "vla_stack/grasp_position": obs.grasp_position.astype(np.float32),
            "vla_stack/grasp_yaw": np.float32(obs.grasp_yaw),
            "vla_stack/place_position": obs.place_position.astype(np.float32),
            "vla_stack/planner_latent": obs.planner_latent.astype(np.float32),
            "vla_stack/subtask_id": np.int32(obs.subtask_id),
            "vla_stack/stamp": np.float64(obs.stamp),
            "vla_stack/gripper_width": np.float32(obs.gripper_width),
        })
        if obs.tactile is not None:
            out["vla_stack/tactile"] = obs.tactile.astype(np.float32)
        if guidance is not None:
            out["vla_stack/rtc_prefix"] = guidance.prefix.astype(np.float32)
            out["vla_stack/rtc_weights"] = guidance.weights.astype(np.float32)
            out["vla_stack/rtc_max_guidance_weight"] = np.float32(guidance.max_guidance_weight)
    return out


def wire_to_observation(data: Mapping[str, Any], keys: KeyMap,
                        profile: RobotProfile | None = None) -> tuple[Observation, Guidance | None]:
    """Server side: an observation dict (as `observation_to_wire` makes it) -> Observation + guidance.

    `profile` is the robot (arm joint count, gripper range; default profile when None).

    Raises PolicyError("bad_observation") naming the missing/bad key.
    """
    def get(key: str) -> Any:
        if key not in data:
            raise PolicyError("bad_observation", f"observation lacks key '{key}' (has {sorted(data)})")
        return data[key]

    profile = profile or load_robot_profile()
    n, max_width = len(profile.joints), _max_width(profile)
    try:
        if keys.state:
            state = np.asarray(get(keys.state), dtype=np.float64).reshape(-1)
            if state.size < n + 1:
                raise PolicyError("bad_observation", f"'{keys.state}' must hold {n} joints + gripper, got {state.size} values")
            arm, grip = state[:n], float(state[n])
        else:
            arm = np.asarray(get(keys.joint_position), dtype=np.float64).reshape(-1)
            grip = float(np.asarray(get(keys.gripper_position)).reshape(-1)[0])
        width = float(keys.gripper_from_wire(np.array(grip), max_width))
        if "vla_stack/gripper_width" in data:
            width = float(data["vla_stack/gripper_width"])
        images = {}
        for pair in keys.images:
            wire, name = pair.split("=", 1)
            if wire in data:
                images[name] = np.asarray(data[wire])
        tactile = data.get("vla_stack/tactile")
        obs = Observation(
            arm_positions=arm, gripper_width=width,
            target_position=get("vla_stack/target_position"), grasp_position=get("vla_stack/grasp_position"),
            grasp_yaw=float(get("vla_stack/grasp_yaw")), place_position=get("vla_stack/place_position"),
            planner_latent=data.get("vla_stack/planner_latent", np.zeros(1)),
            subtask_id=int(data.get("vla_stack/subtask_id", 0)),
            tactile=None if tactile is None else np.asarray(tactile, dtype=np.float64),
            stamp=float(data.get("vla_stack/stamp", 0.0)), instruction=str(data.get(keys.prompt, "") if keys.prompt else ""),
            images=images,
        )
        guidance = None
        if "vla_stack/rtc_prefix" in data and "vla_stack/rtc_weights" in data:
            guidance = Guidance(np.asarray(data["vla_stack/rtc_prefix"], dtype=np.float64),
                                np.asarray(data["vla_stack/rtc_weights"], dtype=np.float64),
                                float(data.get("vla_stack/rtc_max_guidance_weight", 5.0)))
    except PolicyError:
        raise
    except (ValueError, TypeError) as exc:
        raise PolicyError("bad_observation", f"malformed observation: {exc}") from exc
    return obs, guidance


def actions_from_wire(reply: Mapping[str, Any], keys: KeyMap, obs: Observation, horizon: int,
                      control_period: float, profile: RobotProfile | None = None) -> np.ndarray:
    """A server reply -> (horizon, n + 1) absolute actions (n arm joints rad, gripper width m).

    n is the observation's number of arm joints; `profile` gives the gripper range (default
    profile when None).

    Longer chunks are truncated, shorter ones padded with their last action. Delta and
    velocity actions are integrated from the observation's arm positions.

    Raises PolicyError("bad_reply") if the reply has no usable actions.
    """
    if not isinstance(reply, Mapping) or keys.actions not in reply:
        raise PolicyError("bad_reply", f"reply has no '{keys.actions}' (keys: {sorted(reply) if isinstance(reply, Mapping) else type(reply).__name__})")
    raw = np.asarray(reply[keys.actions], dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[None, :]
    n = obs.arm_positions.size
    if raw.ndim != 2 or raw.shape[0] < 1 or raw.shape[1] < n:
        raise PolicyError("bad_reply", f"'{keys.actions}' must be (H, >={n}), got shape {raw.shape}")
    if not np.all(np.isfinite(raw)):
        raise PolicyError("bad_reply", f"'{keys.actions}' contains NaN/inf")
    raw = raw[:horizon]
    arm = raw[:, :n]
    if keys.action_mode == "delta":
        arm = obs.arm_positions + arm
    elif keys.action_mode == "velocity":
        arm = obs.arm_positions + np.cumsum(arm, axis=0) * control_period
    out = np.empty((raw.shape[0], n + 1))
    out[:, :n] = arm
    if 0 <= keys.gripper_index < raw.shape[1]:
        out[:, n] = keys.gripper_from_wire(raw[:, keys.gripper_index], _max_width(profile))
    else:
        out[:, n] = obs.gripper_width
    if out.shape[0] < horizon:  # pad with the last target: hold it
        out = np.vstack([out, np.repeat(out[-1:], horizon - out.shape[0], axis=0)])
    return out
