"""Robot description files that ship inside pip packages (nothing is downloaded at run time).

The Franka Panda comes from pybullet's `pybullet_data/franka_panda/panda.urdf` (Apache-2.0,
part of the `pybullet` wheel). Its meshes are referenced as `package://meshes/...`, which
neither Pinocchio nor MuJoCo can resolve without a ROS package path, so
`panda_urdf_with_absolute_meshes()` writes a copy with absolute mesh paths to a cache
directory (keyed by a hash of the source file, written atomically, safe to call from
several processes at once).

The Panda's names and numbers are in its robot profile, `config/robots/panda.yaml`, which
the stack loads with `vla_stack.core.robot_profile.load_robot_profile`; the `PANDA_*`
constants below are the same values for tests and lab tools (a unit test keeps them equal to
the profile). Runtime code takes a `RobotProfile` and never imports them.

Frames (all from the URDF): `panda_link0` is the robot base and, in the simulation, the
world origin. The TCP is the URDF's `panda_grasptarget` link: 0.105 m along the hand's z axis
from `panda_hand`, midway between the fingertip pads.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

PANDA_ARM_JOINTS: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
"""The seven revolute arm joints, base to wrist, as on a real Panda (franka_description)."""

PANDA_FINGER_JOINTS: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")
"""The two prismatic finger joints; each moves 0..0.04 m, so the opening width is their sum."""

PANDA_BASE_FRAME = "panda_link0"
"""Robot base frame (= world frame of the simulation)."""

PANDA_HAND_FRAME = "panda_hand"
"""Hand (flange + 45° about z) frame; the wrist force/torque sensor sits here in the simulation."""

PANDA_TCP_FRAME = "panda_grasptarget"
"""Tool centre point: between the fingertip pads, 0.105 m from `panda_hand` along its z axis."""

PANDA_TCP_OFFSET_M = 0.105
"""Distance from `panda_hand` to the TCP along the hand z axis, m (from the URDF)."""

PANDA_MAX_OPENING_M = 0.08
"""Largest gripper opening (sum of both finger joints), m."""

PANDA_READY_POSE: tuple[float, ...] = (0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398)
"""The usual Panda "ready" configuration, rad (TCP ~0.3 m in front of the base, pointing down)."""

_PACKAGE_URI = re.compile(r'filename="package://([^"]+)"')
_RELATIVE_MESH = re.compile(r'filename="(?!/|package://|file://)([^"]+)"')


def panda_urdf_path() -> Path:
    """Path of the Panda URDF shipped in the `pybullet` wheel (mesh paths are `package://`)."""
    try:
        import pybullet_data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Panda model ships in the 'pybullet' wheel (pybullet_data/franka_panda); "
            "install it with `pip install pybullet`"
        ) from exc
    path = Path(pybullet_data.getDataPath()) / "franka_panda" / "panda.urdf"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the pybullet installation looks incomplete")
    return path


def _cache_root() -> Path:
    """A writable cache directory: $VLA_STACK_HOME/cache (or ~/.vla_stack/cache), else the tempdir."""
    try:
        from vla_stack.paths import data_home

        root = data_home() / "cache"
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    root = Path(tempfile.gettempdir()) / "vla_stack_cache"
    root.mkdir(parents=True, exist_ok=True)
    return root


def urdf_with_absolute_meshes(urdf: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Copy of `urdf` whose mesh paths (`package://x` and relative) are absolute file paths.

    `package://<rest>` resolves against the URDF's own directory first (the pybullet layout:
    `package://meshes/...` next to the file), then against its parent (the ROS layout
    `package://<pkg>/meshes/...` with the URDF in `<pkg>/urdf/`).

    Args:
        urdf: source URDF file.
        cache_dir: where to write the copy (default: a `urdf/` folder in the vla_stack cache).

    Returns:
        Path of the rewritten URDF; the same path for the same source content.

    Raises:
        FileNotFoundError: if a referenced mesh does not exist.
    """
    src = Path(urdf).resolve()
    text = src.read_text()
    base = src.parent

    def resolve(rel: str) -> str:
        candidates = [base / rel, base.parent / rel]
        if "/" in rel:  # package://<pkg>/rest -> try <dir>/rest and <dir>/../rest
            rest = rel.split("/", 1)[1]
            candidates += [base / rest, base.parent / rest]
        for cand in candidates:
            if cand.is_file():
                return str(cand.resolve())
        raise FileNotFoundError(f"mesh '{rel}' referenced by {src} not found (tried {[str(c) for c in candidates]})")

    text = _PACKAGE_URI.sub(lambda m: f'filename="{resolve(m.group(1))}"', text)
    text = _RELATIVE_MESH.sub(lambda m: f'filename="{resolve(m.group(1))}"', text)

    digest = hashlib.sha256((str(src) + "\n" + text).encode()).hexdigest()[:16]
    out_dir = Path(cache_dir) if cache_dir is not None else _cache_root() / "urdf"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{src.stem}-{digest}.urdf"
    if not out.is_file() or out.read_text() != text:
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".urdf.tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)  # atomic: concurrent callers see either nothing or the whole file
    return out


def panda_urdf_with_absolute_meshes(cache_dir: str | Path | None = None) -> Path:
    """The Panda URDF (see `panda_urdf_path`) rewritten with absolute mesh paths."""
    return urdf_with_absolute_meshes(panda_urdf_path(), cache_dir)


BUILTIN_URDFS = {"builtin:panda": panda_urdf_with_absolute_meshes}
"""URDFs that ship in wheels, by the `urdf:` value a robot profile gives (`builtin:<name>`)."""


def resolve_builtin_urdf(spec: str) -> Path:
    """Path of the builtin URDF `spec` (e.g. `builtin:panda`), mesh paths made absolute.

    Raises:
        ValueError: unknown builtin (the message lists the known ones).
    """
    make = BUILTIN_URDFS.get(spec)
    if make is None:
        raise ValueError(f"unknown builtin URDF '{spec}' (known: {sorted(BUILTIN_URDFS)})")
    return make()
