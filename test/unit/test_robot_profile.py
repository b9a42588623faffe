"""The robot profile (`vla_stack.core.robot_profile`): one description of the robot for the whole stack."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from vla_stack.core.kinematics import assets
from vla_stack.core.robot_profile import DEFAULT_ROBOT, RobotProfile, load_robot_profile, profile_from_dict
from vla_stack.paths import config_path


def _minimal(**over) -> dict:
    data = {"name": "x", "joints": ["a", "b"],
            "limits": {"lower": [-1, -1], "upper": [1, 1], "velocity": [1, 1], "acceleration": [1, 1], "jerk": [1, 1]}}
    data.update(over)
    return data


def test_panda_profile_holds_the_values_the_stack_used_as_constants():
    """Behaviour unchanged: the profile gives exactly the numbers and names of the old PANDA_* constants."""
    p = load_robot_profile("panda")
    assert DEFAULT_ROBOT == "panda" and load_robot_profile() is p
    assert p.joints == assets.PANDA_ARM_JOINTS
    assert p.gripper is not None and p.gripper.joints == assets.PANDA_FINGER_JOINTS
    assert p.base_frame == assets.PANDA_BASE_FRAME and p.hand_frame == assets.PANDA_HAND_FRAME
    assert p.tcp_frame == assets.PANDA_TCP_FRAME and p.tcp_offset == (0.0, 0.0, assets.PANDA_TCP_OFFSET_M)
    assert p.ready_pose == assets.PANDA_READY_POSE
    assert p.gripper.max_width == assets.PANDA_MAX_OPENING_M == p.max_opening
    # the old policy/types.py GRIPPER_JOINT / GRIPPER_WIDTH_PER_UNIT
    assert p.gripper.joint == "panda_finger_joint1" and p.gripper.width_per_unit == 2.0
    assert p.gripper.finger_links == ("panda_leftfinger", "panda_rightfinger")
    assert p.action_dim == 8 and p.camera_frame == "camera_color_optical_frame"
    assert p.controllers.arm_trajectory == "arm_controller" and p.controllers.gripper == "gripper_controller"
    assert p.fixed_joints == {"panda_finger_joint1": 0.04, "panda_finger_joint2": 0.04}


def test_panda_profile_tcp_offset_matches_its_urdf():
    p = load_robot_profile("panda")
    model = p.kinematics()
    hand, tcp = model.fk(p.ready_pose, p.hand_frame), model.fk(p.ready_pose)
    np.testing.assert_allclose(tcp[:3, 3], hand[:3, 3] + hand[:3, :3] @ np.array(p.tcp_offset), atol=1e-9)


@pytest.mark.parametrize("name", ["ur5e", "so101"])
def test_other_shipped_profiles_load_with_the_same_loader(name):
    p = load_robot_profile(name)
    assert isinstance(p, RobotProfile) and p.name == name
    assert p.urdf is None and p.ready_pose is None and p.tcp_offset is None  # optional: unknown here
    with pytest.raises(ValueError, match=f"'{name}'.*ready_pose"):
        p.require_ready_pose()


def test_gripper_width_from_joints():
    g = load_robot_profile("panda").gripper
    assert g.width_from_joints({"panda_finger_joint1": 0.03, "panda_finger_joint2": 0.02}) == pytest.approx(0.05)
    assert g.width_from_joints({"panda_finger_joint1": 0.03}) == pytest.approx(0.06)  # one finger: x width_per_unit
    assert np.isnan(g.width_from_joints({}))
    so = load_robot_profile("so101").gripper
    assert so.joints == ("gripper",) and so.width_from_joints({"gripper": 0.7}) == pytest.approx(0.7)


def test_unknown_profile_names_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match=r"no_such_robot.*shipped profiles: \[.*'panda'.*'so101'.*'ur5e'"):
        load_robot_profile("no_such_robot")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_robot_profile("/nonexistent/robot.yaml")


@pytest.mark.parametrize("change, message", [
    ({"joints": None}, r"missing key\(s\) \['joints'\]"),
    ({"name": ""}, r"missing key\(s\) \['name'\]"),
    ({"joints": "a"}, "joints must be a list"),
    ({"joints": ["a", "a"]}, "duplicate"),
    ({"joints": ["a", "b", "c"]}, r"limits.lower has 2 values, need 3"),
    ({"ready_pose": [0.0]}, r"ready_pose has 1 values for 2 joints"),
    ({"ready_pose": [0.0, 5.0]}, r"ready_pose is outside the position limits of \['b'\]"),
    ({"tcp_offset": [0.0, 0.1]}, "tcp_offset has 2 values, expected 3"),
    ({"gripper": {"joint": "g", "joints": ["f1", "f2"]}}, r"gripper.joint 'g' must be one of gripper.joints"),
    ({"gripper": {"joint": "a"}}, r"gripper joints \['a'\] are also arm joints"),
    ({"gripper": {"joint": "g", "finger_links": ["l"]}}, "finger_links names the left and right"),
    ({"gripper": {"joint": "g", "widht_per_unit": 2.0}}, "gripper: .*widht_per_unit"),
    ({"controllers": {"arm": "x"}}, "controllers: .*arm"),
    ({"ready_poze": [0.0, 0.0]}, r"unknown key\(s\) \['ready_poze'\]"),
    ({"srdf": "missing.srdf"}, "SRDF .* does not exist"),
])
def test_bad_profiles_are_refused_with_the_reason(change, message, tmp_path):
    data = _minimal(**change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_robot_profile(path)


def test_a_profile_file_is_found_by_path_and_changes_are_reloaded(tmp_path):
    path = tmp_path / "arm.yaml"
    path.write_text(yaml.safe_dump(_minimal(ready_pose=[0.1, 0.2])))
    assert load_robot_profile(path).ready_pose == (0.1, 0.2)
    path.write_text(yaml.safe_dump(_minimal(ready_pose=[0.3, 0.2], name="arm2")))
    import os

    os.utime(path, ns=(1, 1))  # a different mtime, even within the filesystem's timestamp resolution
    p = load_robot_profile(path)
    assert p.ready_pose == (0.3, 0.2) and p.name == "arm2" and p.source == path


def test_shipped_profiles_all_load_and_parse():
    for path in sorted(config_path("robots").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert profile_from_dict(data, source=path).name == path.stem
