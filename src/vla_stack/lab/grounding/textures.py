"""`vla-stack textures`: write the mug textures of a texture family as PNG images.

    vla-stack textures --list                                  # the families and what each one is
    vla-stack textures --family hue --seed 3 -o outputs/hue_3   # mug_0.png .. mug_3.png + textures.json

Each PNG is one mug's wall print (`mug_families.WALL_ROWS` x `TEXTURE_WIDTH` px, RGB), in mug
order, so `--objects DIR` (demo, eval-grounding, enroll --from-sim) puts mug k's print on mug k
unchanged; which mug is "mine" is then chosen by the scene seed as always. Loaded from a
directory, the inside and handle take the print's mean colour (`appearances_from_directory`),
so they can differ slightly from the family's own inside/handle colours. `textures.json` records
the family, seed, texture ids, and the photographs used with their licences.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_textures_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vla-stack textures`."""
    parser.add_argument("--list", action="store_true", help="list the texture families and what each one is, then exit")
    parser.add_argument("--family", default="procedural", metavar="NAME",
                        help="texture family (default: procedural; see --list)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed the textures are generated for (default: 0)")
    parser.add_argument("--mugs", type=int, default=4, choices=[2, 3, 4], help="number of mugs (default: 4)")
    parser.add_argument("-o", "--out", type=Path, default=None, metavar="DIR",
                        help="directory for the PNGs (created; must not hold other images)")


def textures_main(args: argparse.Namespace) -> int:
    """`vla-stack textures`: see the module doc. Exit 0 on success, 2 on bad arguments."""
    import cv2

    from vla_stack.core.sim.mug_families import (
        PHOTO_SOURCES,
        WALL_ROWS,
        check_family,
        family_appearances,
        family_description,
        family_names,
    )
    from vla_stack.core.sim.mugs import list_texture_images

    if args.list:
        for name in family_names():
            print(f"{name:<11} {family_description(name)}")
        return 0
    try:
        check_family(args.family)
    except ValueError as exc:
        print(f"vla-stack textures: --family: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        print("vla-stack textures: give the output directory (-o DIR), or --list", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser()
    names = [f"mug_{i}.png" for i in range(args.mugs)]
    if out.is_dir():
        try:
            others = [p.name for p in list_texture_images(out) if p.name not in names]
        except FileNotFoundError:
            others = []
        if others:
            print(f"vla-stack textures: {out} already holds other images ({', '.join(others[:3])}...); --objects would "
                  "use every image there: choose an empty directory", file=sys.stderr)
            return 2
    try:
        apps = family_appearances(args.family, args.mugs, args.seed)
    except FileNotFoundError as exc:
        print(f"vla-stack textures: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for name, app in zip(names, apps, strict=True):
        if not cv2.imwrite(str(out / name), app.image[:WALL_ROWS, :, ::-1]):
            print(f"vla-stack textures: cannot write {out / name}", file=sys.stderr)
            return 2
    photos = sorted({f"{s.package}/{s.path}: {s.licence}" for s in PHOTO_SOURCES
                     if any(f"{Path(s.path).stem}" in a.texture_id for a in apps)})
    manifest = {"family": args.family, "description": family_description(args.family), "seed": args.seed,
                "mugs": [{"file": n, "texture_id": a.texture_id} for n, a in zip(names, apps, strict=True)],
                "photo_sources": photos,
                "note": "wall prints only; loaded with --objects, inside and handle take each print's mean colour"}
    (out / "textures.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(apps)} '{args.family}' textures (seed {args.seed}) to {out}/: {', '.join(names)} + textures.json")
    return 0
