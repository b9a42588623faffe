"""Joint limits and robot profiles for the safety controller.

Both live in `vla_stack.core.robot_profile` (one robot description for the whole stack);
this module keeps the names the safety package has always imported.
"""

from vla_stack.core.robot_profile import (
    GripperProfile,
    JointLimits,
    RobotProfile,
    load_robot_profile,
    profile_from_dict,
    urdf_position_limits,
)

__all__ = [
    "GripperProfile",
    "JointLimits",
    "RobotProfile",
    "load_robot_profile",
    "profile_from_dict",
    "urdf_position_limits",
]
