"""Workspace guard: chosen frame origins (TCP first) must stay inside an allowed box and
outside keep-out boxes, all axis-aligned in the robot base frame.

`violation(q)` is 0 when every checked frame origin is inside the allowed box shrunk by
`margin` and outside every keep-out box grown by `margin`; otherwise it is the largest
distance (m) by which a frame is outside/inside. The controller uses it as a
never-increase rule: a motion is admissible when it does not make the violation worse
(strictly: 0 stays 0), which also lets a robot that starts outside move back in.

Why the margin: the controller checks the stop trajectory at samples no more than
`check_step` (0.01 rad) apart on any joint. The box is convex, so between two samples inside
the shrunk box a frame can only leave it by deviating from the straight chord between them;
for such short steps that deviation is well below a millimetre (the frames move ~1 cm
between samples), which the margin (default 1 cm) covers with room to spare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in the robot base frame.

    Args:
        lower: (3,) minimum corner x, y, z, m.
        upper: (3,) maximum corner, m.
        name: label for logs and markers.
    """

    lower: np.ndarray
    upper: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        lo = np.array(self.lower, dtype=np.float64).reshape(-1)
        hi = np.array(self.upper, dtype=np.float64).reshape(-1)
        if lo.shape != (3,) or hi.shape != (3,):
            raise ValueError(f"box '{self.name}' corners need 3 values each, got {lo.shape}, {hi.shape}")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))) or np.any(lo >= hi):
            raise ValueError(f"box '{self.name}' needs finite corners with lower < upper, got {lo} .. {hi}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @property
    def center(self) -> np.ndarray:
        """(3,) centre, m."""
        return 0.5 * (self.lower + self.upper)

    @property
    def size(self) -> np.ndarray:
        """(3,) edge lengths, m."""
        return self.upper - self.lower

    def outside_distance(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(k,) distance of each point (k, 3) outside the box shrunk by `margin` (0 inside), m."""
        d = np.maximum(np.maximum(self.lower + margin - points, points - (self.upper - margin)), 0.0)
        return np.sqrt(np.sum(d * d, axis=-1))

    def penetration(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(k,) depth of each point inside the box grown by `margin` (0 outside), m."""
        depth = np.minimum(points - (self.lower - margin), (self.upper + margin) - points)
        return np.maximum(np.min(depth, axis=-1), 0.0)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(k,) True where a point (k, 3) is inside the closed box."""
        return np.all((points >= self.lower) & (points <= self.upper), axis=-1)

    @classmethod
    def from_flat(cls, values: Sequence[float], prefix: str = "box") -> list[Box]:
        """Boxes from a flat list [xmin, ymin, zmin, xmax, ymax, zmax, ...] (ROS parameters have no nested lists)."""
        vals = list(values)
        if len(vals) % 6:
            raise ValueError(f"{prefix} list needs 6 numbers per box (xmin ymin zmin xmax ymax zmax), got {len(vals)}")
        return [cls(vals[i : i + 3], vals[i + 3 : i + 6], f"{prefix}{i // 6}") for i in range(0, len(vals), 6)]


@dataclass(frozen=True)
class WorkspaceViolation:
    """Where the workspace is violated: `frame` at `point` (m, base frame), `distance` m, `box` name."""

    frame: str
    point: np.ndarray
    distance: float
    box: str

    def describe(self) -> str:
        """One line for the operator."""
        x, y, z = self.point
        where = "outside the workspace" if self.box == "workspace" else f"inside keep-out box '{self.box}'"
        return f"{self.frame} at ({x:.3f}, {y:.3f}, {z:.3f}) m would be {where} by {self.distance * 1000:.0f} mm"


class WorkspaceGuard:
    """Checks frame origins of a `RobotModel` against an allowed box and keep-out boxes.

    Args:
        robot: `vla_stack.core.kinematics.robot_model.RobotModel` (this guard owns it: not shared
            across threads).
        frames: frame names whose origins are checked (TCP first).
        allowed: the workspace box.
        keep_out: boxes no checked frame may enter.
        margin: safety margin, m (see module docstring).
    """

    def __init__(
        self, robot, frames: Sequence[str], allowed: Box, keep_out: Sequence[Box] = (), margin: float = 0.01
    ) -> None:
        import pinocchio as pin

        if margin < 0:
            raise ValueError(f"workspace margin must be >= 0, got {margin}")
        if not frames:
            raise ValueError("the workspace guard needs at least one frame to check")
        if np.any(allowed.size <= 2 * margin):
            raise ValueError(f"workspace box {allowed.lower}..{allowed.upper} is smaller than twice the margin {margin}")
        self._pin = pin
        self.robot = robot
        self.frames = tuple(frames)
        self._ids = [robot.frame_id(f) for f in self.frames]
        self.allowed = Box(allowed.lower, allowed.upper, "workspace")
        self.keep_out = tuple(keep_out)
        self.margin = float(margin)
        self._inner = (self.allowed.lower + self.margin, self.allowed.upper - self.margin)
        self._outer = [(b.lower - self.margin, b.upper + self.margin) for b in self.keep_out]

    def positions(self, q: np.ndarray) -> np.ndarray:
        """(k, 3) origins of the checked frames at joint positions `q`, m, base frame."""
        pin = self._pin
        model, data = self.robot.model, self.robot.data
        pin.forwardKinematics(model, data, self.robot.full_configuration(q))
        out = np.empty((len(self._ids), 3))
        for k, fid in enumerate(self._ids):
            out[k] = pin.updateFramePlacement(model, data, fid).translation
        return out

    def violation_of_points(self, points: np.ndarray) -> float:
        """Worst violation (m) of frame origins `points` (k, 3); 0 when all are fine."""
        lo, hi = self._inner
        worst = 0.0
        if (points < lo).any() or (points > hi).any():  # fast path: inside costs two comparisons
            worst = float(np.max(self.allowed.outside_distance(points, self.margin)))
        for box, (klo, khi) in zip(self.keep_out, self._outer, strict=True):
            if ((points > klo) & (points < khi)).all(axis=1).any():
                worst = max(worst, float(np.max(box.penetration(points, self.margin))))
        return worst

    def violation(self, q: np.ndarray) -> float:
        """Worst violation (m) at joint positions `q`; 0 when all checked frames are fine."""
        return self.violation_of_points(self.positions(q))

    def explain(self, q: np.ndarray) -> WorkspaceViolation | None:
        """The worst violating frame at `q` (for messages), or None."""
        pts = self.positions(q)
        best: WorkspaceViolation | None = None
        out = self.allowed.outside_distance(pts, self.margin)
        k = int(np.argmax(out))
        if out[k] > 0:
            best = WorkspaceViolation(self.frames[k], pts[k], float(out[k]), "workspace")
        for box in self.keep_out:
            pen = box.penetration(pts, self.margin)
            k = int(np.argmax(pen))
            if pen[k] > 0 and (best is None or pen[k] > best.distance):
                best = WorkspaceViolation(self.frames[k], pts[k], float(pen[k]), box.name)
        return best
