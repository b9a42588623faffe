"""Vision-based tactile contact estimation on generated gel images (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from vla_stack.core.tactile.vision_tactile import VisionTactileConfig, VisionTactileEstimator

W, H = 320, 240


def gel_background() -> np.ndarray:
    """A DIGIT-like gel: three coloured LEDs from different sides -> smooth colour gradients."""
    u = np.linspace(0, 1, W, dtype=np.float32)[None, :]
    v = np.linspace(0, 1, H, dtype=np.float32)[:, None]
    r = 90 + 80 * u + 0 * v
    g = 80 + 70 * v + 0 * u
    b = 120 + 50 * (1 - u) * (1 - v)
    return np.stack([r, g, b], axis=-1)


BACKGROUND = gel_background()


def gel_frame(
    seed: int, contact=None, gain: float = 1.0, offset: float = 0.0, noise: float = 2.5
) -> np.ndarray:
    """One sensor frame: background, optional contact (u, v, radius px, depth grey levels), lighting, noise."""
    img = BACKGROUND.copy()
    if contact is not None:
        cu, cv, radius, depth = contact
        uu, vv = np.meshgrid(np.arange(W), np.arange(H))
        bump = depth * np.exp(-((uu - cu) ** 2 + (vv - cv) ** 2) / (2 * (radius / 2.0) ** 2))
        # indentation shades the gel: brighter towards one LED, darker towards another
        img = img + np.stack([bump, -0.6 * bump, 0.3 * bump], axis=-1)
    img = img * gain + offset
    img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def ready_estimator(**kw) -> VisionTactileEstimator:
    est = VisionTactileEstimator(VisionTactileConfig(reference_frames=5, **kw))
    for i in range(5):
        assert est.update(gel_frame(i)) is None  # collecting
    assert est.reference_ready and est.reference_progress == (5, 5)
    return est


def test_reference_is_collected_from_the_first_frames():
    est = VisionTactileEstimator(VisionTactileConfig(reference_frames=4))
    for i in range(3):
        assert est.update(gel_frame(i)) is None
        assert est.reference_progress == (i + 1, 4)
    assert est.update(gel_frame(3)) is None
    assert est.reference_ready and est.reference_restarts == 0


def test_no_contact_frames_report_no_contact():
    est = ready_estimator()
    for i in range(10, 20):
        c = est.update(gel_frame(i), stamp=float(i))
        assert not c.in_contact and c.area_fraction < 0.001 and c.centroid is None
        assert c.pressure == 0.0 and c.stamp == float(i)
        assert c.contact_mask.shape == (H, W) and c.contact_mask.dtype == np.uint8


def test_contact_area_and_centroid():
    est = ready_estimator()
    c = est.update(gel_frame(50, contact=(200, 90, 40, 50)), stamp=1.5)
    assert c.in_contact
    assert c.centroid == pytest.approx((200, 90), abs=3.0)
    # the bump exceeds the 12-level threshold within r = sigma*sqrt(2 ln(50/12)) = 20*1.69 = 34 px
    expected = np.pi * 34**2
    assert 0.6 * expected < c.area_pixels < 1.4 * expected
    assert c.area_fraction == pytest.approx(c.area_pixels / (W * H))
    assert set(np.unique(c.contact_mask)) <= {0, 255}
    assert c.contact_mask[90, 200] == 255 and c.contact_mask[10, 10] == 0
    assert 0 < c.pressure <= c.pressure_max <= 1.0 and c.load > 0


def test_harder_press_gives_larger_area_and_pressure():
    est = ready_estimator()
    results = [
        est.update(gel_frame(60 + k, contact=(150, 120, 40, depth)))
        for k, depth in enumerate((20, 40, 80, 120))
    ]
    areas = [r.area_fraction for r in results]
    pressures = [r.pressure_max for r in results]
    loads = [r.load for r in results]
    assert all(r.in_contact for r in results)
    assert areas == sorted(areas) and pressures == sorted(pressures) and loads == sorted(loads)
    assert loads[-1] > 2 * loads[0]


def test_lighting_drift_is_not_contact():
    est = ready_estimator()
    for k, (gain, offset) in enumerate(((1.15, 0.0), (0.85, 0.0), (1.0, 12.0), (1.1, -10.0))):
        c = est.update(gel_frame(70 + k, gain=gain, offset=offset))
        assert not c.in_contact, f"gain {gain} offset {offset} read as contact ({c.area_fraction:.3f})"
    # without compensation the same drift is (wrongly) contact: the compensation is what helps
    plain = ready_estimator(lighting_compensation=False)
    assert plain.update(gel_frame(80, gain=1.15)).in_contact


def test_contact_under_changed_lighting_is_still_found():
    est = ready_estimator()
    c = est.update(gel_frame(90, contact=(80, 160, 30, 60), gain=1.12, offset=-5.0))
    assert c.in_contact and c.centroid == pytest.approx((80, 160), abs=3.0)


def test_heavier_noise_stays_below_threshold():
    est = ready_estimator()
    c = est.update(gel_frame(95, noise=6.0))
    assert not c.in_contact


def test_touch_during_startup_restarts_the_reference():
    est = VisionTactileEstimator(VisionTactileConfig(reference_frames=4))
    est.update(gel_frame(0))
    est.update(gel_frame(1, contact=(160, 120, 40, 60)))  # someone touches the gel at start-up
    for i in range(2, 6):
        est.update(gel_frame(i))
    assert est.reference_restarts >= 1
    assert est.reference_ready
    assert not est.update(gel_frame(7)).in_contact  # the reference is clean: no ghost contact


def test_reset_and_set_reference():
    est = ready_estimator()
    est.reset_reference()
    assert not est.reference_ready and est.update(gel_frame(1)) is None
    est.set_reference(gel_frame(2))
    assert est.reference_ready
    assert est.update(gel_frame(3, contact=(100, 100, 30, 60))).in_contact


def test_mono_images_and_full_resolution():
    est = VisionTactileEstimator(VisionTactileConfig(reference_frames=2, process_width=0))
    mono = [gel_frame(i)[..., 0] for i in range(2)]
    for m in mono:
        est.update(m)
    c = est.update(gel_frame(5, contact=(60, 60, 30, 60))[..., 0])
    assert c.in_contact and c.intensity.shape == (H, W)


def test_bad_frames_raise_clear_errors():
    est = ready_estimator()
    with pytest.raises(ValueError, match="reference is 320x240"):
        est.update(np.zeros((120, 160, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        est.update(np.zeros((H, W, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        est.update(np.zeros((H, W, 4), np.uint8))


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"reference_frames": 0}, "reference_frames"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": 70, "pressure_full_scale": 60}, "pressure_full_scale"),
        ({"process_width": 8}, "process_width"),
        ({"min_contact_fraction": 1.0}, "min_contact_fraction"),
        ({"blur_sigma": -1}, "blur_sigma"),
    ],
)
def test_config_validation(kw, needle):
    with pytest.raises(ValueError, match=needle):
        VisionTactileConfig(**kw)
