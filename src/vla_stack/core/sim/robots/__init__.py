"""Simulation assets per robot: `core/sim/robots/<profile name>.py`.

The scene builder (`core/sim/scene.py`) is generic: joint, frame and finger names, the
gripper range and the ready pose come from the robot profile (config/robots/<name>.yaml).
What only the simulation needs about one robot's model (actuator gains, rotor inertia,
colours) lives in the module named after its profile; `sim_assets(profile)` imports it.

A module defines:
    ARM_KP, ARM_KV: (n,) position gain (N·m/rad) and damping (N·m·s/rad) per arm joint;
    ARM_ARMATURE: rotor inertia reflected at each arm joint, kg·m²;
    FINGER_ARMATURE: the same for the finger joints;
    DARK_LINKS: links drawn in the dark material (the rest are light);
    GRIPPER_KP, GRIPPER_KV: gripper actuator gain (N/m) and damping (N·s/m) on the opening width;
    PAD_HALF, PAD_CENTER_Z, PAD_PROTRUSION: fingertip tactile pad geometry in the finger body frame, m.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from vla_stack.core.robot_profile import RobotProfile


def available() -> list[str]:
    """Profile names with simulation assets."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__))


def sim_assets(profile: RobotProfile) -> ModuleType:
    """The simulation asset module of `profile`'s robot.

    Raises:
        ValueError: no assets for this robot, or they do not fit its profile (the message
            names the robot and the robots that can be simulated).
    """
    if profile.name not in available():
        raise ValueError(f"robot '{profile.name}' cannot be simulated: no simulation assets "
                         f"(core/sim/robots/{profile.name}.py); robots with assets: {available()}")
    module = importlib.import_module(f"{__name__}.{profile.name}")
    n = len(profile.joints)
    if len(module.ARM_KP) != n or len(module.ARM_KV) != n:
        raise ValueError(f"simulation assets of '{profile.name}' give gains for {len(module.ARM_KP)} joints, "
                         f"its profile has {n}")
    g = profile.gripper
    if profile.urdf is None or g is None or len(g.finger_links) != 2 or len(g.joints) != 2 or not profile.hand_frame:
        raise ValueError(f"robot profile '{profile.name}' needs a urdf, a hand_frame and a two-finger gripper "
                         "(gripper.joints and gripper.finger_links) to be simulated")
    return module
