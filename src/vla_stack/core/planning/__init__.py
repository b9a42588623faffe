"""Planning (ROS-free): skills and subtasks, the offline and VLM planner backends, the progress
monitor and the task state machine.

    from vla_stack.core.planning import TaskPlanner, PLANNERS
    planner = TaskPlanner(PLANNERS.create("offline"), clock=lambda: sim_time)
    planner.on_instruction("bring my cup to the tray"); planner.plan_now(); planner.step()
    encode_subtask(planner.current_subtask().to_message())   # vla_stack.core.contracts
"""

from vla_stack.core.contracts import ExclusionRequest
from vla_stack.core.planning.backends import (
    PLANNERS,
    OfflinePlanner,
    OfflinePlannerConfig,
    PlannerBackend,
    PlanningState,
    PlanRequest,
    PlanResult,
    VlmPlanner,
    VlmPlannerConfig,
)
from vla_stack.core.planning.monitor import MonitorConfig, SubtaskMonitor, WorldModel
from vla_stack.core.planning.skills import SKILLS, Subtask
from vla_stack.core.planning.task_planner import TaskPlanner, TaskPlannerConfig

__all__ = [
    "PLANNERS", "OfflinePlanner", "OfflinePlannerConfig", "PlannerBackend", "PlanningState", "PlanRequest",
    "PlanResult", "VlmPlanner", "VlmPlannerConfig", "MonitorConfig", "SubtaskMonitor", "WorldModel", "SKILLS",
    "Subtask", "ExclusionRequest", "TaskPlanner", "TaskPlannerConfig",
]
