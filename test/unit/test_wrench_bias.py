"""F/T bias removal: start-up bias, re-zero, NaN/inf and range rejection (no ROS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_stack.core.tactile.wrench_bias import (
    WrenchBiasConfig,
    WrenchBiasRemover,
    check_wrench_sample,
)
from vla_stack.core.types import Wrench

BIAS_F = np.array([1.5, -2.0, 12.0])  # N: offset drift + tool weight
BIAS_T = np.array([0.1, 0.05, -0.2])  # N·m


def sample(rng, force=(0, 0, 0), torque=(0, 0, 0), stamp=0.0, noise=0.01):
    return Wrench(
        BIAS_F + np.asarray(force, float) + rng.normal(0, noise, 3),
        BIAS_T + np.asarray(torque, float) + rng.normal(0, noise / 10, 3),
        stamp,
        "ft_sensor",
    )


def test_no_output_until_the_bias_is_complete_then_bias_removed():
    rng = np.random.default_rng(0)
    remover = WrenchBiasRemover(WrenchBiasConfig(bias_samples=20))
    for i in range(19):
        assert remover.update(sample(rng, stamp=i)).status == "collecting"
        assert remover.progress == (i + 1, 20)
    first = remover.update(sample(rng, stamp=19.0))
    assert first.status == "ok" and remover.bias_ready and not remover.collecting
    np.testing.assert_allclose(remover.bias_force, BIAS_F, atol=0.01)
    pushed = remover.update(sample(rng, force=(0, 0, -5.0), torque=(0.3, 0, 0), stamp=20.0))
    assert pushed.status == "ok"
    np.testing.assert_allclose(pushed.wrench.force, [0, 0, -5.0], atol=0.05)
    np.testing.assert_allclose(pushed.wrench.torque, [0.3, 0, 0], atol=0.01)
    assert pushed.wrench.stamp == 20.0 and pushed.wrench.frame_id == "ft_sensor"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["force", "torque"])
def test_non_finite_samples_are_rejected_with_a_reason(bad, where):
    rng = np.random.default_rng(1)
    remover = WrenchBiasRemover(WrenchBiasConfig(bias_samples=3))
    f, t = BIAS_F.copy(), BIAS_T.copy()
    (f if where == "force" else t)[1] = bad
    result = remover.update(Wrench(f, t))
    assert result.status == "rejected" and result.wrench is None
    assert f"{where}.y={bad}" in result.reason and "non-finite" in result.reason
    assert remover.rejected == 1 and remover.progress == (0, 3)  # never entered the bias
    for _ in range(3):
        remover.update(sample(rng))
    np.testing.assert_allclose(remover.bias_force, BIAS_F, atol=0.05)  # bias not poisoned
    assert remover.update(Wrench(f, t)).status == "rejected"  # also after the bias is ready
    assert remover.rejected == 2


def test_range_limits():
    remover = WrenchBiasRemover(WrenchBiasConfig(bias_samples=1, max_force=100.0, max_torque=10.0))
    result = remover.update(Wrench([0, 0, 250.0], [0, 0, 0]))
    assert result.status == "rejected" and "force.z=250" in result.reason and "100 N limit" in result.reason
    assert "torque.x" in check_wrench_sample(Wrench([0, 0, 0], [11.0, 0, 0]), 100.0, 10.0)
    assert check_wrench_sample(Wrench([0, 0, 250.0], [0, 0, 0])) == ""  # no limits by default


def test_rezero_keeps_the_old_bias_until_the_new_one_is_complete():
    rng = np.random.default_rng(2)
    remover = WrenchBiasRemover(WrenchBiasConfig(bias_samples=5))
    for _ in range(5):
        remover.update(sample(rng))
    # a tool is mounted: +3 N on z from now on
    remover.rezero(samples=4)
    assert remover.collecting and remover.progress == (0, 4)
    during = [remover.update(sample(rng, force=(0, 0, 3.0))) for _ in range(3)]
    for r in during:  # no gap: still output, with the old bias
        assert r.status == "ok"
        assert r.wrench.force[2] == pytest.approx(3.0, abs=0.05)
    done = remover.update(sample(rng, force=(0, 0, 3.0)))
    assert not remover.collecting
    assert done.wrench.force[2] == pytest.approx(0.0, abs=0.05)
    after = remover.update(sample(rng, force=(0, 0, 3.0)))
    assert after.wrench.force[2] == pytest.approx(0.0, abs=0.05)
    with pytest.raises(ValueError, match=">= 1 sample"):
        remover.rezero(0)


def test_set_bias():
    remover = WrenchBiasRemover()
    remover.set_bias(BIAS_F, BIAS_T)
    out = remover.update(Wrench(BIAS_F + [1, 0, 0], BIAS_T)).wrench
    np.testing.assert_allclose(out.force, [1, 0, 0])
    with pytest.raises(ValueError, match="finite"):
        remover.set_bias([0, 0, math.nan], [0, 0, 0])


def test_config_validation():
    with pytest.raises(ValueError, match="bias_samples"):
        WrenchBiasConfig(bias_samples=0)
    with pytest.raises(ValueError, match="max_force"):
        WrenchBiasConfig(max_force=-1)
    with pytest.raises(ValueError, match="max_torque"):
        WrenchBiasConfig(max_torque=math.nan)
