"""Command-line hook of personalised grounding: `vla-stack enroll` (reference photos -> visual memory).

`vla_stack.cli` wires it in::

    from vla_stack.core.grounding import cli as grounding_cli
    p = sub.add_parser("enroll", help=...); grounding_cli.add_enroll_arguments(p); p.set_defaults(func=grounding_cli.enroll_main)

`enroll_main` takes the parsed `argparse.Namespace` and returns a process exit code.

`enroll NAME IMAGES...` stores a personal object from the user's photos (this runs on the
robot's machine). Enrolling a simulated scene's mug from its renders (`--from-sim SEED`) and
`vla-stack eval-grounding` are the lab's: `vla_stack.lab.grounding.sim_scenes` and
`vla_stack.lab.grounding.eval_grounding`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class EnrolmentReferences:
    """Reference images of one object, already loaded (e.g. rendered), instead of IMAGES from the command line.

    Args:
        images: RGB images, uint8 (H, W, 3), or image paths.
        masks: object mask per image (bool (H, W)), or None to segment the references automatically.
        source: provenance stored with the object (e.g. "sim:seed=3:mug=mug_1").
        load_s: time it took to produce the images, s (printed next to the enrolment time).
    """

    images: list[Any]
    masks: list[np.ndarray | None] | None
    source: str
    load_s: float = 0.0


# ---- enroll -----------------------------------------------------------------------------------
def add_enroll_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vla-stack enroll`."""
    parser.add_argument("name", help="name of the personal object (letters, digits, '_' or '-'), e.g. my_mug")
    parser.add_argument("images", nargs="*", type=Path, help="reference images of the object (PNG/JPG; RGBA alpha = mask)")
    parser.add_argument("--category", default="cup", help="category word used to propose candidates (default: cup)")
    parser.add_argument("--alias", action="append", default=[], help="another phrase that names it in instructions (repeatable)")
    parser.add_argument("--mask", action="append", type=Path, default=None,
                        help="object mask image per reference image, in order (repeatable; white = object)")
    parser.add_argument("--memory", type=Path, default=None,
                        help="personal-object memory directory (default: <data dir>/personal_objects; "
                             "data dir = vla-stack --data-dir, $VLA_STACK_HOME or ~/.vla_stack)")
    parser.add_argument("--embedder", default="appearance", help="embedder that computes the stored embeddings (default: appearance)")
    parser.add_argument("--overwrite", action="store_true", help="replace an object of the same name")
    parser.add_argument("--not-mine", nargs="+", type=Path, default=[], metavar="IMAGE",
                        help="photos of look-alikes that are NOT this object (e.g. the other mugs in the lab): "
                             "negatives of its own decision rule")
    parser.add_argument("--no-self-calibration", action="store_true",
                        help="skip the photo checks and the object's own decision rule (derived later when needed)")
    parser.add_argument("--top-k", type=int, default=2,
                        help="ensemble top-k of the matcher the rule is derived for (grounding matching.top_k; default 2)")


def enroll_main(args: argparse.Namespace, references: EnrolmentReferences | None = None) -> int:
    """`vla-stack enroll`: store a personal object; prints what was stored. Exit 0 on success, 2 on bad input.

    The references are `args.images` (+ `args.mask`) unless `references` gives them already loaded.
    Unless `--no-self-calibration`, the photos are checked (black, blank, blurred, duplicate), an
    object identical to one already enrolled is refused, and the object's own decision rule is
    derived and stored; its expected true/false accept rates are printed, with a warning when the
    object is hard to tell apart from look-alikes. Nothing is stored when anything fails.
    """
    from vla_stack.core.grounding.embedders import EMBEDDERS
    from vla_stack.core.grounding.memory import PersonalObjectMemory, load_image

    try:
        embedder = EMBEDDERS.create(args.embedder)
    except (KeyError, ImportError, OSError) as exc:
        print(f"vla-stack enroll: {exc}", file=sys.stderr)
        return 2
    memory = PersonalObjectMemory(args.memory)
    masks: list[np.ndarray | None] | None = None
    source = "files"
    t_render = 0.0
    try:
        if references is not None:
            images: list[Any] = list(references.images)
            masks = references.masks
            source = references.source
            t_render = references.load_s
        else:
            if not args.images:
                raise ValueError("no reference images given (or use --from-sim SEED)")
            images = list(args.images)
            if args.mask:
                if len(args.mask) != len(images):
                    raise ValueError(f"{len(args.mask)} --mask files for {len(images)} images")
                masks = [load_image(p)[:, :, 0] > 127 for p in args.mask]
        calibrate = not getattr(args, "no_self_calibration", False)
        t0 = time.perf_counter()
        obj = memory.enroll(args.name, images, args.category, embedder, aliases=args.alias, masks=masks,
                            overwrite=args.overwrite, source=source, not_mine=list(getattr(args, "not_mine", []) or []),
                            self_calibrate=calibrate, top_k=int(getattr(args, "top_k", 2)))
        t_enroll = time.perf_counter() - t0
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"vla-stack enroll: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"vla-stack enroll: cannot write the memory: {exc}", file=sys.stderr)
        return 1
    extra = f", rendering {t_render:.2f} s" if t_render else ""
    print(f"enrolled '{obj.name}' ({obj.category}) from {len(obj.crops)} reference(s) in {obj.directory}")
    print(f"  aliases: {', '.join(obj.aliases) or '-'}; source: {obj.source}; embedder: {embedder.version}")
    print(f"  enrolment {t_enroll:.3f} s{extra}")
    rule = obj.rule
    if rule is not None:
        print(f"  own decision rule (used with grounding matching.decision: per_object): floor {rule.accept_threshold:.4f}, "
              f"alone {rule.confident_threshold:.4f}, margin over the runner-up {rule.margin:.4f}")
        far = "unknown" if np.isnan(rule.false_accept_rate) else f"{rule.false_accept_rate:.1%}"
        print(f"  expected: true accept {rule.true_accept_rate:.1%} (beside a look-alike), ambiguous "
              f"{rule.ambiguous_rate:.1%}, false accept {far} (look-alikes only); from {rule.positives} views of it "
              f"and {rule.negatives} look-alikes ({len(obj.negatives)} 'not mine' photos)")
        if rule.hardest_negative[0]:
            print(f"  closest look-alike: {rule.hardest_negative[0]} ({rule.hardest_negative[1]:.4f})")
        for w in rule.warnings:
            print(f"  WARNING: {w}")
    return 0
