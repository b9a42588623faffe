"""Shipped parameter files apply under a namespace (`vla-stack up --namespace robot1`, `namespace:=robot1`).

Issue 12: files keyed by the bare node name (`safety_controller:`) do not match `/robot1/safety_controller`,
so the nodes silently ran on code defaults (no obstacle box around the table, no camera pose, an expert
rejecting every target). Each node here is started with its shipped file under `robot1` exactly as
`vla-stack up --namespace robot1` starts it, and its parameters are read back over
`/robot1/<node>/get_parameters` (rcl_interfaces/GetParameters).
"""

from __future__ import annotations

import math

import pytest

from vla_stack.bringup import node_parameters
from vla_stack.paths import config_path

pytestmark = pytest.mark.ros

NAMESPACE = "robot1"

# node name -> (executable, parameter file, a parameter whose code default differs from the file's value, so
# the comparison fails when the file is not applied)
NODES = {
    # safety-relevant: the table as a collision obstacle (code default: no obstacles at all)
    "safety_controller": ("safety_controller_node", "safety_controller.yaml", "obstacle_boxes"),
    # the camera pose that turns detections into targets in the robot base frame (code default: unknown)
    "grounding_node": ("grounding_node", "grounding_node.yaml", "camera_poses"),
}


def _same(actual: object, expected: object) -> bool:
    """Parameter value equality across ROS types (int vs float, array vs list)."""
    if isinstance(expected, (list, tuple)):
        if not expected and actual is None:  # an empty YAML list has no ROS type: the node reports "not set"
            return True
        actual = list(actual)  # type: ignore[call-overload]
        return len(actual) == len(expected) and all(_same(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, float) or isinstance(actual, float):
        return isinstance(actual, (int, float)) and math.isclose(float(actual), float(expected), abs_tol=1e-9)
    return actual == expected


@pytest.mark.parametrize("node_name", sorted(NODES))
def test_shipped_parameters_apply_under_a_namespace(start_node, ros_node, node_name):
    """Every value of the node's shipped YAML is what the node runs with under /robot1."""
    executable, file_name, distinctive = NODES[node_name]
    path = config_path(file_name)
    expected = node_parameters(path, node_name)
    assert expected and distinctive in expected, f"{file_name} has no section for {node_name}"
    proc = start_node(executable, name=node_name, param_files=[path], namespace=NAMESPACE)
    actual = ros_node.get_parameters(f"/{NAMESPACE}/{node_name}/get_parameters", sorted(expected))
    wrong = {k: (actual[k], v) for k, v in expected.items() if not _same(actual[k], v)}
    assert not wrong, f"{node_name} under /{NAMESPACE} runs with (actual, file) = {wrong}\n{proc.text()[-3000:]}"
    if node_name == "safety_controller":  # the table is protected: one 6-number box, top at z = 0
        assert len(actual["obstacle_boxes"]) == 6 and actual["obstacle_boxes"][5] == 0.0
        assert list(actual["workspace_min"]) == [-0.6, -0.8, 0.0]
    assert proc.alive()

