"""Shared helpers of the planning unit tests: a settable clock and a fake gripper/arm feed.

Not a test module (no test_ prefix); imported by test/unit/test_planning_*.py.
"""

from __future__ import annotations

import numpy as np

from vla_stack.core.kinematics.assets import PANDA_ARM_JOINTS, PANDA_FINGER_JOINTS, PANDA_READY_POSE
from vla_stack.core.types import JointState, Pose

TRAY_CUP = "bring the red-highlighted cup to the tray"


class FakeClock:
    """A clock the test advances by hand (seconds)."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def joint_state(width: float, arm=PANDA_READY_POSE, finger_speed: float = 0.0) -> JointState:
    """Panda joint state with gripper opening `width` m (split over both fingers)."""
    names = (*PANDA_ARM_JOINTS, *PANDA_FINGER_JOINTS)
    pos = [*arm, width / 2, width / 2]
    vel = [0.0] * 7 + [finger_speed / 2, finger_speed / 2]
    return JointState(names, np.array(pos), np.array(vel))


def target(x: float = 0.5, y: float = 0.1, z: float = 0.045) -> Pose:
    """A grounding grasp point in the base frame."""
    return Pose(np.array([x, y, z]), frame_id="panda_link0")


def run(planner, clock: FakeClock, seconds: float, width: float, contact: float | None = None,
        arm=PANDA_READY_POSE, dt: float = 0.1) -> None:
    """Feed joint states (and pad forces) every `dt` s for `seconds`, stepping the planner."""
    for _ in range(int(round(seconds / dt))):
        clock.advance(dt)
        planner.on_joint_state(joint_state(width, arm))
        if contact is not None:
            planner.on_pad_force("left", contact)
            planner.on_pad_force("right", contact)
        planner.step()
