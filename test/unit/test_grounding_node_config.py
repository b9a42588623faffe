"""config/grounding_node.yaml's camera pose is the simulator's scene camera (they must not drift)."""

import numpy as np

from vla_stack.bringup import node_parameters
from vla_stack.paths import config_path


def test_sim_camera_pose_in_grounding_yaml_matches_the_simulator():
    from vla_stack.core.sim import SceneConfig, SimRobot

    params = node_parameters(config_path("grounding_node.yaml"), "grounding_node")
    sim = node_parameters(config_path("sim_node.yaml"), "sim_node")
    robot = SimRobot(SceneConfig(camera_position=tuple(sim["camera_position"]), camera_look_at=tuple(sim["camera_look_at"])))
    try:
        pose = robot.camera_pose()
    finally:
        robot.close()
    values = np.array(params["camera_poses"], float)
    np.testing.assert_allclose(values[:3], pose.position, atol=1e-6)
    q = np.asarray(pose.orientation, float)
    assert min(np.abs(values[3:] - q).max(), np.abs(values[3:] + q).max()) < 1e-6
    # targets are published in the base frame of the simulated robot's profile (= the sim's world)
    assert params["robot"] == sim.get("robot", "panda")
