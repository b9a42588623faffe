"""`StackClient` against real node processes: start a profile, wait, e-stop, release, status, stop.

The whole-stack paths (instruction, feedback, episode reset, readiness of all five nodes) are
exercised by test/e2e/test_whole_loop.py and `vla-stack demo`, which drive the stack through it.
"""

from __future__ import annotations

import pytest

from vla_stack.ros.stack_client import RESET_ORDER, StackClient, StackStatus


def test_status_snapshot_reads_the_nodes_reports():
    """Pure: the convenience fields of a snapshot come from the nodes' status values ("" before any)."""
    empty = StackStatus()
    assert (empty.planner_state, empty.grounding_status, empty.safety_state, empty.safety_message) == ("", "", "", "")
    s = StackStatus(status={"planner": {"state": "executing"}, "grounding": {"status": "found"},
                            "safety_controller": {"state": "ESTOP", "message": "ESTOP: e-stop pressed"}})
    assert (s.planner_state, s.grounding_status, s.safety_state) == ("executing", "found", "ESTOP")
    assert s.safety_message.startswith("ESTOP")
    assert RESET_ORDER[0] == "safety"  # motion stops before anything that produces it is reset


@pytest.mark.ros
def test_client_starts_a_profile_estops_releases_and_stops_it():
    client = StackClient(node_name="stack_client_test")
    try:
        group = client.start_profile("sim_safety", sink=lambda line: None)
        # sim + safety only: no planner, so the whole-stack readiness is not reached ...
        assert client.wait_for(lambda s: s.safety_state in ("ACTIVE", "HOLDING") and s.joint_messages > 5, 90), \
            client.status().status
        assert not client.is_ready()
        # ... but the joint states' (sim) stamps advance
        t0 = client.status().joint_stamp
        assert client.wait_for(lambda s: s.joint_stamp > t0, 30)

        client.estop()
        assert client.wait_for(lambda s: s.safety_state == "ESTOP", 30), client.status().status
        ok, message = client.reset_node("safety")
        assert not ok, "the safety controller accepted a reset with the e-stop still pressed"
        client.estop(False)
        assert client.wait_for(lambda s: s.status.get("safety_controller", {}).get("estop_pressed") == "false", 30)
        ok = False
        for _ in range(20):  # refused while the arm is still stopping
            ok, message = client.reset_node("safety")
            if ok:
                break
            client.wait_for(lambda s: False, 0.5)
        assert ok, message
        assert client.wait_for(lambda s: s.safety_state in ("ACTIVE", "HOLDING"), 30), client.status().status

        # a reset of the whole stack names the node that is missing, instead of hanging
        with pytest.raises(RuntimeError, match="action_expert reset failed"):
            client.reset()
        client.stop_stack(10.0)
        assert client.group is None and all(p.poll() is not None for p in group.processes)
    finally:
        client.close()
