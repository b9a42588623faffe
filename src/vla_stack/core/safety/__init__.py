"""Safety and trajectory control (ROS-free): the only code path that commands hardware.

- `limits`: joint limits and robot profiles (`config/robots/<robot>.yaml`).
- `streaming`: ruckig jerk-limited planning from the commanded state; time-aligned chunk references.
- `guards`, `workspace`, `watchdog`, `estop`: input validation, contact, workspace boxes,
  command watchdog, e-stop latch (collision checking: `vla_stack.core.kinematics.collision`).
- `teleop`: twists / joint jogs -> joint velocities (damped least squares, singularity slowdown).
- `gripper`, `base_gate`: gripper pass-through and the mobile base cmd_vel limiter.
- `controller`: `SafetyController`, the deterministic core (`update(now) -> ControlOutput`).
- `status`: state, reasons and counters; `replay`: offline replays for tests and benchmarks.
"""

from vla_stack.core.safety.controller import (
    ArmCommand,
    ControlOutput,
    SafetyController,
    SafetyControllerConfig,
)
from vla_stack.core.safety.limits import JointLimits, RobotProfile, load_robot_profile
from vla_stack.core.safety.status import SafetyState, SafetyStatus

__all__ = [
    "ArmCommand",
    "ControlOutput",
    "JointLimits",
    "RobotProfile",
    "SafetyController",
    "SafetyControllerConfig",
    "SafetyState",
    "SafetyStatus",
    "load_robot_profile",
]
