"""Offscreen RGB-D and segmentation rendering of a MuJoCo model (EGL by default).

One `CameraRenderer` owns one OpenGL context and must be used from the thread that created
it. It renders from whatever `MjData` it is given (positions must be up to date: call
`mj_kinematics` + `mj_camlight` or `mj_forward` first), so rendering from a copy of the state
never touches the physics.

Depth: MuJoCo draws with a reversed-Z buffer (`mjDEPTH_ZEROFAR`: 1 at the near plane, 0 at
the far plane); `depth = near·far / (near + z·(far − near))` turns it into metres along the
optical axis (z-depth, what a pinhole model with `CameraIntrinsics.from_fovy` projects).
"""

from __future__ import annotations

import os

import mujoco
import numpy as np


def _gl_context(width: int, height: int):
    backend = os.environ.get("MUJOCO_GL", "")
    try:
        ctx = mujoco.GLContext(width, height)
    except Exception as exc:  # noqa: BLE001 - report what to install/set, whatever the backend raised
        raise RuntimeError(
            f"cannot create an offscreen OpenGL context (MUJOCO_GL={backend!r}): {exc}. Set MUJOCO_GL=egl "
            "before importing mujoco and install the EGL/Mesa libraries (Debian/Ubuntu: libegl1 libgl1 "
            "libgles2, or libosmesa6 with MUJOCO_GL=osmesa)"
        ) from exc
    return ctx


class CameraRenderer:
    """Renders one image size from any camera of `model`.

    Args:
        model: the compiled model (its `vis.global_.offwidth/offheight` must be >= the size).
        width, height: image size, px.
        shadows: render shadows (about 3x slower on CPU rendering).
        depth_max: depth beyond this (and the background) becomes 0 = no return, m.
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int, shadows: bool = False,
                 depth_max: float = 10.0) -> None:
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError(
                f"{width}x{height} exceeds the model's offscreen buffer "
                f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}"
            )
        self.model = model
        self.width, self.height = int(width), int(height)
        self.depth_max = float(depth_max)
        self._ctx = _gl_context(self.width, self.height)
        self._ctx.make_current()
        self._con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._con)
        self._con.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=max(1000, 4 * model.ngeom))
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = bool(shadows)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._opt = mujoco.MjvOption()
        self._opt.sitegroup[:] = 0  # sensor/pad sites are not part of the picture
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.empty((self.height, self.width, 3), np.uint8)
        self._depth = np.empty((self.height, self.width), np.float32)
        extent = model.stat.extent
        self._near = float(model.vis.map.znear * extent)
        self._far = float(model.vis.map.zfar * extent)

    def _draw(self, data: mujoco.MjData, camera_id: int) -> None:
        if self._con is None:
            raise RuntimeError("renderer is closed")
        self._ctx.make_current()
        self._cam.fixedcamid = int(camera_id)
        mujoco.mjv_updateScene(self.model, data, self._opt, None, self._cam, mujoco.mjtCatBit.mjCAT_ALL.value,
                               self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._con)

    def render(self, data: mujoco.MjData, camera_id: int, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """RGB (H, W, 3) uint8 and depth (H, W) float32 m (0 = no return) from one draw.

        Row 0 is the top of the image. Returns new arrays (safe to keep).
        """
        self._draw(data, camera_id)
        mujoco.mjr_readPixels(self._rgb, self._depth if depth else None, self._rect, self._con)
        rgb = np.flipud(self._rgb).copy()
        if not depth:
            return rgb, None
        z = np.flipud(self._depth)
        near, far = np.float32(self._near), np.float32(self._far)
        metres = (near * far) / (near + z * (far - near))
        metres[(metres > self.depth_max) | ~np.isfinite(metres)] = 0.0
        return rgb, metres

    def render_segmentation(self, data: mujoco.MjData, camera_id: int, geom_labels: np.ndarray) -> np.ndarray:
        """(H, W) int32 label of the geom seen at each pixel (`geom_labels[geom_id]`; 0 = background)."""
        flags = self._scene.flags
        saved = (flags[mujoco.mjtRndFlag.mjRND_SEGMENT], flags[mujoco.mjtRndFlag.mjRND_IDCOLOR])
        flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
        flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
        try:
            self._draw(data, camera_id)
            mujoco.mjr_readPixels(self._rgb, None, self._rect, self._con)
        finally:
            flags[mujoco.mjtRndFlag.mjRND_SEGMENT], flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = saved
        img = np.flipud(self._rgb).astype(np.int64)
        segid = img[..., 0] + (img[..., 1] << 8) + (img[..., 2] << 16)  # 0 = background, else scene geom + 1
        lut = np.zeros(self._scene.ngeom + 1, np.int32)
        for i in range(self._scene.ngeom):
            g = self._scene.geoms[i]
            if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM and 0 <= g.objid < len(geom_labels):
                lut[g.segid + 1] = geom_labels[g.objid]
        segid = np.clip(segid, 0, len(lut) - 1)
        return lut[segid]

    def close(self) -> None:
        """Free the GL resources (call from the owning thread)."""
        if self._con is not None:
            self._ctx.make_current()
            self._con.free()
            self._con = None
            self._ctx.free()

    def __del__(self) -> None:  # best effort; explicit close() is preferred
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
