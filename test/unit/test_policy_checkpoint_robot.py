"""A checkpoint records the robot profile it was trained for and refuses any other robot."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from vla_stack.core.policy.backends.builtin import BuiltinExpertPolicy
from vla_stack.core.policy.checkpoint import (
    DEFAULT_CHECKPOINT,
    CheckpointError,
    load_checkpoint,
    robot_metadata,
)
from vla_stack.core.robot_profile import load_robot_profile


def test_shipped_checkpoint_records_the_panda_it_was_trained_on():
    meta = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())
    panda = load_robot_profile("panda")
    assert meta["robot"] == robot_metadata(panda)
    assert meta["robot"]["name"] == "panda" and meta["robot"]["action_dim"] == meta["model"]["action_dim"] == 8
    ckpt = load_checkpoint(None, panda)
    assert ckpt.extra["robot"]["joints"] == list(panda.joints)


@pytest.mark.parametrize("robot", ["ur5e", "so101"])
def test_shipped_checkpoint_refuses_another_robot_naming_both(robot):
    with pytest.raises(CheckpointError, match=rf"trained for robot 'panda'.*refused for robot '{robot}'"):
        load_checkpoint(None, load_robot_profile(robot))
    with pytest.raises(CheckpointError, match=rf"refused for robot '{robot}'"):
        BuiltinExpertPolicy(profile=load_robot_profile(robot))


def test_a_robot_with_the_same_name_but_other_joints_is_refused(tmp_path):
    data = yaml.safe_load(load_robot_profile("panda").source.read_text())
    data["joints"] = [f"arm_joint{i}" for i in range(1, 8)]
    data["limits"].update(lower=[-1.0] * 7, upper=[1.0] * 7)
    data.update(urdf=None, srdf=None, ready_pose=None, workspace_frames=[], fixed_joints={})
    path = tmp_path / "panda.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError, match="joints differ"):
        load_checkpoint(None, load_robot_profile(path))


def test_a_checkpoint_without_its_robot_is_refused_with_the_fix(tmp_path):
    """Legacy checkpoints (no "robot" record) are refused: an expert's joint targets on an unknown
    robot are not a thing to guess at; the message says what to add once the robot is known."""
    legacy = tmp_path / "legacy"
    shutil.copytree(DEFAULT_CHECKPOINT, legacy)
    meta = json.loads((legacy / "config.json").read_text())
    del meta["robot"]
    (legacy / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"does not record which robot.*add \"robot\": \{\"name\": \"panda\""):
        load_checkpoint(legacy, load_robot_profile("panda"))
