"""`vla-stack enroll` from the user's photos (core/grounding/cli.py). The simulator-based commands: test/unit/lab/test_grounding_lab.py."""

import argparse

import cv2
import numpy as np
from grounding_synthetic import Cylinder, dots, look_at, render

from vla_stack.core.grounding import cli
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.core.types import CameraIntrinsics


def parse(add, argv):
    p = argparse.ArgumentParser()
    add(p)
    return p.parse_args(argv)


def test_enroll_from_image_files_with_masks(tmp_path, capsys):
    intr = CameraIntrinsics.from_fovy(128, 128, 40.0)
    files, masks = [], []
    for i in range(3):
        pos = [0.3 * np.cos(i), 0.3 * np.sin(i), 0.15]
        rgb, _, lab = render([Cylinder(0, 0, texture=dots((220, 210, 200), (170, 60, 40)))], look_at(pos, [0, 0, 0.045]),
                             intr, table_color=(40, 90, 50), table_center=(0, 0), table_half=(2, 2))
        f, m = tmp_path / f"ref{i}.png", tmp_path / f"ref{i}_mask.png"
        cv2.imwrite(str(f), rgb[:, :, ::-1])
        cv2.imwrite(str(m), (lab == 2).astype(np.uint8) * 255)
        files.append(str(f))
        masks += ["--mask", str(m)]
    mem = tmp_path / "mem"
    args = parse(cli.add_enroll_arguments, ["my_mug", *files, *masks, "--memory", str(mem), "--alias", "Bob"])
    assert cli.enroll_main(args) == 0
    out = capsys.readouterr().out
    assert "enrolled 'my_mug' (cup) from 3 reference(s)" in out and "enrolment" in out
    obj = PersonalObjectMemory(mem).get("my_mug")
    assert obj.aliases == ("Bob",) and len(obj.crops) == 3
    # same name again without --overwrite: a clear error, exit 2
    assert cli.enroll_main(args) == 2
    assert "already exists" in capsys.readouterr().err


def test_enroll_bad_input_exits_2(tmp_path, capsys):
    assert cli.enroll_main(parse(cli.add_enroll_arguments, ["x", "--memory", str(tmp_path)])) == 2
    assert "no reference images" in capsys.readouterr().err
    args = parse(cli.add_enroll_arguments, ["bad name", str(tmp_path / "a.png"), "--memory", str(tmp_path)])
    assert cli.enroll_main(args) == 2
    assert "invalid personal object name" in capsys.readouterr().err
    assert cli.enroll_main(parse(cli.add_enroll_arguments, ["x", str(tmp_path / "a.png"), "--embedder", "apearance"])) == 2
    assert "did you mean 'appearance'" in capsys.readouterr().err
    args = parse(cli.add_enroll_arguments, ["x", str(tmp_path / "missing.png"), "--memory", str(tmp_path)])
    assert cli.enroll_main(args) == 2
    assert "does not exist" in capsys.readouterr().err


def write_views(tmp_path, texture, n=4, prefix="ref", seed=0):
    """n renders of one cylinder from different sides as PNG files + mask files (cli arguments)."""
    intr = CameraIntrinsics.from_fovy(128, 128, 40.0)
    files, masks = [], []
    for i in range(n):
        az = 2 * np.pi * i / n + 0.3
        pos = [0.3 * np.cos(az), 0.3 * np.sin(az), 0.15]
        rgb, _, lab = render([Cylinder(0, 0, texture=texture)], look_at(pos, [0, 0, 0.045]), intr,
                             table_color=(40, 90, 50), table_center=(0, 0), table_half=(2, 2), seed=seed + i)
        f, m = tmp_path / f"{prefix}{i}.png", tmp_path / f"{prefix}{i}_mask.png"
        cv2.imwrite(str(f), rgb[:, :, ::-1])
        cv2.imwrite(str(m), (lab == 2).astype(np.uint8) * 255)
        files.append(str(f))
        masks += ["--mask", str(m)]
    return files, masks


def test_enroll_reports_the_objects_own_rule_and_takes_not_mine_photos(tmp_path, capsys):
    files, masks = write_views(tmp_path, dots((220, 210, 200), (170, 60, 40)))
    others, _ = write_views(tmp_path, dots((220, 210, 200), (40, 60, 170)), n=2, prefix="blue", seed=10)
    mem = tmp_path / "mem"
    args = parse(cli.add_enroll_arguments, ["my_mug", *files, *masks, "--memory", str(mem), "--not-mine", *others])
    assert cli.enroll_main(args) == 0
    out = capsys.readouterr().out
    assert "own decision rule" in out and "expected: true accept" in out and "false accept" in out
    assert "2 'not mine' photos" in out
    assert "WARNING: hard to tell apart" in out  # the dots print looks the same mirrored / rotated
    obj = PersonalObjectMemory(mem).get("my_mug")
    assert obj.rule is not None and len(obj.negatives) == 2


def test_enroll_bad_photos_and_identical_objects_exit_2_and_store_nothing(tmp_path, capsys):
    files, masks = write_views(tmp_path, dots((220, 210, 200), (170, 60, 40)))
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((128, 128, 3), np.uint8))
    mem = tmp_path / "mem"
    args = parse(cli.add_enroll_arguments, ["my_mug", *files, str(black), "--memory", str(mem)])
    assert cli.enroll_main(args) == 2
    assert "is black" in capsys.readouterr().err
    assert PersonalObjectMemory(mem).names() == []
    assert cli.enroll_main(parse(cli.add_enroll_arguments, ["my_mug", *files, *masks, "--memory", str(mem)])) == 0
    capsys.readouterr()
    again, again_masks = write_views(tmp_path, dots((220, 210, 200), (170, 60, 40)), prefix="again", seed=30)
    assert cli.enroll_main(parse(cli.add_enroll_arguments, ["copy", *again, *again_masks, "--memory", str(mem)])) == 2
    assert "looks identical to the enrolled object 'my_mug'" in capsys.readouterr().err
    assert PersonalObjectMemory(mem).names() == ["my_mug"]
    # --no-self-calibration: enrolment as before (no checks, no rule)
    args = parse(cli.add_enroll_arguments, ["copy", *again, *again_masks, "--memory", str(mem), "--no-self-calibration"])
    assert cli.enroll_main(args) == 0
    assert PersonalObjectMemory(mem).get("copy").rule is None
