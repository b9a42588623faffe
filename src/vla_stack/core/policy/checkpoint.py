"""Checkpoint of the built-in action expert: weights, normalisation statistics and metadata.

A checkpoint is a directory::

    <dir>/model.safetensors   # network weights + "norm.*" statistics (float32), no pickle
    <dir>/config.json         # {"format", "version", "model": ActionExpertConfig fields,
                              #  "feature_names", "latent_source", ...}
                              # tensors "norm.latent_table" (a typical expert-side latent per
                              # subtask) and, for checkpoints trained on real planner latents,
                              # "norm.latent_mean" / "norm.latent_basis" (`latent.LatentProjection`)
    <dir>/metrics.json        # how it was trained: command, seed, dataset, losses, timing

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


def save_checkpoint(path: str | Path, config: ActionExpertConfig, weights: dict[str, np.ndarray],
                    features: FeatureNormalizer, actions: ActionNormalizer, latent_table: np.ndarray,
                    metrics: dict | None = None, extra: dict | None = None,
                    latent_projection: LatentProjection | None = None) -> Path:
    """Write a checkpoint directory (see the module docstring); returns its path."""
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
        "feature_min_std": features.min_std, "action_min_std": actions.min_std, **(extra or {}),
    }
    (path / "config.json").write_text(json.dumps(meta, indent=1))
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return path


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Load a checkpoint directory (default: the shipped one).

    Raises:
        CheckpointError: missing files, other format/version, or features that do not match
            this code's `FEATURE_NAMES` (the checkpoint was trained on other inputs).
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
