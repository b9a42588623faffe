"""Simulation assets of the Franka Panda (its model comes from the profile's URDF,
config/robots/panda.yaml: pybullet_data's panda.urdf with absolute mesh paths)."""

import numpy as np

ARM_KP = np.array([4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0])
"""Position gains of the arm joints, N·m/rad."""

ARM_KV = np.array([250.0, 250.0, 150.0, 150.0, 50.0, 50.0, 40.0])
"""Damping of the arm joints, N·m·s/rad."""

ARM_ARMATURE = 0.1
"""Rotor inertia reflected at each arm joint, kg·m²."""

FINGER_ARMATURE = 0.01
"""Rotor inertia reflected at each finger joint, kg (prismatic)."""

DARK_LINKS = ("panda_link7", "panda_hand", "panda_link0")
"""Links drawn dark grey (the rest white), as the real arm looks."""

GRIPPER_KP = 2000.0
"""Gripper actuator gain, N/m of opening-width error."""

GRIPPER_KV = 200.0
"""Gripper actuator damping, N·s/m (with a 40 N limit the fingers open/close at up to ~0.2 m/s)."""

PAD_HALF = (0.0085, 0.0015, 0.009)
"""Fingertip pad half sizes in the finger body frame, m: x across the finger, y thickness, z along it."""

PAD_CENTER_Z = 0.045
"""Pad centre along the finger (finger body z), m: the fingertip's inner face."""

PAD_PROTRUSION = 0.002
"""How far the pad's contact surface stands in front of the fingertip's inner face, m."""
