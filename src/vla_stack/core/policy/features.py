"""Observation -> feature vector, and actions <-> the model's normalised action space.

The built-in expert does not see raw numbers: `ObservationEncoder` turns an `Observation` into
a fixed-length float32 vector (proprioception plus forward kinematics of the TCP, target and
place points absolute and relative to the TCP, the planner latent and subtask one-hot, and
tactile/wrench features with a presence flag), and `ActionNormalizer` maps absolute actions to
per-step normalised deltas from the current arm position (the gripper keeps its absolute width
scaled to [-1, 1]). Both are deterministic; their statistics live in the checkpoint.

Frames: base frame; the TCP is the robot profile's `tcp_frame` (between the fingertips).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.core.policy.latent import LatentProjection, fit_latent
from vla_stack.core.policy.types import LATENT_DIM, SUBTASKS, TACTILE_DIM, Observation
from vla_stack.core.robot_profile import load_robot_profile

FEATURE_NAMES: tuple[str, ...] = (
    *(f"q{i}" for i in range(1, 8)), "gripper_width",
    "tcp_x", "tcp_y", "tcp_z", *(f"tcp_xaxis_{c}" for c in "xyz"), *(f"tcp_zaxis_{c}" for c in "xyz"),
    "tcp_yaw_cos", "tcp_yaw_sin",
    "target_x", "target_y", "target_z", "grasp_x", "grasp_y", "grasp_z",
    "grasp_rel_x", "grasp_rel_y", "grasp_rel_z", "target_rel_x", "target_rel_y", "target_rel_z",
    "grasp_yaw_cos", "grasp_yaw_sin", "rel_yaw_cos", "rel_yaw_sin",
    "place_x", "place_y", "place_z", "place_rel_x", "place_rel_y", "place_rel_z",
    "grasp_to_place_x", "grasp_to_place_y", "grasp_to_place_z",
    *(f"latent_{i}" for i in range(LATENT_DIM)), *(f"subtask_{s}" for s in SUBTASKS),
    *(f"tactile_{i}" for i in range(TACTILE_DIM)), "tactile_present",
)
"""Name of each feature, in vector order."""

FEATURE_DIM = len(FEATURE_NAMES)


def tcp_yaw(tcp_rotation: np.ndarray) -> np.ndarray:
    """Yaw about base z (rad) of the TCP x axis, for (..., 3, 3) rotations."""
    return np.arctan2(tcp_rotation[..., 1, 0], tcp_rotation[..., 0, 0])


def encode_arrays(
    arm_positions: np.ndarray,
    gripper_width: np.ndarray,
    tcp_pose: np.ndarray,
    target_position: np.ndarray,
    grasp_position: np.ndarray,
    grasp_yaw: np.ndarray,
    place_position: np.ndarray,
    planner_latent: np.ndarray,
    subtask_id: np.ndarray,
    tactile: np.ndarray,
    tactile_present: np.ndarray,
) -> np.ndarray:
    """Raw features (N, FEATURE_DIM) float32 of N observations given as arrays.

    Args:
        arm_positions: (N, 7) rad. gripper_width: (N,) m.
        tcp_pose: (N, 4, 4) TCP pose from forward kinematics, base frame.
        target_position, grasp_position, place_position: (N, 3) m. grasp_yaw: (N,) rad.
        planner_latent: (N, LATENT_DIM). subtask_id: (N,) int in 0..len(SUBTASKS)-1.
        tactile: (N, TACTILE_DIM) (zeros when absent). tactile_present: (N,) 0/1.
    """
    n = arm_positions.shape[0]
    tcp = tcp_pose[:, :3, 3]
    x_axis, z_axis = tcp_pose[:, :3, 0], tcp_pose[:, :3, 2]
    yaw_tcp = tcp_yaw(tcp_pose[:, :3, :3])
    rel_yaw = grasp_yaw - yaw_tcp
    onehot = np.zeros((n, len(SUBTASKS)))
    onehot[np.arange(n), subtask_id.astype(int)] = 1.0
    return np.concatenate([
        arm_positions, gripper_width[:, None],
        tcp, x_axis, z_axis, np.cos(yaw_tcp)[:, None], np.sin(yaw_tcp)[:, None],
        target_position, grasp_position, grasp_position - tcp, target_position - tcp,
        np.stack([np.cos(grasp_yaw), np.sin(grasp_yaw), np.cos(rel_yaw), np.sin(rel_yaw)], axis=1),
        place_position, place_position - tcp, place_position - grasp_position,
        planner_latent, onehot, tactile, tactile_present[:, None],
    ], axis=1).astype(np.float32)


class ObservationEncoder:
    """`Observation` -> (FEATURE_DIM,) float32 raw features (see `FEATURE_NAMES`).

    Args:
        model: kinematics for the TCP pose (default: the default robot profile's). Not thread-safe: use one
            encoder per thread.
    """

    def __init__(self, model: RobotModel | None = None, latent_projection: LatentProjection | None = None) -> None:
        self.model = model or RobotModel.for_robot()
        self.latent_projection = latent_projection

    def latent(self, planner_latent: np.ndarray) -> np.ndarray:
        """(LATENT_DIM,) expert input of a planner latent: projected with the checkpoint's
        projection, else padded/truncated. Raises ValueError on a latent of the wrong length."""
        if self.latent_projection is not None:
            return self.latent_projection(planner_latent)
        return fit_latent(planner_latent)

    def encode(self, obs: Observation) -> np.ndarray:
        """Raw (unnormalised) features of `obs` (ValueError: planner latent of the wrong length)."""
        tactile = obs.tactile if obs.tactile is not None else np.zeros(TACTILE_DIM)
        return encode_arrays(
            obs.arm_positions[None], np.array([obs.gripper_width]), self.model.fk(obs.arm_positions)[None],
            obs.target_position[None], obs.grasp_position[None], np.array([obs.grasp_yaw]),
            obs.place_position[None], self.latent(obs.planner_latent)[None], np.array([obs.subtask_id]),
            tactile[None], np.array([1.0 if obs.tactile is not None else 0.0]),
        )[0]


@dataclass
class FeatureNormalizer:
    """Standardises features with dataset statistics: (f - mean) / max(std, min_std).

    Args:
        mean, std: (FEATURE_DIM,) statistics from the training set.
        min_std: floor of std so constant features do not blow up.
    """

    mean: np.ndarray
    std: np.ndarray
    min_std: float = 1e-2

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Normalised copy of `features` (..., FEATURE_DIM)."""
        return ((features - self.mean) / np.maximum(self.std, self.min_std)).astype(np.float32)

    @staticmethod
    def fit(features: np.ndarray) -> FeatureNormalizer:
        """Statistics of (N, FEATURE_DIM) training features."""
        return FeatureNormalizer(features.mean(axis=0).astype(np.float32), features.std(axis=0).astype(np.float32))


@dataclass
class ActionNormalizer:
    """Absolute actions <-> normalised model actions.

    Arm: (target - current arm position - mean[i]) / std[i] per chunk step i and joint (rad);
    gripper: width mapped linearly from [0, max_width] m to [-1, 1].

    Args:
        mean, std: (H, 7) statistics of the arm deltas, rad.
        max_width: gripper opening range, m (default: the default robot profile's).
        min_std: floor of std, rad.
    """

    mean: np.ndarray
    std: np.ndarray
    max_width: float = field(default_factory=lambda: load_robot_profile().max_opening)
    min_std: float = 1e-3

    @property
    def horizon(self) -> int:
        """Chunk length H these statistics cover."""
        return int(self.mean.shape[0])

    def normalize(self, actions: np.ndarray, q_now: np.ndarray) -> np.ndarray:
        """(..., H, 8) absolute actions -> normalised, given (..., 7) current arm positions."""
        actions = np.asarray(actions, dtype=np.float64)
        out = np.empty(actions.shape, dtype=np.float32)
        std = np.maximum(self.std, self.min_std)
        out[..., :7] = (actions[..., :7] - np.asarray(q_now)[..., None, :] - self.mean) / std
        out[..., 7] = actions[..., 7] / self.max_width * 2.0 - 1.0
        return out

    def denormalize(self, normalized: np.ndarray, q_now: np.ndarray) -> np.ndarray:
        """Inverse of `normalize` (gripper width clipped to [0, max_width])."""
        normalized = np.asarray(normalized, dtype=np.float64)
        out = np.empty(normalized.shape)
        std = np.maximum(self.std, self.min_std)
        out[..., :7] = normalized[..., :7] * std + self.mean + np.asarray(q_now)[..., None, :]
        out[..., 7] = np.clip((normalized[..., 7] + 1.0) / 2.0 * self.max_width, 0.0, self.max_width)
        return out

    @staticmethod
    def fit(actions: np.ndarray, q_now: np.ndarray) -> ActionNormalizer:
        """Statistics from (N, H, 8) absolute actions and (N, 7) arm positions."""
        delta = actions[..., :7] - q_now[:, None, :]
        return ActionNormalizer(delta.mean(axis=0).astype(np.float32), delta.std(axis=0).astype(np.float32))
