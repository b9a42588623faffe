"""Renders of one mug alone from several viewpoints (the "personal object" reference images).

A small studio model is built for the mug (same mesh, same texture, neutral grey backdrop,
soft lights) and rendered with cameras around it, so the references show the object's
appearance without the scene's clutter, like photos a user takes of their own cup.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from vla_stack.core.sim.mugs import MugAppearance, MugGeometry, mug_mesh
from vla_stack.core.sim.rendering import CameraRenderer
from vla_stack.core.sim.scene import look_at_quat


def render_mug_views(
    geometry: MugGeometry, appearance: MugAppearance, n: int = 5, size: int = 224, seed: int = 0,
    elevations_deg: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """`n` RGB views (size x size uint8) of a mug, around it at varying heights.

    Azimuths are spread evenly around the mug (with a small seed-dependent offset); elevations
    alternate between ~15° and ~40° (or cycle through `elevations_deg`, degrees above the
    table plane); the distance frames the whole mug with its handle.
    """
    return render_mug_views_with_masks(geometry, appearance, n, size, seed, elevations_deg, masks=False)[0]


def render_mug_views_with_masks(
    geometry: MugGeometry, appearance: MugAppearance, n: int = 5, size: int = 224, seed: int = 0,
    elevations_deg: Sequence[float] | None = None, masks: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Like `render_mug_views`, plus the exact object mask of every view.

    Returns:
        (views, masks): `n` RGB (size x size uint8) images and `n` (size x size) bool masks of
        the mug's pixels (from a segmentation render of the same views; empty list when
        `masks` is False).

    Raises:
        ValueError: n not in 1..64, size not in 16..2048 px, or an elevation outside 0..89 deg.
    """
    if not 1 <= n <= 64:
        raise ValueError(f"n must be 1..64, got {n}")
    if not 16 <= size <= 2048:
        raise ValueError(f"size must be 16..2048 px, got {size}")
    elevations = [15.0, 40.0] if elevations_deg is None else [float(e) for e in elevations_deg]
    if not elevations or any(not (0.0 <= e <= 89.0) for e in elevations):
        raise ValueError(f"elevations_deg must be non-empty and within 0..89 deg, got {elevations_deg}")
    rng = np.random.default_rng(seed)
    spec = mujoco.MjSpec()
    spec.compiler.inertiafromgeom = mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_FALSE
    spec.visual.global_.offwidth = max(size, 64)
    spec.visual.global_.offheight = max(size, 64)
    spec.visual.headlight.ambient = [0.4, 0.4, 0.4]
    spec.visual.headlight.diffuse = [0.4, 0.4, 0.4]
    spec.visual.map.znear = 0.01
    spec.add_texture(name="backdrop", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
                     builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT, rgb1=[0.9, 0.9, 0.92], rgb2=[0.7, 0.7, 0.72],
                     width=64, height=64)
    tex = spec.add_texture(name="mug_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, width=appearance.image.shape[1],
                           height=appearance.image.shape[0], nchannel=3)
    tex.data = np.ascontiguousarray(appearance.image).tobytes()
    mat = spec.add_material(name="mug_mat", specular=0.35, shininess=0.6)
    mat.textures[int(mujoco.mjtTextureRole.mjTEXROLE_RGB)] = "mug_tex"
    mesh = mug_mesh(geometry)
    m = spec.add_mesh(name="mug_mesh")
    m.uservert = mesh.vertices.ravel().tolist()
    m.userface = mesh.faces.ravel().tolist()
    m.usertexcoord = mesh.texcoords.ravel().tolist()
    m.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
    world = spec.worldbody
    world.add_geom(name="mug", type=mujoco.mjtGeom.mjGEOM_MESH, meshname="mug_mesh", material="mug_mat")
    world.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[1.0, 1.0, 0.005], pos=[0, 0, -0.005],
                   rgba=[0.78, 0.78, 0.8, 1])
    world.add_light(pos=[0.3, -0.3, 0.8], dir=[-0.3, 0.3, -0.8], diffuse=[0.5, 0.5, 0.5], castshadow=False)
    world.add_light(pos=[-0.3, 0.3, 0.6], dir=[0.3, -0.3, -0.6], diffuse=[0.25, 0.25, 0.25], castshadow=False)
    centre = np.array([geometry.handle_reach / 2, 0.0, geometry.height / 2])
    dist = 3.2 * max(geometry.height, geometry.footprint_radius * 1.6)
    offset = rng.uniform(0, 2 * np.pi)
    for i in range(n):
        az = offset + 2 * np.pi * i / n
        el = np.deg2rad(elevations[i % len(elevations)])
        pos = centre + dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        world.add_camera(name=f"view_{i}", pos=pos.tolist(), quat=look_at_quat(pos, centre).tolist(), fovy=35.0)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    renderer = CameraRenderer(model, size, size, shadows=False)
    labels = np.zeros(model.ngeom, np.int32)
    labels[model.geom("mug").id] = 1
    try:
        views = [renderer.render(data, i, depth=False)[0] for i in range(n)]
        object_masks = [renderer.render_segmentation(data, i, labels) == 1 for i in range(n)] if masks else []
        return views, object_masks
    finally:
        renderer.close()
