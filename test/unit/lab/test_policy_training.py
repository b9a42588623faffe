"""Demonstration data: one scripted episode in simulation, the on-disk dataset round trip, and
a tiny training run (seconds) that reduces the flow-matching loss and writes a checkpoint that
the built-in backend loads."""

import json

import numpy as np
import pytest

from vla_stack.core.policy.types import SUBTASKS
from vla_stack.lab.policy.datagen import DatagenConfig, generate_episode
from vla_stack.lab.policy.dataset import Dataset, DatasetError, DatasetWriter, Episode


@pytest.fixture(scope="module")
def episode():
    """One demonstration with a push + recovery (seed chosen so the push happens)."""
    cfg = DatagenConfig(episodes=1, perturb_probability=1.0, final_hold=0.5)
    return generate_episode(3, cfg)


def test_scripted_episode_succeeds_with_labels_and_a_recovery(episode):
    assert episode.info["success"], episode.info
    assert episode.info["perturbations"] == 1
    a = episode.arrays
    t = episode.steps
    assert a["actions"].shape == (t, 16, 8) and a["executed"].shape == (t, 8)
    assert 0 < np.count_nonzero(~a["train_mask"]) < t  # the push is not imitated
    # labels hold the demonstrator's next 16 targets: consecutive label chunks overlap
    mask = a["train_mask"][:-1] & a["train_mask"][1:]
    overlap = np.abs(a["actions"][:-1, 1:] - a["actions"][1:, :-1]).max(axis=(1, 2))[mask]
    assert np.median(overlap) < 1e-6
    # every phase of the task appears, in order
    phases = [SUBTASKS[i] for i in a["subtask_id"]]
    assert phases[0] == "pick" and phases[-1] == "hold" and "place" in phases and "retreat" in phases
    # the gripper closes (label ~0) and reopens
    assert a["actions"][:, 0, 7].min() < 0.01 and a["actions"][-1, 0, 7] > 0.07


def test_dataset_round_trip(tmp_path, episode):
    writer = DatasetWriter(tmp_path / "ds", 0.05, 16, generator={"seed": 3})
    entry = writer.add(episode)
    writer.close()
    assert entry["file"] == "episode_000000.npz" and entry["success"]
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 1 and ds.horizon == 16 and ds.control_period == 0.05
    back = ds.episode(0)
    for key, arr in episode.arrays.items():
        assert np.array_equal(back.arrays[key], arr), key
    index = json.loads((tmp_path / "ds" / "index.json").read_text())
    assert index["format"] == "vla_stack.action_expert_dataset" and index["version"] == 1
    with pytest.raises(DatasetError, match="already holds a dataset"):
        DatasetWriter(tmp_path / "ds", 0.05, 16)


def test_dataset_rejects_bad_episodes_and_other_formats(tmp_path, episode):
    bad = Episode({k: v for k, v in episode.arrays.items() if k != "tactile"}, {"file": "x"})
    with pytest.raises(DatasetError, match="missing array 'tactile'"):
        DatasetWriter(tmp_path / "a", 0.05, 16).add(bad)
    wrong = Episode({**episode.arrays, "actions": episode.arrays["actions"][:, :8]}, {})
    with pytest.raises(DatasetError, match="'actions' has shape"):
        DatasetWriter(tmp_path / "b", 0.05, 16).add(wrong)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "index.json").write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(DatasetError, match="format 'other'"):
        Dataset(tmp_path / "c")
    with pytest.raises(DatasetError, match="no dataset"):
        Dataset(tmp_path / "missing")


def test_tiny_training_run_reduces_the_loss(tmp_path, episode):
    from vla_stack.core.policy.backends.builtin import BuiltinExpertConfig, BuiltinExpertPolicy
    from vla_stack.core.policy.model import ActionExpertConfig
    from vla_stack.lab.policy.simulation import SimPickPlace
    from vla_stack.lab.policy.train import TrainConfig, train_expert

    writer = DatasetWriter(tmp_path / "ds", 0.05, 16)
    writer.add(episode)
    writer.add(episode)
    writer.close()
    cfg = TrainConfig(steps=120, batch_size=32, warmup_steps=10, log_every=20, eval_every=60, val_fraction=0.4,
                      lr=2e-3, seed=0)
    metrics = train_expert(tmp_path / "ds", tmp_path / "ckpt", cfg,
                           ActionExpertConfig(width=32, depth=1, heads=2, cond_tokens=2), progress=False,
                           command="test")
    log = metrics["loss_log"]
    assert log[-1]["loss"] < 0.7 * log[0]["loss"], log
    assert metrics["seed"] == 0 and metrics["command"] == "test" and "val_action_error" in metrics
    saved = json.loads((tmp_path / "ckpt" / "metrics.json").read_text())
    assert saved["final_loss"] == metrics["final_loss"]
    # the checkpoint loads into the backend and produces a chunk for a simulated observation
    policy = BuiltinExpertPolicy(BuiltinExpertConfig(checkpoint=str(tmp_path / "ckpt")))
    chunk = policy.infer(SimPickPlace(0).observe())
    assert chunk.horizon == 16 and np.all(np.isfinite(chunk.positions))


def test_training_is_deterministic_for_a_seed(tmp_path, episode):
    from vla_stack.core.policy.model import ActionExpertConfig
    from vla_stack.lab.policy.train import TrainConfig, train_expert

    writer = DatasetWriter(tmp_path / "ds", 0.05, 16)
    writer.add(episode)
    writer.close()
    cfg = TrainConfig(steps=15, batch_size=16, warmup_steps=5, log_every=5, eval_every=100, val_fraction=0.0)
    small = ActionExpertConfig(width=16, depth=1, heads=2, cond_tokens=1)
    a = train_expert(tmp_path / "ds", tmp_path / "a", cfg, small, progress=False)
    b = train_expert(tmp_path / "ds", tmp_path / "b", cfg, small, progress=False)
    assert [e["loss"] for e in a["loss_log"]] == [e["loss"] for e in b["loss_log"]]
