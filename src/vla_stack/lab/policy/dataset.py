"""On-disk dataset of demonstrations for the action expert.

Format (version 1)
==================

A dataset is a directory::

    <root>/
      index.json                 # what is in it (below)
      episode_000000.npz         # one compressed numpy archive per episode
      episode_000001.npz
      ...

`index.json`::

    {
      "format": "vla_stack.action_expert_dataset",
      "version": 1,
      "control_period": 0.05,          # s between steps (and between chunk points)
      "horizon": 16,                   # H: label actions per step
      "robot": "<profile name>",      # robot profile (config/robots) the data was recorded on
      "arm_joints": [...],             # its arm joints, action order
      "created": "2026-11-22T10:00:00",
      "generator": {...},              # datagen configuration (seed, noise, ...)
      "episodes": [
        {"file": "episode_000000.npz", "seed": 0, "steps": 287, "success": true,
         "mugs": 3, "perturbations": 1, "duration_s": 14.35},
        ...
      ]
    }

Each `episode_*.npz` holds, for T control steps (all float32 unless noted; the robot
profile's base frame, m, rad, N):

| key               | shape      | meaning |
|-------------------|------------|---------|
| `stamp`           | (T,)       | sim time of the observation, s |
| `arm_positions`   | (T, 7)     | measured arm joints, rad |
| `gripper_width`   | (T,)       | measured finger opening, m |
| `target_position` | (T, 3)     | object centre (ground truth standing in for grounding), m |
| `grasp_position`  | (T, 3)     | grasp point of the object, m |
| `grasp_yaw`       | (T,)       | grasp yaw, rad, folded into [-pi/2, pi/2) |
| `place_position`  | (T, 3)     | place point, m |
| `tactile`         | (T, 10)    | wrench + fingertip features (`types.tactile_features`) |
| `subtask_id`      | (T,) int8  | index into `types.SUBTASKS` of the demonstrator's phase |
| `actions`         | (T, H, 8)  | label chunk: demonstrator's targets for t + (i+1)·dt: 7 joints rad + gripper width m |
| `executed`        | (T, 8)     | action actually commanded at the step (label + injected noise, or a perturbation) |
| `train_mask`      | (T,) bool  | False on steps that must not be imitated (injected perturbations) |

Readers must check `format` and `version`. Extra keys may be added in later versions; readers
ignore keys they do not know.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_stack.core.policy.types import ACTION_DIM, TACTILE_DIM
from vla_stack.core.robot_profile import load_robot_profile

FORMAT = "vla_stack.action_expert_dataset"
VERSION = 1

EPISODE_FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "stamp": (("T",), "float32"),
    "arm_positions": (("T", "7"), "float32"),
    "gripper_width": (("T",), "float32"),
    "target_position": (("T", "3"), "float32"),
    "grasp_position": (("T", "3"), "float32"),
    "grasp_yaw": (("T",), "float32"),
    "place_position": (("T", "3"), "float32"),
    "tactile": (("T", str(TACTILE_DIM)), "float32"),
    "subtask_id": (("T",), "int8"),
    "actions": (("T", "H", str(ACTION_DIM)), "float32"),
    "executed": (("T", str(ACTION_DIM)), "float32"),
    "train_mask": (("T",), "bool"),
}
"""Every array of an episode: symbolic shape and dtype (see the module docstring)."""


class DatasetError(ValueError):
    """The dataset on disk is missing, of another format/version, or malformed (says which file)."""


@dataclass
class Episode:
    """One episode's arrays (see `EPISODE_FIELDS`) and its index entry."""

    arrays: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Number of control steps T."""
        return int(self.arrays["stamp"].shape[0])

    def validate(self, horizon: int) -> None:
        """Raise DatasetError if a field is missing or has the wrong shape/dtype."""
        t = None
        for key, (shape, dtype) in EPISODE_FIELDS.items():
            if key not in self.arrays:
                raise DatasetError(f"episode {self.info.get('file', '?')}: missing array '{key}'")
            arr = self.arrays[key]
            if t is None:
                t = arr.shape[0]
            want = tuple(t if s == "T" else horizon if s == "H" else int(s) for s in shape)
            if arr.shape != want:
                raise DatasetError(f"episode {self.info.get('file', '?')}: '{key}' has shape {arr.shape}, expected {want}")
            if arr.dtype != np.dtype(dtype):
                raise DatasetError(f"episode {self.info.get('file', '?')}: '{key}' has dtype {arr.dtype}, expected {dtype}")


class DatasetWriter:
    """Writes episodes and the index of a dataset directory.

    Args:
        root: directory (created; must not already hold a dataset unless `overwrite`).
        control_period: s between steps.
        horizon: label chunk length H.
        generator: configuration of whatever produced the data (stored in the index).
        overwrite: replace an existing dataset's index (episode files are overwritten by name).
    """

    def __init__(self, root: str | Path, control_period: float, horizon: int,
                 generator: Mapping | None = None, overwrite: bool = False) -> None:
        self.root = Path(root)
        if (self.root / "index.json").exists() and not overwrite:
            raise DatasetError(f"{self.root} already holds a dataset (pass overwrite to replace it)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = {
            "format": FORMAT, "version": VERSION, "control_period": float(control_period), "horizon": int(horizon),
            "robot": load_robot_profile().name, "arm_joints": list(load_robot_profile().joints),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "generator": dict(generator or {}), "episodes": [],
        }

    def add(self, episode: Episode) -> dict:
        """Validate and write one episode; returns its index entry."""
        episode.validate(self.index["horizon"])
        name = f"episode_{len(self.index['episodes']):06d}.npz"
        np.savez_compressed(self.root / name, **episode.arrays)
        entry = {"file": name, "steps": episode.steps, **{k: v for k, v in episode.info.items() if k != "file"}}
        self.index["episodes"].append(entry)
        return entry

    def close(self) -> Path:
        """Write index.json (atomically) and return its path."""
        path = self.root / "index.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.index, indent=1))
        tmp.replace(path)
        return path


class Dataset:
    """Reads a dataset directory.

    Args:
        root: the directory holding index.json.

    Raises:
        DatasetError: no index, another format or version.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / "index.json"
        if not path.is_file():
            raise DatasetError(f"no dataset at {self.root} (index.json missing); generate one with `vla-stack train-expert`")
        try:
            self.index = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
        if self.index.get("format") != FORMAT:
            raise DatasetError(f"{path}: format {self.index.get('format')!r}, expected {FORMAT!r}")
        if self.index.get("version") != VERSION:
            raise DatasetError(f"{path}: version {self.index.get('version')!r}, this reader knows {VERSION}")
        self.control_period = float(self.index["control_period"])
        self.horizon = int(self.index["horizon"])

    def __len__(self) -> int:
        return len(self.index["episodes"])

    def episode(self, i: int) -> Episode:
        """Episode `i` (validated)."""
        info = self.index["episodes"][i]
        with np.load(self.root / info["file"]) as data:
            arrays = {k: data[k] for k in data.files}
        ep = Episode(arrays, dict(info))
        ep.validate(self.horizon)
        return ep

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self.episode(i)
