"""Contact estimation for vision-based tactile sensors (GelSight, DIGIT, GelSight Mini, ...).

These sensors are cameras looking at an illuminated elastomer gel: contact deforms the gel and
changes the shading. With no contact the image is (nearly) constant, so contact shows up as the
difference to a reference frame taken at start-up, when nothing touches the gel.

Per frame (`VisionTactileEstimator.update`):

1. the frame is shrunk to `process_width` (speed; contact blobs are large);
2. lighting compensation (optional): a per-channel gain and offset that match the frame's
   median to the reference's, so an LED drifting brighter or dimmer is not read as contact;
   the medians are robust while contact covers less than about half the gel (for larger
   contacts turn it off or re-take the reference);
3. the signed difference to the reference is Gaussian-blurred (`blur_sigma`) to suppress
   pixel noise, and its magnitude (largest channel) is compared with `threshold`;
4. the result: contact mask (at the input resolution), contact area (fraction and pixels),
   a pressure estimate (difference normalised by `pressure_full_scale`, clipped to 0..1) and
   the intensity-weighted contact centroid.

The pressure figures are uncalibrated, dimensionless 0..1 contact intensities: they rise
monotonically with indentation depth on a given sensor, but converting them to kPa or N needs
a per-sensor calibration (not done here).

The reference is the mean of the first `reference_frames` frames. A frame that differs from
the running mean like a contact would restarts the collection (something touched the gel
during start-up); `reset_reference()` re-takes it on request.

ROS-free: numpy + OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class VisionTactileConfig:
    """Parameters of the contact estimate; see the field help."""

    reference_frames: int = field(
        default=10, metadata={"help": "frames averaged into the no-contact reference at start-up"}
    )
    process_width: int = field(
        default=160, metadata={"help": "width the difference is computed at, px (0 = full resolution)"}
    )
    blur_sigma: float = field(
        default=2.0, metadata={"help": "Gaussian blur of the difference image, px at process_width"}
    )
    threshold: float = field(
        default=12.0,
        metadata={
            "help": "difference to the reference (0..255 grey levels) above which a pixel is in contact"
        },
    )
    pressure_full_scale: float = field(
        default=60.0, metadata={"help": "difference (grey levels) that counts as pressure 1.0"}
    )
    min_contact_fraction: float = field(
        default=0.002,
        metadata={"help": "contact area (fraction of the image) above which the sensor reports contact"},
    )
    lighting_compensation: bool = field(
        default=True,
        metadata={"help": "cancel global brightness/colour drift (per-channel median gain and offset)"},
    )

    def __post_init__(self) -> None:
        if self.reference_frames < 1:
            raise ValueError(f"reference_frames must be >= 1, got {self.reference_frames}")
        if self.process_width < 0 or 0 < self.process_width < 16:
            raise ValueError(f"process_width must be 0 (full) or >= 16 px, got {self.process_width}")
        if not (math.isfinite(self.blur_sigma) and self.blur_sigma >= 0):
            raise ValueError(f"blur_sigma must be >= 0 px, got {self.blur_sigma}")
        if not (0 < self.threshold < 255):
            raise ValueError(f"threshold must be in (0, 255) grey levels, got {self.threshold}")
        if not (self.pressure_full_scale > self.threshold):
            raise ValueError(
                f"pressure_full_scale ({self.pressure_full_scale}) must exceed threshold ({self.threshold})"
            )
        if not (0 <= self.min_contact_fraction < 1):
            raise ValueError(f"min_contact_fraction must be in [0, 1), got {self.min_contact_fraction}")


@dataclass(frozen=True)
class ContactEstimate:
    """Contact on one vision-based tactile sensor at one instant.

    Args:
        stamp: capture time of the frame, s.
        in_contact: contact area above `min_contact_fraction`.
        contact_mask: (H, W) uint8 at the input resolution, 255 = contact.
        area_fraction: contact area / image area, 0..1.
        area_pixels: contact area in input-resolution pixels.
        pressure: mean contact intensity over the contact area, 0..1 (uncalibrated; 0 without contact).
        pressure_max: largest contact intensity, 0..1.
        load: intensity summed over the image / image area, 0..1: grows with both area and
            depth, a proxy for normal force (uncalibrated).
        centroid: (u, v) intensity-weighted contact centre, input pixels (x right, y down),
            or None without contact.
        intensity: (h, w) float32 per-pixel intensity 0..1 at the processing resolution.
    """

    stamp: float
    in_contact: bool
    contact_mask: np.ndarray
    area_fraction: float
    area_pixels: int
    pressure: float
    pressure_max: float
    load: float
    centroid: tuple[float, float] | None
    intensity: np.ndarray


def _as_float_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"tactile image must be uint8, got {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3) or img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(
            f"tactile image must be (H, W, 3) RGB or (H, W) mono, got shape {np.asarray(image).shape}"
        )
    return img.astype(np.float32)


class VisionTactileEstimator:
    """Reference-frame contact estimation for one vision-based tactile sensor.

    Args:
        config: thresholds and sizes (VisionTactileConfig).

    Feed every frame to `update`; it returns None until the reference is complete.
    """

    def __init__(self, config: VisionTactileConfig | None = None) -> None:
        self.config = config or VisionTactileConfig()
        self.reference_restarts = 0
        """How often reference collection restarted because a frame looked like contact."""
        self._reset()

    def _reset(self) -> None:
        self._sum: np.ndarray | None = None
        self._count = 0
        self._reference: np.ndarray | None = None
        self._ref_medians: np.ndarray | None = None
        self._input_shape: tuple[int, int] | None = None

    # -- reference ----------------------------------------------------------------------
    @property
    def reference_ready(self) -> bool:
        """True once the no-contact reference is complete."""
        return self._reference is not None

    @property
    def reference_progress(self) -> tuple[int, int]:
        """(frames collected, frames needed) for the reference."""
        return (
            self.config.reference_frames if self.reference_ready else self._count,
            self.config.reference_frames,
        )

    @property
    def input_shape(self) -> tuple[int, int] | None:
        """(H, W) of the frames the reference was taken from."""
        return self._input_shape

    def reset_reference(self) -> None:
        """Forget the reference; the next `reference_frames` frames build a new one (no contact then!)."""
        self._reset()

    def set_reference(self, image: np.ndarray) -> None:
        """Use `image` ((H, W, 3) uint8 RGB or (H, W) mono) as the no-contact reference at once."""
        self._reset()
        small = self._shrink(_as_float_image(image))
        self._input_shape = (int(np.asarray(image).shape[0]), int(np.asarray(image).shape[1]))
        self._finish_reference(small)

    def _finish_reference(self, reference: np.ndarray) -> None:
        self._reference = reference
        self._ref_medians = np.median(reference.reshape(-1, reference.shape[2]), axis=0)
        self._sum, self._count = None, 0

    def _shrink(self, img: np.ndarray) -> np.ndarray:
        w = self.config.process_width
        if not w or img.shape[1] <= w:
            return img
        h = max(2, int(round(img.shape[0] * w / img.shape[1])))
        out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        return out[..., None] if out.ndim == 2 else out

    # -- per frame -----------------------------------------------------------------------
    def _difference(self, small: np.ndarray, reference: np.ndarray, medians: np.ndarray) -> np.ndarray:
        """Blurred contact difference magnitude (h, w), grey levels."""
        img = small
        if self.config.lighting_compensation:
            flat = img.reshape(-1, img.shape[2])
            gain = np.clip(medians / np.maximum(np.median(flat, axis=0), 1.0), 0.5, 2.0)
            img = img * gain
            diff = img - reference
            diff -= np.median(diff.reshape(-1, diff.shape[2]), axis=0)
        else:
            diff = img - reference
        if self.config.blur_sigma > 0:
            diff = cv2.GaussianBlur(diff, (0, 0), self.config.blur_sigma)
            if diff.ndim == 2:
                diff = diff[..., None]
        return np.abs(diff).max(axis=2)

    def update(self, image: np.ndarray, stamp: float = 0.0) -> ContactEstimate | None:
        """Process one frame.

        Args:
            image: (H, W, 3) uint8 RGB or (H, W) uint8 mono.
            stamp: capture time, s.

        Returns the contact estimate, or None while the reference is being collected.

        Raises:
            ValueError: wrong dtype/shape, or a frame size that differs from the reference's
                (call `reset_reference()` after changing the capture size).
        """
        full = _as_float_image(image)
        shape = (full.shape[0], full.shape[1])
        if self._input_shape is not None and shape != self._input_shape:
            raise ValueError(
                f"tactile image is {shape[1]}x{shape[0]} but the reference is {self._input_shape[1]}x{self._input_shape[0]}"
            )
        small = self._shrink(full)
        if self._reference is not None and small.shape[2] != self._reference.shape[2]:
            raise ValueError(
                f"tactile image has {small.shape[2]} channel(s), the reference {self._reference.shape[2]}"
            )
        if self._reference is None:
            self._collect(small, shape)
            return None
        return self._estimate(small, shape, stamp)

    def _collect(self, small: np.ndarray, shape: tuple[int, int]) -> None:
        self._input_shape = shape
        if self._sum is not None and self._count > 0:
            mean = self._sum / self._count
            medians = np.median(mean.reshape(-1, mean.shape[2]), axis=0)
            magnitude = self._difference(small, mean, medians)
            if float(np.mean(magnitude > self.config.threshold)) > self.config.min_contact_fraction:
                # the gel changed during start-up (touched?): start again from this frame
                self.reference_restarts += 1
                self._sum, self._count = None, 0
        self._sum = small.copy() if self._sum is None else self._sum + small
        self._count += 1
        if self._count >= self.config.reference_frames:
            self._finish_reference(self._sum / self._count)

    def _estimate(self, small: np.ndarray, shape: tuple[int, int], stamp: float) -> ContactEstimate:
        assert self._reference is not None and self._ref_medians is not None
        c = self.config
        magnitude = self._difference(small, self._reference, self._ref_medians)
        mask_small = magnitude > c.threshold
        intensity = np.clip(magnitude / c.pressure_full_scale, 0.0, 1.0).astype(np.float32)
        intensity[~mask_small] = 0.0
        h, w = shape
        if (mask_small.shape[0], mask_small.shape[1]) == (h, w):
            mask = mask_small.astype(np.uint8) * 255
        else:
            mask = cv2.resize(mask_small.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_NEAREST)
        area_pixels = int(np.count_nonzero(mask))
        area_fraction = area_pixels / float(h * w)
        in_contact = area_fraction > c.min_contact_fraction and area_pixels > 0
        n_small = int(np.count_nonzero(mask_small))
        pressure = float(intensity[mask_small].mean()) if n_small else 0.0
        pressure_max = float(intensity.max()) if n_small else 0.0
        load = float(intensity.mean())
        centroid = None
        if in_contact and n_small:
            total = float(intensity.sum())
            vs, us = np.nonzero(mask_small)
            weights = intensity[vs, us]
            u_small = float((us * weights).sum() / total)
            v_small = float((vs * weights).sum() / total)
            sx, sy = w / mask_small.shape[1], h / mask_small.shape[0]
            centroid = ((u_small + 0.5) * sx - 0.5, (v_small + 0.5) * sy - 0.5)
        return ContactEstimate(
            stamp=stamp,
            in_contact=bool(in_contact),
            contact_mask=mask,
            area_fraction=area_fraction,
            area_pixels=area_pixels,
            pressure=pressure if in_contact else 0.0,
            pressure_max=pressure_max if in_contact else 0.0,
            load=load,
            centroid=centroid,
            intensity=intensity,
        )
