"""Simulated taxel-array tactile pads: MuJoCo contact forces spread onto a pressure grid.

Pad frame (a site on the fingertip's contact surface): x across the finger, y along the
finger towards the hand (row 0 of the grid is at the fingertip), z into the pad. The force of
each contact on the pad geom is expressed in this frame; its normal part (z, compressive > 0)
is spread onto the taxels with a normalised Gaussian around the contact point, so the grid
integrates to the normal force: sum(pressure · taxel_area) = F_z (for contacts on the pad).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from vla_stack.core.types import TactileReading


@dataclass(frozen=True)
class TactilePadSpec:
    """Geometry of one pad.

    Args:
        name: pad name ("left", "right").
        geom_id: MuJoCo id of the pad's box geom.
        site_id: MuJoCo id of the pad frame site.
        half_width: half size along pad x (across the finger), m.
        half_length: half size along pad y (along the finger), m.
        rows, cols: taxel grid (rows along y, cols along x).
        sigma: std dev of the spreading Gaussian, m.
        frame_id: frame name reported in readings.
    """

    name: str
    geom_id: int
    site_id: int
    half_width: float
    half_length: float
    rows: int
    cols: int
    sigma: float
    frame_id: str

    @property
    def taxel_area(self) -> float:
        """Area of one taxel, m²."""
        return (2 * self.half_width / self.cols) * (2 * self.half_length / self.rows)

    def taxel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(cols,) x and (rows,) y taxel centres in the pad frame, m."""
        xs = (np.arange(self.cols) + 0.5) / self.cols * 2 * self.half_width - self.half_width
        ys = (np.arange(self.rows) + 0.5) / self.rows * 2 * self.half_length - self.half_length
        return xs, ys


_CONTACT_AREA_THRESHOLD_KPA = 1.0
"""A taxel counts as "in contact" above this pressure, kPa."""


def read_pad(model: mujoco.MjModel, data: mujoco.MjData, pad: TactilePadSpec) -> TactileReading:
    """Tactile reading of `pad` from the contacts in `data` (after mj_forward/mj_step).

    Returns:
        TactileReading: pressure (rows, cols) float32 kPa; force (3,) N in the pad frame
        (x, y shear; z normal, > 0 pressing into the pad); contact_area m²; stamp = data.time.
    """
    xs, ys = pad.taxel_centres()
    pressure = np.zeros((pad.rows, pad.cols), np.float64)
    total = np.zeros(3)
    rot = data.site_xmat[pad.site_id].reshape(3, 3)  # pad axes (columns) in world
    origin = data.site_xpos[pad.site_id]
    f6 = np.zeros(6)
    for i in range(data.ncon):
        con = data.contact[i]
        if con.geom1 != pad.geom_id and con.geom2 != pad.geom_id:
            continue
        if con.efc_address < 0:  # excluded / inactive contact
            continue
        mujoco.mj_contactForce(model, data, i, f6)
        frame = con.frame.reshape(3, 3)  # rows: normal (geom1 -> geom2), tangent1, tangent2
        f_on_geom2 = frame.T @ f6[:3]
        f_world = f_on_geom2 if con.geom2 == pad.geom_id else -f_on_geom2
        f_pad = rot.T @ f_world
        total += f_pad
        if f_pad[2] <= 0.0:
            continue
        p = rot.T @ (con.pos - origin)
        if abs(p[0]) > pad.half_width + 2 * pad.sigma or abs(p[1]) > pad.half_length + 2 * pad.sigma:
            continue  # contact on the pad's side, off the grid: counted in the force, not in the image
        gx = np.exp(-0.5 * ((xs - p[0]) / pad.sigma) ** 2)
        gy = np.exp(-0.5 * ((ys - p[1]) / pad.sigma) ** 2)
        kernel = np.outer(gy, gx)
        s = kernel.sum()
        pressure += kernel * (f_pad[2] / (s * pad.taxel_area))
    pressure_kpa = (pressure / 1000.0).astype(np.float32)
    area = float(np.count_nonzero(pressure_kpa > _CONTACT_AREA_THRESHOLD_KPA) * pad.taxel_area)
    return TactileReading(pressure_kpa, total, area, stamp=float(data.time), frame_id=pad.frame_id)
