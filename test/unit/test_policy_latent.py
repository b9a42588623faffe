"""The planner latent as the built-in expert reads it: projection, training latents, checkpoint."""

import zlib

import numpy as np
import pytest

from vla_stack.core.planning.backends.offline import OfflinePlanner
from vla_stack.core.planning.skills import Subtask
from vla_stack.core.policy.latent import (
    TRAINING_INSTRUCTIONS,
    LatentProjection,
    fit_latent,
    fit_projection,
    planner_latent_table,
    planner_training_latents,
)
from vla_stack.core.policy.types import LATENT_DIM, SUBTASKS
from vla_stack.core.robot_profile import load_robot_profile


class HashEmbedder:
    """Deterministic stand-in for the sentence model that remembers what it was asked to embed."""

    dim = 32

    def __init__(self):
        self.texts = []

    def embed(self, texts):
        self.texts.extend(texts)
        out = np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=self.dim) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_training_latents_are_the_planners_own_latents():
    emb = HashEmbedder()
    backend = OfflinePlanner(embedder=emb)
    latents, ids = planner_training_latents(backend, TRAINING_INSTRUCTIONS[:3])
    assert latents.shape == (3 * 4, 32) and set(ids) == {SUBTASKS.index(s) for s in ("pick", "place", "retreat", "hold")}
    # exactly what the planner node publishes for the same (instruction, step)
    text, obj, target = TRAINING_INSTRUCTIONS[0]
    live = backend.latent(text, Subtask("pick", {"object": obj}))
    np.testing.assert_allclose(latents[0], live)
    assert emb.texts[0] == f"{text} | pick up the {obj}"


def test_projection_whitens_keeps_zero_and_refuses_another_planner():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 48)) @ rng.normal(size=(48, 48))
    proj = fit_projection(x)
    y = np.stack([proj(v) for v in x])
    assert y.shape == (200, LATENT_DIM)
    np.testing.assert_allclose(y.std(axis=0, ddof=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-6)
    assert not proj(np.zeros(48)).any()  # "no planner" stays "no planner"
    with pytest.raises(ValueError, match="48"):
        proj(np.ones(384))
    with pytest.raises(ValueError):
        LatentProjection(np.zeros(4), np.zeros((5, LATENT_DIM)))
    np.testing.assert_array_equal(fit_latent(np.arange(20.0)), np.arange(16.0))
    np.testing.assert_array_equal(fit_latent(np.ones(3))[:4], [1, 1, 1, 0])


def test_latent_table_has_variants_per_subtask_and_none_is_zero():
    emb = HashEmbedder()
    latents, ids = planner_training_latents(OfflinePlanner(embedder=emb), TRAINING_INSTRUCTIONS[:5])
    proj = fit_projection(latents)
    table = planner_latent_table(latents, ids, proj)
    assert table.shape == (5, len(SUBTASKS), LATENT_DIM)
    assert not table[:, 0].any()
    pick = SUBTASKS.index("pick")
    assert np.all(np.std(table[:, pick], axis=0) > 0)  # the paraphrases differ


def test_checkpoint_round_trip_keeps_the_projection(tmp_path):
    from vla_stack.core.policy.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint()
    proj = fit_projection(np.random.default_rng(1).normal(size=(40, 24)))
    save_checkpoint(tmp_path / "c", ckpt.config, ckpt.weights, ckpt.features, ckpt.actions, ckpt.latent_table,
                    latent_projection=proj, profile=load_robot_profile("panda"))
    back = load_checkpoint(tmp_path / "c")
    assert back.latent_projection is not None and back.latent_projection.input_dim == 24
    np.testing.assert_allclose(back.latent_projection.basis, proj.basis, rtol=1e-6)


def test_shipped_expert_reads_the_offline_planners_latent():
    """The shipped checkpoint was trained on the offline planner's 384-d latents: it carries their
    projection, its chunks depend on the latent, and a latent of another size is ignored (counted)."""
    from vla_stack.core.policy.backends.builtin import BuiltinExpertPolicy
    from vla_stack.lab.policy.simulation import SimPickPlace

    policy = BuiltinExpertPolicy()
    proj = policy.checkpoint.latent_projection
    assert proj is not None and proj.input_dim == 384
    assert policy.checkpoint.extra.get("latent_source") == "planner"
    obs = SimPickPlace(0).observe(subtask_id=SUBTASKS.index("pick"))
    latent = np.random.default_rng(2).normal(size=384)
    latent /= np.linalg.norm(latent)
    outs = []
    for v in (np.zeros(384), latent):
        policy.reset()
        outs.append(policy.infer(type(obs)(**{**obs.__dict__, "planner_latent": v})).positions)
    assert np.abs(outs[0] - outs[1]).max() > 1e-4
    policy.reset()
    policy.infer(type(obs)(**{**obs.__dict__, "planner_latent": np.ones(20)}))
    assert policy.latent_rejected == 1 and "384" in policy.last_latent_rejected
