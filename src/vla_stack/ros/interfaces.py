"""Every topic and service of the stack: default name, message/service type and QoS (topics) or
serving node (services), declared once.

Names are relative (no leading slash, except /clock which ROS fixes) so a namespace moves
the whole stack; every node exposes each name as a parameter `topics.<key>` too, and plain
ROS remapping works as usual.

QoS rules (see DESIGN.md):
- Sensor streams: publishers offer what stock drivers offer; subscribers ask for best effort,
  which matches both reliable and best-effort publishers (a reliable subscription would not
  see a best-effort camera driver).
- Commands and chunks: reliable, small depth (a lost command is worse than a late one; an old
  one is worse than none, hence the small depth).
- Configuration-like state (instructions, rewritten instruction, status): reliable and
  transient-local depth 1, so a late joiner sees the last value.

JSON carried in std_msgs/String (subtask, exclusion, selection, enrolment, sim reset, ground truth) has its
format, version, encoder and parser in `vla_stack.core.contracts`, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from builtin_interfaces.msg import Time  # noqa: F401  (re-exported for nodes)
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped, WrenchStamped
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState, LaserScan
from sensor_msgs.srv import SetCameraInfo
from std_msgs.msg import Bool, Float32MultiArray, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
"""Subscriptions to sensor streams; and publishers of images (loss acceptable, latest wins)."""

STATE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Publishers of joint_states/wrench/clock: reliable like ros2_control's broadcasters."""

COMMAND_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Commands and action chunks."""

LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Configuration-like state: the last value reaches late subscribers."""

