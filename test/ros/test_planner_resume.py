"""planner_node's resume file as real processes: only a task of the same bring-up (run id) is resumed,
and it moves nothing until it is confirmed (`~/confirm_resume`) unless `resume_autostart` says so.

Three planners run side by side in their own namespaces (topics and services are relative), each
with its own resume file and VLA_STACK_RUN_ID, as `vla-stack up` / `ros2 launch` set it:
- a task saved by another run is dropped (file removed) and no subtask is ever published;
- a task of the same run waits (planner/status `resume_pending`, no subtask) until
  `~/confirm_resume`, then it is planned and its subtask published;
- with `resume_autostart: true` (a profile that respawns the planner) the same-run task is planned
  at once.
"""

from __future__ import annotations

import json
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_stack.bringup import RUN_ID_ENV
from vla_stack.core.contracts import parse_subtask
from vla_stack.core.planning.skills import Subtask
from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf
from vla_stack.ros.conversions import diagnostics_to_dict

pytestmark = pytest.mark.ros

TASK = "bring the cup to the tray"
RUN = "20261206T040000Z-thisrun1"


def save_task(path, run_id: str, instruction: str = TASK, age: float = 5.0) -> None:
    """A resume file as a planner of run `run_id` leaves it, saved `age` s ago."""
    path.write_text(json.dumps({"instruction": instruction, "wall_time": time.time() - age, "run_id": run_id}))


class Planner:
    """One planner process in namespace `ns` and what the test sees of it."""

    def __init__(self, start_node, ros_node, ns: str, resume_file, **params) -> None:
        self.ros_node, self.ns = ros_node, ns
        status_t = itf.status("planner")
        self.statuses = ros_node.subscribe(f"/{ns}/{status_t.name}", DiagnosticArray, status_t.sub_qos)
        self.subtasks = ros_node.subscribe(f"/{ns}/{itf.PLANNER_SUBTASK.name}", String, itf.PLANNER_SUBTASK.sub_qos)
        self.proc = start_node(
            "planner_node", param_files=[config_path("planner_node.yaml")], args=("--ros-args", "-r", f"__ns:=/{ns}"),
            params={"resume_file": str(resume_file), "use_grounding": False, "publish_period": 0.5, **params},
            env={RUN_ID_ENV: RUN},
        )

    def status(self) -> dict:
        return diagnostics_to_dict(self.statuses[-1])["planner"] if self.statuses else {"values": {}}

    def model_ready(self) -> bool:
        return self.status()["values"].get("model_ready") == "True"

    def more_statuses(self, n: int = 4) -> bool:
        """Wait for `n` more status messages (time for anything pending to show)."""
        count = len(self.statuses)
        return self.ros_node.wait_until(lambda: len(self.statuses) >= count + n, timeout=30)


def test_resume_only_the_same_run_and_only_when_confirmed(start_node, ros_node, tmp_path):
    other_file, held_file, auto_file = (tmp_path / f"{n}.json" for n in ("other", "held", "auto"))
    save_task(other_file, "20261205T220000Z-lastweek")
    save_task(held_file, RUN)
    save_task(auto_file, RUN)
    other = Planner(start_node, ros_node, "other", other_file)
    held = Planner(start_node, ros_node, "held", held_file)
    auto = Planner(start_node, ros_node, "auto", auto_file, resume_autostart=True)
    for p in (other, held, auto):
        assert ros_node.wait_until(p.model_ready, timeout=180), p.proc.text()[-3000:]

    # ---- same run + resume_autostart: planned at once (and the time by which a resumed task is planned)
    assert ros_node.wait_until(lambda: len(auto.subtasks) > 0, timeout=60), auto.proc.text()[-3000:]
    first = Subtask.from_message(parse_subtask(auto.subtasks[-1].data))
    assert first.skill == "pick" and first.status == "active", first

    # ---- another run's task: dropped, the file removed, nothing planned
    assert other.more_statuses() and held.more_statuses()
    assert other.subtasks == [], other.subtasks[-1].data
    assert other.status()["values"]["state"] == "idle" and other.status()["values"]["resume_pending"] == ""
    assert not other_file.exists()
    assert "belongs to another bring-up" in other.proc.text(), other.proc.text()[-3000:]

    # ---- same run without autostart: held, reported, nothing planned until confirmed
    assert held.subtasks == [], held.subtasks[-1].data
    s = held.status()
    assert s["values"]["state"] == "idle" and s["values"]["resume_pending"] == TASK, s
    assert s["level"] == "WARN" and "/held/planner_node/confirm_resume" in s["message"], s
    assert held_file.exists()  # kept until the task ends or is dropped (another restart still finds it)
    assert "waiting for confirmation" in held.proc.text(), held.proc.text()[-3000:]

    assert "resume_autostart: true" in auto.proc.text(), auto.proc.text()[-3000:]

    client = ros_node.node.create_client(Trigger, "/held/planner_node/confirm_resume")
    assert client.wait_for_service(timeout_sec=30)
    future = client.call_async(Trigger.Request())
    assert ros_node.wait_until(future.done, timeout=30)
    assert future.result().success and TASK in future.result().message, future.result()
    assert ros_node.wait_until(lambda: len(held.subtasks) > 0, timeout=60), held.proc.text()[-3000:]
    assert Subtask.from_message(parse_subtask(held.subtasks[-1].data)).skill == "pick"
    assert held.status()["values"]["resume_pending"] == ""
    # nothing left to confirm
    future = client.call_async(Trigger.Request())
    assert ros_node.wait_until(future.done, timeout=30) and not future.result().success
    ros_node.node.destroy_client(client)
