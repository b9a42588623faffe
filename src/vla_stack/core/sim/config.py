"""Configuration of the simulated scene and robot (`SceneConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from vla_stack.core.robot_profile import DEFAULT_ROBOT, RobotProfile
from vla_stack.core.sim.mug_families import DEFAULT_FAMILY, check_family

MAX_GRIPPER_FORCE_N = 140.0
"""Largest grasp force the simulated gripper accepts (N); larger commands are rejected."""


@dataclass
class SceneConfig:
    """Everything that defines one simulated scene: layout seed, mugs, cameras, sensors, physics.

    Frames: the world frame is the robot base (the profile's `base_frame`); the table top is the plane
    z = 0; the table extends in front of the robot (+x).
    """

    seed: int = field(default=0, metadata={"help": "Seed of the scene: mug placement, textures, tray side, which mug is 'mine'"})
    num_mugs: int = field(default=3, metadata={"help": "Number of look-alike mugs on the table (2..4)"})
    mine_index: int | None = field(
        default=None, metadata={"help": "Index of the user's own mug (0..num_mugs-1); None = chosen by the seed"}
    )
    texture_dir: str = field(
        default="",
        metadata={"help": "Directory of mug texture images (one per mug, sorted by name); empty = procedural textures"},
    )
    family: str = field(
        default=DEFAULT_FAMILY,
        metadata={"help": "Family of generated look-alike mug textures (procedural, photo, hue, mirror, text, plain: "
                  "core/sim/mug_families.py); leave 'procedural' when texture_dir is set"},
    )
    mug_radius: float = field(default=0.030, metadata={"help": "Outer radius of the mug body, m (the gripper opens 0.08 m)"})
    mug_height: float = field(default=0.090, metadata={"help": "Height of the mug body, m"})
    mug_mass: float = field(default=0.25, metadata={"help": "Mass of one mug, kg"})
    camera_width: int = field(default=640, metadata={"help": "Scene camera image width, px"})
    camera_height: int = field(default=480, metadata={"help": "Scene camera image height, px"})
    camera_fovy_deg: float = field(default=55.0, metadata={"help": "Scene camera vertical field of view, degrees"})
    camera_position: tuple[float, float, float] = field(
        default=(1.00, 0.0, 0.62), metadata={"help": "Scene camera position in the base frame, m"}
    )
    camera_look_at: tuple[float, float, float] = field(
        default=(0.42, 0.0, 0.0), metadata={"help": "Point the scene camera looks at, base frame, m"}
    )
    wrist_camera: bool = field(default=False, metadata={"help": "Add a camera on the hand looking along the fingers"})
    wrist_camera_width: int = field(default=320, metadata={"help": "Wrist camera image width, px"})
    wrist_camera_height: int = field(default=240, metadata={"help": "Wrist camera image height, px"})
    wrist_camera_fovy_deg: float = field(default=60.0, metadata={"help": "Wrist camera vertical field of view, degrees"})
    depth_max_m: float = field(
        default=4.0, metadata={"help": "Depth beyond this is reported as 0 (no return), m"}
    )
    shadows: bool = field(default=False, metadata={"help": "Render shadows (about 3x slower on CPU)"})
    antialiasing: bool = field(
        default=False, metadata={"help": "4x multisample anti-aliasing (about 2x slower on CPU; blends depth at edges)"}
    )
    tactile_rows: int = field(default=16, metadata={"help": "Taxel rows per fingertip pad (along the finger)"})
    tactile_cols: int = field(default=12, metadata={"help": "Taxel columns per fingertip pad (across the finger)"})
    tactile_sigma_m: float = field(
        default=0.0015, metadata={"help": "Std dev of the Gaussian that spreads one contact onto the taxels, m"}
    )
    physics_dt: float = field(default=0.002, metadata={"help": "Physics time step, s"})
    gripper_force_n: float = field(
        default=40.0, metadata={"help": "Grasp force limit used when a gripper command gives none, N"}
    )
    initial_joint_positions: tuple[float, ...] = field(
        default=(), metadata={"help": "Arm joint positions at reset, rad (the profile's joint order); [] = its ready_pose"}
    )
    initial_gripper_width: float = field(default=0.08, metadata={"help": "Gripper opening at reset, m"})
    robot: str = field(
        default=DEFAULT_ROBOT,
        metadata={"help": "Robot profile of the simulated robot (name under config/robots or a YAML path; it needs "
                  "simulation assets, core/sim/robots/<name>.py)"},
    )

    def __post_init__(self) -> None:
        if not 2 <= self.num_mugs <= 4:
            raise ValueError(f"num_mugs must be 2..4, got {self.num_mugs}")
        if self.mine_index is not None and not 0 <= self.mine_index < self.num_mugs:
            raise ValueError(f"mine_index must be in 0..{self.num_mugs - 1} or None, got {self.mine_index}")
        if self.texture_dir and not Path(self.texture_dir).expanduser().is_dir():
            raise ValueError(f"texture_dir {self.texture_dir!r} is not a directory")
        check_family(self.family)  # ValueError with the known names and a "did you mean"
        if self.texture_dir and self.family != DEFAULT_FAMILY:
            raise ValueError(f"texture_dir and family={self.family!r} both choose the mug textures: give one of them")
        if not 0.015 <= self.mug_radius <= 0.037:
            raise ValueError(f"mug_radius must be 0.015..0.037 m so the gripper can grasp it, got {self.mug_radius}")
        if not 0.05 <= self.mug_height <= 0.15:
            raise ValueError(f"mug_height must be 0.05..0.15 m, got {self.mug_height}")
        if not 0.01 <= self.mug_mass <= 1.0:
            raise ValueError(f"mug_mass must be 0.01..1 kg, got {self.mug_mass}")
        for name in ("camera", "wrist_camera"):
            w, h = getattr(self, f"{name}_width"), getattr(self, f"{name}_height")
            if not (16 <= w <= 4096 and 16 <= h <= 4096):
                raise ValueError(f"{name} size must be 16..4096 px, got {w}x{h}")
            fovy = getattr(self, f"{name}_fovy_deg")
            if not 5.0 <= fovy <= 150.0:
                raise ValueError(f"{name}_fovy_deg must be 5..150 degrees, got {fovy}")
        if len(self.camera_position) != 3 or len(self.camera_look_at) != 3:
            raise ValueError("camera_position and camera_look_at need 3 coordinates")
        if sum((a - b) ** 2 for a, b in zip(self.camera_position, self.camera_look_at, strict=True)) < 1e-6:
            raise ValueError("camera_position and camera_look_at must differ")
        if self.depth_max_m <= 0.1:
            raise ValueError(f"depth_max_m must be > 0.1 m, got {self.depth_max_m}")
        if not (2 <= self.tactile_rows <= 256 and 2 <= self.tactile_cols <= 256):
            raise ValueError(f"tactile grid must be 2..256 per side, got {self.tactile_rows}x{self.tactile_cols}")
        if not 0.0 < self.tactile_sigma_m < 0.01:
            raise ValueError(f"tactile_sigma_m must be in (0, 0.01) m, got {self.tactile_sigma_m}")
        if not 0.0002 <= self.physics_dt <= 0.01:
            raise ValueError(f"physics_dt must be 0.0002..0.01 s, got {self.physics_dt}")
        if not 0.0 < self.gripper_force_n <= MAX_GRIPPER_FORCE_N:
            raise ValueError(f"gripper_force_n must be in (0, {MAX_GRIPPER_FORCE_N}] N, got {self.gripper_force_n}")
        if self.initial_gripper_width < 0.0:
            raise ValueError(f"initial_gripper_width must be >= 0 m, got {self.initial_gripper_width}")
        self.camera_position = tuple(float(v) for v in self.camera_position)  # type: ignore[assignment]
        self.camera_look_at = tuple(float(v) for v in self.camera_look_at)  # type: ignore[assignment]
        self.initial_joint_positions = tuple(float(v) for v in self.initial_joint_positions)

    def for_profile(self, profile: RobotProfile) -> SceneConfig:
        """This config checked against the robot `profile`, the ready pose filled in when
        `initial_joint_positions` is empty.

        Raises:
            ValueError: wrong number of initial joint positions, no ready pose to fall back on,
                or an initial gripper width outside the profile's range.
        """
        q = tuple(self.initial_joint_positions) or profile.require_ready_pose()
        if len(q) != len(profile.joints):
            raise ValueError(f"initial_joint_positions needs {len(profile.joints)} values (robot '{profile.name}': "
                             f"{list(profile.joints)}), got {len(q)}")
        g = profile.gripper
        if g is not None and not g.min_width <= self.initial_gripper_width <= g.max_width:
            raise ValueError(f"initial_gripper_width must be {g.min_width}..{g.max_width} m for robot '{profile.name}', "
                             f"got {self.initial_gripper_width}")
        return replace(self, initial_joint_positions=tuple(float(v) for v in q))