EVENT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""User input (instructions, feedback, e-stop): every message counts."""


@dataclass(frozen=True)
class Topic:
    """One topic of the contract.

    Args:
        name: default relative name.
        msg_type: the message class.
        pub_qos: QoS publishers use.
        sub_qos: QoS subscribers use (compatible with `pub_qos` and with stock drivers).
        doc: what flows on it, with units and frames.
    """

    name: str
    msg_type: type
    pub_qos: QoSProfile
    sub_qos: QoSProfile
    doc: str


def _sensor(name: str, msg_type: type, doc: str, reliable_pub: bool = False) -> Topic:
    return Topic(name, msg_type, STATE_QOS if reliable_pub else SENSOR_QOS, SENSOR_QOS, doc)


def _reliable(name: str, msg_type: type, doc: str, latched: bool = False) -> Topic:
    qos = LATCHED_QOS if latched else COMMAND_QOS
    return Topic(name, msg_type, qos, qos, doc)


def _event(name: str, msg_type: type, doc: str) -> Topic:
    return Topic(name, msg_type, EVENT_QOS, EVENT_QOS, doc)


# --- sensors (driver or sim -> stack) --------------------------------------------------------
COLOR_IMAGE = _sensor("camera/color/image_raw", Image, "scene camera colour, rgb8")
DEPTH_IMAGE = _sensor(
    "camera/aligned_depth_to_color/image_raw", Image, "depth aligned to colour, 32FC1 m or 16UC1 mm"
)
CAMERA_INFO = _sensor("camera/color/camera_info", CameraInfo, "scene camera intrinsics", reliable_pub=True)
WRIST_COLOR_IMAGE = _sensor("wrist_camera/color/image_raw", Image, "wrist camera colour, rgb8")
WRIST_DEPTH_IMAGE = _sensor("wrist_camera/aligned_depth_to_color/image_raw", Image, "wrist depth, 32FC1 m")
WRIST_CAMERA_INFO = _sensor("wrist_camera/color/camera_info", CameraInfo, "wrist intrinsics", reliable_pub=True)
JOINT_STATES = _sensor("joint_states", JointState, "arm + gripper joints, rad / m", reliable_pub=True)
WRENCH = _sensor("wrench", WrenchStamped, "wrist force/torque in the F/T sensor frame, N / N·m", reliable_pub=True)
CLOCK = Topic("/clock", Clock, STATE_QOS, SENSOR_QOS, "simulation time (use_sim_time)")
SCAN = _sensor("scan", LaserScan, "base laser scan for the mobile base speed gate")


def tactile_image(sensor: str) -> Topic:
    """Taxel pressure image of one tactile sensor (32FC1 kPa for taxel arrays, rgb8 for vision-based)."""
    return _sensor(f"tactile/{sensor}/image", Image, "tactile image")


def tactile_force(sensor: str) -> Topic:
    """Summed contact force of one tactile pad in its pad frame (force.z normal, x/y shear), N."""
    return _sensor(f"tactile/{sensor}/force", WrenchStamped, "tactile summed force", reliable_pub=True)


def tactile_contact(sensor: str) -> Topic:
    """Contact mask of one vision-based tactile sensor: mono8, 255 = contact, same size as its image."""
    return _sensor(f"tactile/{sensor}/contact", Image, "vision tactile contact mask, mono8")


def tactile_status(sensor: str) -> Topic:
    """Contact estimate of one vision-based tactile sensor, per frame (DiagnosticArray values:
    in_contact, contact_area_fraction, contact_area_pixels, pressure, pressure_max, load (0..1,
    uncalibrated), centroid_u/centroid_v (px))."""
    return _sensor(f"tactile/{sensor}/status", DiagnosticArray, "vision tactile contact estimate", reliable_pub=True)


WRENCH_RAW = _sensor(
    "wrench_raw", WrenchStamped, "raw F/T sensor wrench before bias removal (tactile_node pass-through input)",
    reliable_pub=True,
)


# --- user -> stack ------------------------------------------------------------------------------
INSTRUCTION = _event("task/instruction", String, "natural-language task, e.g. 'bring my cup to the tray'")
FEEDBACK = _event("task/feedback", String, "interjections: stop, wait, continue, not that one, ...")
ESTOP = _event("safety/estop", Bool, "true = emergency stop (latched until safety/reset)")

# --- stack internal -----------------------------------------------------------------------------
PROMPTED_IMAGE = _sensor("grounding/prompted_image", Image, "colour image with the personal object highlighted")
GROUNDING_MASK = _sensor("grounding/mask", Image, "mono8 mask of the grounded object (255 = object)")
GROUNDING_TARGET = _reliable("grounding/target", PoseStamped, "grasp point of the grounded object")
GROUNDING_INSTRUCTION = _reliable("grounding/instruction", String, "rewritten instruction", latched=True)
GROUNDING_PLACE = _reliable(
    "grounding/place_target", PoseStamped,
    "where the grasp point of the grounded object goes when it is put down on the support named in the "
    "instruction (tray floor centre + grasp height), base frame",
    latched=True,
)
GROUNDING_ENROLL = _event(
    "grounding/enroll", String,
    'run-time enrolment, JSON {"version": 1, "name", "category", "images": [paths], "aliases": [], "overwrite": false, '
    '"not_mine": [paths]} (vla_stack.core.contracts.EnrollRequest)',
)
GROUNDING_MARKERS = _reliable("grounding/markers", MarkerArray, "rviz2 markers of the grounded object")
GROUNDING_EXCLUDE = _reliable(
    "grounding/exclude", String,
    "JSON from the planner: object instances grounding must not select for the current task, "
    '{"exclusions": [{"position": [x, y, z] m, "radius": m}], "frame_id", "object", "instruction", "stamp", '
    '"reason"}; each message replaces the previous set, an empty list clears it '
    "(vla_stack.core.contracts.ExclusionRequest)",
    latched=True,
)
GROUNDING_SELECT = _event(
    "grounding/select", String,
    "JSON: the user's choice among the candidates of grounding's last 'ambiguous' answer ('the left one', a click), "
    '{"version": 1, "selector": left|right|middle|nearest|farthest|ordinal|index|box|only|current, "index", "box": '
    '[x0, y0, x1, y1] px, "object", "generation", "stamp", "source": "user", "text", "instruction"} '
    "(vla_stack.core.contracts.SelectionRequest)",
)
PLANNER_SUBTASK = _reliable(
    "planner/subtask", String, "JSON: skill, arguments, index, status (vla_stack.core.contracts.SubtaskMessage)",
    latched=True,
)
PLANNER_LATENT = _reliable("planner/latent", Float32MultiArray, "latent the fast policy conditions on", latched=True)
ACTION_CHUNK = _reliable(
    "action_expert/chunk", JointTrajectory, "policy action chunk; header.stamp = observation time"
)
TWIST_CMD = _event("safety/twist_cmd", TwistStamped, "servo-style Cartesian velocity command (teleop)")
JOINT_JOG = _event("safety/joint_jog", JointState, "joint velocity jog command (teleop)")
CMD_VEL_IN = _reliable("cmd_vel_in", Twist, "base velocity request into the safety gate")
CMD_VEL = _reliable("cmd_vel", Twist, "limited base velocity out of the safety gate")
SAFETY_MARKERS = _reliable("safety/markers", MarkerArray, "workspace boxes for rviz2", latched=True)

# --- stack -> ros2_control (defaults; the controller name is a parameter) -------------------
ARM_TRAJECTORY = _reliable(
    "arm_controller/joint_trajectory", JointTrajectory, "joint_trajectory_controller command topic"
)
ARM_POSITION_COMMAND = _reliable(
    "arm_position_controller/commands", Float64MultiArray, "forward position controller command, rad"
)
GRIPPER_COMMAND = _reliable(
    "gripper_controller/commands", Float64MultiArray,
    "gripper command: [opening width m] or [opening width m, max force N]",
)

# --- status -----------------------------------------------------------------------------------
DIAGNOSTICS = _reliable("diagnostics", DiagnosticArray, "aggregated diagnostics")


def status(node: str) -> Topic:
    """`<node>/status` DiagnosticArray of one node."""
    return _reliable(f"{node}/status", DiagnosticArray, f"{node} status")


# --- evaluation only (never subscribed by a stack node; test/ros/test_ground_truth_isolation.py) --
GROUND_TRUTH = _reliable(
    "sim/ground_truth", String, "JSON: object poses, which mug is 'mine' (vla_stack.core.contracts.GroundTruth)",
    latched=True,
)
GROUND_TRUTH_MASK = _sensor("sim/ground_truth/segmentation", Image, "mono8/16UC1 instance ids of scene objects")
GROUND_TRUTH_TOPICS = (GROUND_TRUTH.name, GROUND_TRUTH_MASK.name)
SIM_RESET = _event(
    "sim/reset", String,
    'simulator only: JSON {"version": 1, "seed": int, "num_mugs": int (optional)} -> new scene, robot at home, clock '
    "keeps running (vla_stack.core.contracts.SimReset)",
)


# --- services the stack offers ------------------------------------------------------------------
@dataclass(frozen=True)
class Service:
    """One service of the contract; the serving node creates it from this declaration.

    Args:
        name: default name: relative ("safety/reset"), or private to the serving node ("~/reset",
            which ROS expands to "<namespace>/<node name>/reset").
        srv_type: the service class.
        server: the node (default name) that serves it.
        doc: what a call does.
    """

    name: str
    srv_type: type
    server: str
    doc: str

    def path(self) -> str:
        """The relative name a client calls when the server runs under its default node name."""
        return f"{self.server}/{self.name[2:]}" if self.name.startswith("~/") else self.name


SAFETY_RESET = Service(
    "safety/reset", Trigger, "safety_controller",
    "release a latched e-stop or fault once its cause is gone; drops queued action chunks (e-stop itself is the "
    "safety/estop topic)",
)
PLANNER_RESET = Service("~/reset", Trigger, "planner_node", "forget the task, plan, memory and exclusions (new episode)")
PLANNER_CONFIRM_RESUME = Service(
    "~/confirm_resume", Trigger, "planner_node",
    "start the task saved by this bring-up before a planner restart (held until confirmed; see resume_autostart)")
GROUNDING_RESET = Service(
    "~/reset", Trigger, "grounding_node", "forget instruction, tracks, exclusions and place; reload the memory")
GROUNDING_RELOAD_MEMORY = Service(
    "~/reload_memory", Trigger, "grounding_node", "re-read the personal-object memory from disk")
ACTION_EXPERT_RESET = Service(
    "~/reset", Trigger, "action_expert", "drop chunks and restart timing and the sampler (new episode)")
TACTILE_RESET_REFERENCE = Service(
    "~/reset_reference", Trigger, "tactile_node", "vision-based tactile: take the current image as the no-contact reference")
TACTILE_REZERO = Service(
    "~/rezero", Trigger, "tactile_node", "F/T pass-through: take the current raw wrench as the bias (nothing touching)")
SET_CAMERA_INFO = Service(
    "set_camera_info", SetCameraInfo, "camera_node",
    "store a calibration (served next to the camera_info topic: <camera_info namespace>/set_camera_info)",
)
SERVICES = (SAFETY_RESET, PLANNER_RESET, PLANNER_CONFIRM_RESUME, GROUNDING_RESET, GROUNDING_RELOAD_MEMORY, ACTION_EXPERT_RESET,
            TACTILE_RESET_REFERENCE, TACTILE_REZERO, SET_CAMERA_INFO)
"""Every service of the stack (sim/reset is a topic: SIM_RESET)."""
