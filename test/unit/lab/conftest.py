"""Fixtures shared by the lab's unit tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def sim_ok():
    """Skip the test when the MuJoCo simulator cannot be imported here (headless EGL set up)."""
    pytest.importorskip("mujoco")
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from vla_stack.core.sim.robot import SimRobot  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - the simulator is optional for these tests
        pytest.skip(f"simulator not available: {exc}")
