"""Planner backends, registered in `PLANNERS` by name: "offline" (sentence embeddings,
SayCan-style) and "vlm" (image-text-to-text model from a local directory, JSON plan)."""

from vla_stack.core.planning.backends.base import (
    PLANNERS,
    PlannerBackend,
    PlanningState,
    PlanRequest,
    PlanResult,
)
from vla_stack.core.planning.backends.offline import OfflinePlanner, OfflinePlannerConfig
from vla_stack.core.planning.backends.vlm import VlmPlanner, VlmPlannerConfig

__all__ = [
    "PLANNERS", "PlannerBackend", "PlanningState", "PlanRequest", "PlanResult", "OfflinePlanner",
    "OfflinePlannerConfig", "VlmPlanner", "VlmPlannerConfig",
]
