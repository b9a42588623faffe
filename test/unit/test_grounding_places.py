"""Locating the place support (the tray) from depth in simulated scenes, against ground truth."""

import numpy as np
import pytest

from vla_stack.core.grounding.places import PlaceConfig, grasp_height_above_table, locate_support
from vla_stack.core.grounding.proposals import DepthClusterDetector, Detections


@pytest.mark.parametrize("seed", [0, 2, 1003])
def test_tray_is_found_near_its_true_centre(seed):
    from vla_stack.core.sim import SceneConfig, SimRobot

    robot = SimRobot(SceneConfig(seed=seed))
    try:
        rgb, depth = robot.render()
        intr, pose, gt = robot.intrinsics(), robot.camera_pose(), robot.ground_truth()
    finally:
        robot.close()
    det = DepthClusterDetector(use_size_prior=False).detect(rgb, depth, intr, ["tray"])
    place = locate_support(det, depth, intr, pose)
    assert place is not None
    tray = np.asarray(gt["tray"]["position"])
    assert np.linalg.norm(place.center[:2] - tray[:2]) < 0.03, (place.center, tray)
    assert abs(place.center[2] - tray[2]) < 0.02 and abs(place.table_z) < 0.01
    # mugs are not supports: every mug is at least 10 cm from the chosen centre
    for m in gt["mugs"]:
        assert np.linalg.norm(np.asarray(m["position"][:2]) - place.center[:2]) > 0.1
    np.testing.assert_allclose(place.place_point(0.055), place.center + [0, 0, 0.055])


def test_no_table_no_place_and_config_validation():
    assert locate_support(Detections([], None, "no table"), np.zeros((4, 4)), None, np.eye(4)) is None
    assert grasp_height_above_table(np.zeros(3), Detections([], None)) is None
    assert grasp_height_above_table(np.array([0, 0, 1.0]), Detections([], np.array([0, 0, -1.0, 1.5]))) == 0.5
    with pytest.raises(ValueError):
        PlaceConfig(surface_percentile=150)
