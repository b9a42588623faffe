"""Ground truth is for evaluation only: no stack node subscribes to `sim/ground_truth*`.

Two checks: statically, no node module mentions the ground-truth topics; dynamically, with
the stack's nodes running as real processes, the ROS graph shows no subscription on them.
(The demo runner, the lab's scripted pick baseline and the benchmarks are evaluators in
`vla_stack.lab` / bench/ and may read ground truth; they are not nodes of the stack.)
"""

import re
import time
from pathlib import Path

import pytest

from vla_stack.ros.interfaces import GROUND_TRUTH_TOPICS

ROS_DIR = Path(__file__).resolve().parents[2] / "src" / "vla_stack" / "ros"
EVALUATORS = {"interfaces.py", "sim_node.py"}  # sim_node publishes it


def _node_modules():
    return [p for p in sorted(ROS_DIR.glob("*.py")) if p.name not in EVALUATORS and p.name != "__init__.py"]


def test_no_node_module_mentions_ground_truth():
    pattern = re.compile(r"GROUND_TRUTH|sim/ground_truth")
    offenders = [p.name for p in _node_modules() if pattern.search(p.read_text())]
    assert not offenders, f"stack nodes must not read ground truth: {offenders}"


@pytest.mark.ros
def test_running_stack_has_no_ground_truth_subscriber(start_node, ros_node):
    nodes = ["sim_node"]
    for optional in ("safety_controller_node", "action_expert_node", "grounding_node", "planner_node"):
        if (ROS_DIR / f"{optional}.py").is_file():
            nodes.append(optional)
    procs = [start_node(n) for n in nodes]
    node = ros_node.node

    def all_up():
        names = {n for n, _ns in node.get_node_names_and_namespaces()}
        return all(n in names for n in nodes)

    assert ros_node.wait_until(all_up, timeout=90), f"not all nodes came up: {node.get_node_names_and_namespaces()}"
    # publishers of ground truth are visible, so discovery of the topic has happened
    assert ros_node.wait_until(lambda: node.count_publishers("/" + GROUND_TRUTH_TOPICS[0]) >= 1, timeout=30)
    time.sleep(1.0)
    for topic in GROUND_TRUTH_TOPICS:
        subs = node.get_subscriptions_info_by_topic("/" + topic)
        assert [s.node_name for s in subs] == [], f"{topic} has subscribers {[s.node_name for s in subs]}"
    assert all(p.alive() for p in procs)
