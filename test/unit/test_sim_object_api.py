"""SimRobot's object API for evaluations: move_object / remove_object and reference renders
with exact masks (core/sim/robot.py, core/sim/reference_views.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from vla_stack.core.sim.config import SceneConfig  # noqa: E402
from vla_stack.core.sim.robot import SimRobot  # noqa: E402


@pytest.fixture(scope="module")
def robot():
    r = SimRobot(SceneConfig(seed=5, num_mugs=3))
    yield r
    r.close()


def _visible_pixels(robot: SimRobot, name: str) -> int:
    return int(np.count_nonzero(robot.render_segmentation() == robot.segmentation_labels()[name]))


def test_remove_object_takes_only_that_mug_out_of_view(robot):
    robot.reset()
    mine, others = robot.mine, [n for n in robot.mug_names() if n != robot.mine]
    before = {n: _visible_pixels(robot, n) for n in robot.mug_names()}
    assert before[mine] > 200
    others_pose = {n: robot.object_pose(n).position.copy() for n in others}
    robot.remove_object(mine)
    assert _visible_pixels(robot, mine) == 0
    for n in others:
        assert _visible_pixels(robot, n) == before[n]  # look-alikes untouched
        np.testing.assert_allclose(robot.object_pose(n).position, others_pose[n], atol=1e-9)
    # parked on the floor: it stays out of view while the physics runs
    robot.step(50)
    assert _visible_pixels(robot, mine) == 0
    robot.reset()
    assert _visible_pixels(robot, mine) == before[mine]


def test_move_object_teleports_upright_with_yaw(robot):
    robot.reset()
    name = robot.mug_names()[0]
    target = np.array([0.45, -0.05, 0.0005])
    robot.move_object(name, target, yaw=0.7)
    pose = robot.object_pose(name)
    np.testing.assert_allclose(pose.position, target, atol=1e-9)
    x, y, z, w = pose.orientation
    assert np.isclose(2 * np.arctan2(z, w), 0.7, atol=1e-9) and abs(x) < 1e-12 and abs(y) < 1e-12
    # yaw None keeps the current heading
    robot.move_object(name, target + [0.02, 0.0, 0.0])
    x2, y2, z2, w2 = robot.object_pose(name).orientation
    assert np.isclose(2 * np.arctan2(z2, w2), 0.7, atol=1e-9)
    robot.reset()


@pytest.mark.parametrize("bad", [(np.nan, 0.0, 0.0), (0.4, 0.0), (0.4, np.inf, 0.0)])
def test_move_object_rejects_bad_positions(robot, bad):
    before = robot.object_pose(robot.mine).position.copy()
    with pytest.raises(ValueError):
        robot.move_object(robot.mine, bad)
    np.testing.assert_allclose(robot.object_pose(robot.mine).position, before)


def test_unknown_objects_raise_key_error(robot):
    with pytest.raises(KeyError, match="unknown object"):
        robot.move_object("mug_99", (0.4, 0.0, 0.0))
    with pytest.raises(KeyError, match="unknown object"):
        robot.remove_object("tray")
    with pytest.raises(KeyError, match="unknown mug"):
        robot.render_reference_views_with_masks("nope", 2, 64)


def test_reference_views_with_masks(robot):
    views, masks = robot.render_reference_views_with_masks(robot.mine, 3, 96)
    assert len(views) == len(masks) == 3
    plain = robot.render_reference_views(robot.mine, 3, 96)
    for v, p, m in zip(views, plain, masks, strict=True):
        assert v.shape == (96, 96, 3) and v.dtype == np.uint8 and m.shape == (96, 96) and m.dtype == bool
        np.testing.assert_array_equal(v, p)  # same images as render_reference_views
        assert 0.05 < m.mean() < 0.8
        # the mask is where the mug is: mug pixels differ from the grey studio backdrop
        border = np.concatenate([v[0], v[-1], v[:, 0], v[:, -1]]).astype(float)
        assert not m[0].any() and not m[-1].any()
        diff = np.abs(v.astype(float) - border.mean(axis=0)).max(axis=2)
        assert diff[m].mean() > diff[~m].mean()
    high, high_masks = robot.render_reference_views_with_masks(robot.mine, 2, 96, elevations_deg=(60.0,))
    assert len(high) == 2 and all(hm.any() for hm in high_masks)
    with pytest.raises(ValueError, match="elevations"):
        robot.render_reference_views_with_masks(robot.mine, 2, 96, elevations_deg=(95.0,))
