"""sim (ROS-free): the MuJoCo robot-on-a-table scene and `SimRobot` (see `vla_stack.core.sim.robot`).

    from vla_stack.core.sim import SceneConfig, SimRobot
    robot = SimRobot(SceneConfig(seed=3))

Importing this package sets `MUJOCO_GL=egl` (unless already set) so offscreen rendering works
headless; MuJoCo reads it when it is first imported, so import this package before `mujoco`.
"""

import os as _os

_os.environ.setdefault("MUJOCO_GL", "egl")

from vla_stack.core.sim.config import SceneConfig  # noqa: E402  (after MUJOCO_GL)

__all__ = ["SceneConfig", "SimRobot"]


def __getattr__(name: str):
    if name == "SimRobot":  # lazy: importing mujoco + building scenes is not free
        from vla_stack.core.sim.robot import SimRobot

        return SimRobot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
