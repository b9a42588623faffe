"""User data lives in the user's data directory, never in the installation (issue 12).

After `colcon build`, `vla-stack enroll` used to write the personal memory into
`install/.../share/vla_stack/config/personal_objects`, which the next build replaces. Here the
share directory is a copy of config/ (read-only) and `$VLA_STACK_HOME` a temporary directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from vla_stack import cli, paths
from vla_stack.core.grounding.embedders import AppearanceEmbedder
from vla_stack.core.grounding.memory import PersonalObjectMemory, default_root

ROOT = Path(__file__).resolve().parents[2]


def _reference(tmp: Path, colour: tuple[int, int, int]) -> tuple[Path, Path]:
    """A 96x96 photo of a coloured disc on grey and its mask, as files."""
    img = np.full((96, 96, 3), 128, np.uint8)
    mask = np.zeros((96, 96), np.uint8)
    cv2.circle(img, (48, 48), 25, colour, -1)
    cv2.circle(img, (44, 44), 6, (255, 255, 255), -1)
    cv2.circle(mask, (48, 48), 25, 255, -1)
    f, m = tmp / f"ref_{colour[0]}.png", tmp / f"ref_{colour[0]}_mask.png"
    cv2.imwrite(str(f), img[:, :, ::-1])
    cv2.imwrite(str(m), mask)
    return f, m


def _tree(root: Path) -> dict[str, tuple[int, float]]:
    """Every file under `root` with its size and mtime."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")}


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A read-only share directory (copy of config/ with one old enrolment in it) and an empty data home."""
    share = tmp_path / "install" / "share" / "vla_stack"
    shutil.copytree(ROOT / "config", share / "config")
    f, m = _reference(tmp_path, (200, 40, 40))
    PersonalObjectMemory(share / "config" / "personal_objects").enroll(
        "old_mug", [f], "cup", AppearanceEmbedder(), masks=[cv2.imread(str(m), 0) > 127], source="before issue 12")
    for p in [share, *share.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    home = tmp_path / "home"
    monkeypatch.setattr(paths, "share_dir", lambda: share)
    monkeypatch.setenv("VLA_STACK_HOME", str(home))
    yield share, home
    for p in [share, *share.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_enroll_writes_only_under_the_data_dir(installed, tmp_path, capsys):
    share, home = installed
    before = _tree(share)
    f, m = _reference(tmp_path, (40, 60, 200))
    assert cli.main(["enroll", "my_mug", str(f), "--mask", str(m)]) == 0
    assert (home / "personal_objects" / "my_mug" / "object.json").is_file()
    assert f"{home / 'personal_objects' / 'my_mug'}" in capsys.readouterr().out
    # --data-dir moves it (and is what the nodes started by `up` / `demo` see)
    other = tmp_path / "elsewhere"
    assert cli.main(["--data-dir", str(other), "enroll", "mug2", str(f), "--mask", str(m)]) == 0
    assert (other / "personal_objects" / "mug2" / "object.json").is_file()
    assert os.environ["VLA_STACK_HOME"] == str(other.resolve())
    assert _tree(share) == before  # nothing written into the installation


def test_user_memory_wins_and_old_location_is_read_with_a_warning(installed, tmp_path, caplog):
    share, home = installed
    before = _tree(share)
    old_dir = share / "config" / "personal_objects" / "old_mug"
    memory = PersonalObjectMemory()
    assert memory.root == default_root() == home / "personal_objects"
    assert memory.names() == ["old_mug"]
    # reopening the default root (grounding's reload after an enrolment) keeps the read-only fallback
    assert PersonalObjectMemory(memory.root).read_only_roots == (share / "config" / "personal_objects",)
    with caplog.at_level(logging.WARNING, logger="vla_stack.core.grounding.memory"):
        obj = memory.get("old_mug")
    assert obj.directory == old_dir and obj.source == "before issue 12"
    assert any("old_mug" in r.message and f"mv {old_dir} {home / 'personal_objects'}/" in r.message for r in caplog.records)
    # embeddings of another embedder version are computed but never written into the installation
    emb = memory.reference_embeddings("old_mug", AppearanceEmbedder(projection="none"))
    assert emb.shape[0] == 1 and _tree(share) == before
    # an enrolment of the same name in the user memory wins
    f, m = _reference(tmp_path, (30, 160, 30))
    memory.enroll("old_mug", [f], "cup", AppearanceEmbedder(), masks=[cv2.imread(str(m), 0) > 127], source="mine")
    fresh = PersonalObjectMemory()
    assert fresh.names() == ["old_mug"] and fresh.get("old_mug").source == "mine"
    assert fresh.get("old_mug").directory == home / "personal_objects" / "old_mug"
    assert _tree(share) == before


def test_an_explicit_memory_directory_is_used_alone(installed, tmp_path):
    """`--memory DIR` / the node's `memory_root`: exactly that directory, no fallback to the installation."""
    assert PersonalObjectMemory(tmp_path / "mem").names() == []
