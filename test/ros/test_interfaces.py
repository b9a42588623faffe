"""The service half of the contract (vla_stack.ros.interfaces): every service a node creates is
declared there, and created from that declaration."""

from __future__ import annotations

import re
from pathlib import Path

from vla_stack.ros import interfaces as itf

ROS = Path(itf.__file__).resolve().parent


def test_nodes_create_their_services_from_the_declarations():
    calls = []
    for path in sorted(ROS.glob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"create_service\(\s*([^,]+),\s*([^,]+),", text):
            calls.append((path.name, match.group(1).strip(), match.group(2).strip()))
    assert calls, "no create_service call found: the scan is broken"
    declared = {name for name, value in vars(itf).items() if isinstance(value, itf.Service)}
    for node, srv_type, name in calls:
        decl = re.fullmatch(r"(?:itf|interfaces)\.(\w+)\.srv_type", srv_type)
        assert decl and decl.group(1) in declared, f"{node}: create_service({srv_type}, ...) not from interfaces.py"
        assert f".{decl.group(1)}.name" in name, f"{node}: service name {name} is not {decl.group(1)}.name"
    used = {re.fullmatch(r"(?:itf|interfaces)\.(\w+)\.srv_type", t).group(1) for _, t, _ in calls}
    assert used == declared, f"declared but served by no node: {sorted(declared - used)}"
    assert set(itf.SERVICES) == {getattr(itf, n) for n in declared}


def test_every_service_names_a_node_that_exists():
    defaults = set()
    for path in ROS.glob("*_node.py"):
        text = path.read_text()
        defaults |= set(re.findall(r'node_name: str = "(\w+)"', text)) | set(re.findall(r'super\(\).__init__\("(\w+)"\)', text))
    for service in itf.SERVICES:
        assert service.server in defaults, f"{service.name}: server '{service.server}' is no node's default name"
    assert itf.PLANNER_RESET.path() == "planner_node/reset" and itf.SAFETY_RESET.path() == "safety/reset"
