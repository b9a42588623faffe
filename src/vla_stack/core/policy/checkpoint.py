"""Checkpoint of the built-in action expert: weights, normalisation statistics and metadata.

A checkpoint is a directory::

    <dir>/model.safetensors   # network weights + "norm.*" statistics (float32), no pickle
    <dir>/config.json         # {"format", "version", "model": ActionExpertConfig fields,
                              #  "feature_names", "latent_source", "robot", ...}
                              # tensors "norm.latent_table" (a typical expert-side latent per
                              # subtask) and, for checkpoints trained on real planner latents,
                              # "norm.latent_mean" / "norm.latent_basis" (`latent.LatentProjection`)
    <dir>/metrics.json        # how it was trained: command, seed, dataset, losses, timing

`config.json["robot"]` records the robot profile the expert was trained for: {"name",
"joints" (action order), "action_dim", "gripper_joint", "gripper_width_per_unit"}. The
loader refuses to run a checkpoint for another robot (`CheckpointError` naming both), and
refuses a checkpoint that does not record its robot: an expert outputs joint targets, and
running one on a robot it was not trained for moves joints it knows nothing about, so an
unknown robot is not a case to guess at. An old checkpoint is made loadable by adding the
field by hand (`robot_metadata(load_robot_profile("<robot>"))` prints it) once its robot is known.

Loading needs only numpy + safetensors (inference runs in numpy, `runtime.py`); training and
the torch model need torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_stack.core.policy.expert_config import ActionExpertConfig
from vla_stack.core.policy.features import FEATURE_NAMES, ActionNormalizer, FeatureNormalizer
from vla_stack.core.policy.latent import LatentProjection
from vla_stack.core.robot_profile import RobotProfile

CHECKPOINT_FORMAT = "vla_stack.action_expert"
CHECKPOINT_VERSION = 1

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "policy_checkpoints" / "action_expert"
"""The checkpoint shipped with the package (`src/vla_stack/policy_checkpoints/action_expert`)."""


class CheckpointError(ValueError):
    """The checkpoint is missing, of another format/version, or does not match this code."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Args:
        config: model configuration.
        weights: network weights by torch state-dict key (numpy float32).
        features: feature normaliser.
        actions: action normaliser.
        latent_table: (len(SUBTASKS), LATENT_DIM) a typical latent per subtask as the expert
            sees it (after projection; see `train.py`), for evaluation without a real planner.
        extra: the rest of config.json.
        latent_projection: maps the planner's latent to the expert's input (None: the
            checkpoint was trained on synthetic latents; a planner latent is then padded or
            truncated and means nothing to the expert).
    """

    config: ActionExpertConfig
    weights: dict[str, np.ndarray]
    features: FeatureNormalizer
    actions: ActionNormalizer
    latent_table: np.ndarray
    extra: dict
    latent_projection: LatentProjection | None = None


def robot_metadata(profile: RobotProfile) -> dict:
    """The `config.json["robot"]` record of a checkpoint trained for `profile`."""
    g = profile.gripper
    return {"name": profile.name, "joints": list(profile.joints), "action_dim": profile.action_dim,
            "gripper_joint": g.joint if g else "", "gripper_width_per_unit": g.width_per_unit if g else 1.0}


def check_robot(meta: dict, profile: RobotProfile, where: str | Path) -> None:
    """Refuse a checkpoint (its config.json `meta`) that was not trained for `profile`.

    Raises:
        CheckpointError: no "robot" record, or a record for another robot (name, joint names
            or action dimension differ); the message names both robots.
    """
    rec = meta.get("robot")
    if not isinstance(rec, dict):
        raise CheckpointError(
            f"{where}: the checkpoint does not record which robot it was trained for (no \"robot\" in "
            f"config.json), so it is not run on robot '{profile.name}'; if it was trained for '{profile.name}', "
            f"add \"robot\": {json.dumps(robot_metadata(profile))} to config.json, else retrain for this robot")
    mine = robot_metadata(profile)
    diffs = [k for k in ("name", "joints", "action_dim") if rec.get(k) != mine[k]]
    if diffs:
        raise CheckpointError(
            f"{where}: trained for robot '{rec.get('name')}' (joints {rec.get('joints')}, action_dim "
            f"{rec.get('action_dim')}), refused for robot '{profile.name}' (joints {list(profile.joints)}, "
            f"action_dim {profile.action_dim}): {', '.join(diffs)} differ; train a checkpoint for "
            f"'{profile.name}' or run the robot it was trained for")


def save_checkpoint(path: str | Path, config: ActionExpertConfig, weights: dict[str, np.ndarray],
                    features: FeatureNormalizer, actions: ActionNormalizer, latent_table: np.ndarray,
                    metrics: dict | None = None, extra: dict | None = None,
                    latent_projection: LatentProjection | None = None, profile: RobotProfile | None = None) -> Path:
    """Write a checkpoint directory (see the module docstring); returns its path.

    `profile` is the robot it was trained for (recorded as "robot"; required unless `extra`
    already holds a "robot" record).
    """
    from safetensors.numpy import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    tensors.update({
        "norm.feature_mean": features.mean, "norm.feature_std": features.std,
        "norm.action_mean": actions.mean, "norm.action_std": actions.std,
        "norm.latent_table": latent_table,
    })
    if latent_projection is not None:
        tensors.update({"norm.latent_mean": latent_projection.mean, "norm.latent_basis": latent_projection.basis})
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path / "model.safetensors"))
    meta = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": config.to_dict(),
        "feature_names": list(FEATURE_NAMES), "gripper_max_width": actions.max_width,
        "feature_min_std": features.min_std, "action_min_std": actions.min_std,
        **({"robot": robot_metadata(profile)} if profile is not None else {}), **(extra or {}),
    }
    if "robot" not in meta:
        raise ValueError("save_checkpoint needs the robot profile the expert was trained for (profile=...)")
    if meta["robot"]["action_dim"] != config.action_dim:
        raise ValueError(f"robot '{meta['robot']['name']}' has {meta['robot']['action_dim']} actions, "
                         f"the model {config.action_dim}")
    (path / "config.json").write_text(json.dumps(meta, indent=1))
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return path


def load_checkpoint(path: str | Path | None = None, profile: RobotProfile | None = None) -> Checkpoint:
    """Load a checkpoint directory (default: the shipped one) for the robot `profile`.

    Args:
        path: checkpoint directory; None = the shipped one.
        profile: the robot it will run on; None = the default robot profile.

    Raises:
        CheckpointError: missing files, other format/version, features that do not match
            this code's `FEATURE_NAMES` (the checkpoint was trained on other inputs), or a
            checkpoint trained for another robot (or not recording its robot, see the module
            docstring).
    """
    from safetensors.numpy import load_file

    path = Path(path) if path else DEFAULT_CHECKPOINT
    cfg_path, weights_path = path / "config.json", path / "model.safetensors"
    if not cfg_path.is_file() or not weights_path.is_file():
        raise CheckpointError(
            f"no action expert checkpoint at {path} (needs config.json and model.safetensors); "
            "train one with `vla-stack train-expert`"
        )
    meta = json.loads(cfg_path.read_text())
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{cfg_path}: format {meta.get('format')!r} v{meta.get('version')!r}, "
                              f"expected {CHECKPOINT_FORMAT!r} v{CHECKPOINT_VERSION}")
    if profile is None:
        from vla_stack.core.robot_profile import load_robot_profile

        profile = load_robot_profile()
    check_robot(meta, profile, path)
    if tuple(meta.get("feature_names", ())) != FEATURE_NAMES:
        raise CheckpointError(f"{cfg_path}: trained on other observation features than this code builds; retrain")
    tensors = load_file(str(weights_path))
    config = ActionExpertConfig(**meta["model"])
    features = FeatureNormalizer(tensors.pop("norm.feature_mean"), tensors.pop("norm.feature_std"),
                                 float(meta.get("feature_min_std", 1e-2)))
    actions = ActionNormalizer(tensors.pop("norm.action_mean"), tensors.pop("norm.action_std"),
                               float(meta.get("gripper_max_width", 0.08)), float(meta.get("action_min_std", 1e-3)))
    latent_table = tensors.pop("norm.latent_table")
    projection = None
    if "norm.latent_mean" in tensors:
        try:
            projection = LatentProjection(tensors.pop("norm.latent_mean"), tensors.pop("norm.latent_basis"))
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad planner-latent projection ({exc})") from exc
    if actions.horizon != config.horizon:
        raise CheckpointError(f"{path}: action statistics cover {actions.horizon} steps, model horizon is {config.horizon}")
    return Checkpoint(config, tensors, features, actions, latent_table, meta, projection)
