"""sim_node as a real process over DDS: sensor topics, JTC commands followed, bad commands rejected."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import WrenchStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_stack.core.contracts import SimReset, encode_sim_reset, parse_ground_truth
from vla_stack.paths import config_path
from vla_stack.ros import interfaces as itf

pytestmark = pytest.mark.ros

ARM = [f"panda_joint{i}" for i in range(1, 8)]
READY = np.array([0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398])


def trajectory(names, points, stamp_zero=True) -> JointTrajectory:
    """JointTrajectory with points [(time_from_start s, positions)]."""
    msg = JointTrajectory()
    msg.joint_names = list(names)
    for t, pos in points:
        p = JointTrajectoryPoint()
        p.positions = [float(v) for v in pos]
        p.time_from_start = Duration(sec=int(math.floor(t)), nanosec=int(round((t - math.floor(t)) * 1e9)))
        msg.points.append(p)
    return msg


def latest_arm(states: list, lock) -> np.ndarray:
    with lock:
        msg = states[-1]
    index = {n: i for i, n in enumerate(msg.name)}
    return np.array([msg.position[index[n]] for n in ARM])


def test_sim_node_topics_commands_and_rejections(start_node, ros_node):
    sim = start_node(
        "sim_node",
        param_files=[config_path("sim_node.yaml")],
        params={"camera_rate": 5.0, "segmentation_rate": 1.0, "seed": 4},
    )
    lock = ros_node.lock
    states = ros_node.subscribe("joint_states", JointState)
    colors = ros_node.subscribe(itf.COLOR_IMAGE.name, Image)
    depths = ros_node.subscribe(itf.DEPTH_IMAGE.name, Image)
    infos = ros_node.subscribe(itf.CAMERA_INFO.name, CameraInfo)
    tactile = ros_node.subscribe("tactile/left/image", Image)
    tactile_force = ros_node.subscribe("tactile/right/force", WrenchStamped)
    wrenches = ros_node.subscribe(itf.WRENCH.name, WrenchStamped)
    clocks = ros_node.subscribe("/clock", Clock)
    truth = ros_node.subscribe(itf.GROUND_TRUTH.name, String, itf.GROUND_TRUTH.sub_qos)
    streams = {"joint_states": states, "color": colors, "depth": depths, "camera_info": infos,
               "tactile image": tactile, "tactile force": tactile_force, "wrench": wrenches, "clock": clocks,
               "ground truth": truth}
    ok = ros_node.wait_until(lambda: all(len(v) >= 2 for v in streams.values()) and len(states) >= 50, timeout=45)
    missing = [k for k, v in streams.items() if len(v) < 2]
    assert ok, f"no messages on {missing}; node output:\n{sim.text()}"

    with lock:
        js, color, depth, info, tact, wrench, gt = states[-1], colors[-1], depths[-1], infos[-1], tactile[-1], wrenches[-1], truth[-1]
    assert list(js.name) == ARM + ["panda_finger_joint1", "panda_finger_joint2"]
    assert len(js.velocity) == 9 and len(js.effort) == 9
    assert (color.encoding, color.width, color.height) == ("rgb8", 640, 480)
    assert (depth.encoding, depth.width, depth.height) == ("32FC1", 640, 480)
    assert color.header.frame_id == depth.header.frame_id == info.header.frame_id == "camera_color_optical_frame"
    assert info.k[0] > 0 and info.k[2] == pytest.approx(319.5)
    d = np.frombuffer(depth.data, np.float32).reshape(480, 640)
    assert 0.3 < float(np.median(d)) < 3.0
    assert (tact.encoding, tact.height, tact.width) == ("32FC1", 16, 12)
    # default wrench_mode "external": contact loads only, ~0 N with nothing touched (raw would read ~9.9 N)
    assert wrench.header.frame_id == "panda_hand" and abs(wrench.wrench.force.z) < 0.5
    ground = parse_ground_truth(gt.data).to_dict()
    assert ground["seed"] == 4 and ground["mine"] in [m["name"] for m in ground["mugs"]]
    # Stamps are sim time and move forward with /clock.
    with lock:
        c0, c1 = clocks[0].clock, clocks[-1].clock
    assert (c1.sec + c1.nanosec * 1e-9) > (c0.sec + c0.nanosec * 1e-9)

    # ---- a JointTrajectory is followed ---------------------------------------------------
    pub = ros_node.publisher("arm_controller/joint_trajectory", JointTrajectory, itf.ARM_TRAJECTORY.pub_qos)
    goal = READY + np.array([0.3, 0.0, 0.0, 0.2, 0.0, 0.0, -0.3])
    mid = (READY + goal) / 2
    good = trajectory(ARM, [(0.5, mid), (1.0, goal)])
    reached = ros_node.publish_until(pub, good, lambda: np.abs(latest_arm(states, lock) - goal).max() < 5e-3,
                                     timeout=20, period=1.5)
    assert reached, f"trajectory not followed: at {latest_arm(states, lock)}, goal {goal}"

    # ---- bad commands: one log line each, sim keeps running, position kept ------------------
    bad = {
        "unknown_joint": trajectory(ARM[:6] + ["wrist_3_joint"], [(1.0, READY)]),
        "nan": trajectory(ARM, [(1.0, np.r_[READY[:6], np.nan])]),
        "length_mismatch": trajectory(ARM, [(1.0, READY[:6])]),
        "non_increasing_time": trajectory(ARM, [(1.0, READY), (1.0, READY)]),
    }
    for code, msg in bad.items():
        pub.publish(msg)
        assert sim.wait_for_output(f"[{code}]", timeout=10), f"no rejection log for {code}:\n{sim.text()}"
    n_before = len(states)
    assert ros_node.wait_until(lambda: len(states) > n_before + 50, timeout=10), "joint_states stopped"
    np.testing.assert_allclose(latest_arm(states, lock), goal, atol=5e-3)
    rejection_lines = [ln for ln in sim.output if "rejected JointTrajectory" in ln]
    assert len(rejection_lines) == len(bad), rejection_lines
    assert all("previous trajectory continues" in ln for ln in rejection_lines)

    # Bad forward-position and gripper commands are rejected too.
    pos_pub = ros_node.publisher("arm_position_controller/commands", Float64MultiArray, itf.ARM_POSITION_COMMAND.pub_qos)
    grip_pub = ros_node.publisher("gripper_controller/commands", Float64MultiArray, itf.GRIPPER_COMMAND.pub_qos)
    ros_node.publish_until(pos_pub, Float64MultiArray(data=[0.0] * 6),
                           lambda: any("[length_mismatch]" in ln and "position command" in ln for ln in sim.output),
                           timeout=10, period=0.5)
    ros_node.publish_until(grip_pub, Float64MultiArray(data=[0.5]),
                           lambda: any("[out_of_range]" in ln and "gripper command" in ln for ln in sim.output),
                           timeout=10, period=0.5)
    assert any("position command" in ln and "[length_mismatch]" in ln for ln in sim.output), sim.text()
    assert any("gripper command" in ln and "[out_of_range]" in ln for ln in sim.output), sim.text()

    # ---- a following good command still works ----------------------------------------------
    back = trajectory(ARM, [(1.0, READY)])
    assert ros_node.publish_until(pub, back, lambda: np.abs(latest_arm(states, lock) - READY).max() < 5e-3,
                                  timeout=20, period=1.5), "good command after rejections not followed"

    def width() -> float:
        with lock:
            msg = states[-1]
        return msg.position[7] + msg.position[8]

    assert ros_node.publish_until(grip_pub, Float64MultiArray(data=[0.03, 20.0]), lambda: abs(width() - 0.03) < 2e-3,
                                  timeout=15, period=1.0), f"gripper width {width():.4f}"
    assert sim.alive()

    # ---- sim/reset: the arm is teleported home, and commands still aimed at the old pose are ignored
    # for reset_command_holdoff (2 s of sim time), so they cannot drag it back before the controller
    # upstream is reset; later commands are followed again
    reset_pub = ros_node.publisher(itf.SIM_RESET.name, String, itf.SIM_RESET.pub_qos)
    assert ros_node.publish_until(pub, good, lambda: np.abs(latest_arm(states, lock) - goal).max() < 5e-3,
                                  timeout=20, period=1.5), "not at the goal before the reset"
    reset_pub.publish(String(data=encode_sim_reset(SimReset(seed=5))))
    assert sim.wait_for_output("reset at t=", timeout=10), sim.text()
    t_reset = float(next(ln for ln in sim.output if "reset at t=" in ln).split("reset at t=")[1].split()[0])
    assert ros_node.wait_until(lambda: np.abs(latest_arm(states, lock) - READY).max() < 1e-2, timeout=10)
    hold = trajectory(ARM, [(0.05, goal)])  # the old pose, streamed as a controller would
    assert ros_node.publish_until(pub, hold, lambda: np.abs(latest_arm(states, lock) - goal).max() < 5e-3,
                                  timeout=30, period=0.1), "commands after the hold-off window not followed"
    assert sim.wait_for_output("ignoring arm commands that do not start at the reset pose", timeout=5), sim.text()

    def stamp(msg) -> float:
        return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    with lock:
        after = [(stamp(m), np.array(m.position[:7])) for m in states if stamp(m) > t_reset + 0.05]
    early = [q for t, q in after if t < t_reset + 1.9]
    assert early and all(np.abs(q - READY).max() < 1e-2 for q in early), "the arm moved during the hold-off"
    assert any(np.abs(q - goal).max() < 5e-3 for t, q in after if t > t_reset + 2.0), (
        t_reset, [(round(t, 2), round(float(np.abs(q - goal).max()), 3)) for t, q in after[::50]])

    # a command that starts where the arm is ends the hold-off at once (the safety controller, reset
    # right after the scene, streams the measured pose and then moves on from it)
    reset_pub.publish(String(data=encode_sim_reset(SimReset(seed=6))))
    assert ros_node.wait_until(lambda: sum("reset at t=" in ln for ln in sim.output) >= 2, timeout=10), sim.text()
    assert ros_node.wait_until(lambda: np.abs(latest_arm(states, lock) - READY).max() < 1e-2, timeout=10)
    from_here = trajectory(ARM, [(0.02, READY), (1.0, mid)])
    assert ros_node.publish_until(pub, from_here, lambda: np.abs(latest_arm(states, lock) - mid).max() < 5e-3,
                                  timeout=20, period=1.5), "a command starting at the reset pose was not followed"
    assert sim.alive()
