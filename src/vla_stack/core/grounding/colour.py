"""Colour that the learned metric cannot discard: per-crop colour constancy + a hue-saturation histogram.

Why this exists: the `appearance` embedder's learned metric (`metric.py`, Fisher LDA) was fitted
to make views of one mug under different lighting agree. Directions of the descriptor that move
with the light (brightness and colour histograms among them) are shrunk, so two mugs that share
shape and print and differ only in hue can score as high as my mug. This module gives a colour
channel that is compared on its own and fused with the metric's score (see
`AppearanceConfig.colour_weight` in `embedders.py`):

- `white_balance(rgb, mask, method)`: colour constancy under the diagonal (von Kries) model: the
  illuminant colour is estimated from the object's own pixels (gray-world, shades-of-gray with a
  Minkowski p-norm, or max-RGB) and divided out, with the per-channel gains clamped to
  `max_gain` (a plausible light, not "make every object grey": a plain red mug must stay red).
  The same function runs on reference views and scene crops, so both are compared under the
  same canonical light.
- `colour_histogram(rgb, mask, ...)`: the hue x saturation distribution of the object's chromatic
  pixels (soft bins) and the share of chromatic vs achromatic (grey/white/black) pixels,
  square-rooted (Hellinger). Hue and saturation do not change with the brightness of the
  light; the white balance takes out its colour. The dot product of two such vectors is a
  weighted Bhattacharyya coefficient (1 = same colours, 0 = nothing shared): `colour_similarity`.

Limit (physics, not code): under an unknown light, a uniformly coloured object and the same
object under a light of another colour look the same (a plain red mug under a cold light vs a
plain orange one under a warm light). The clamp keeps large hue differences, at the price of
only partial constancy under strongly coloured light.

Conventions: rgb (H, W, 3) uint8 or float (any positive scale) R, G, B; mask (H, W) bool.
"""

from __future__ import annotations

import numpy as np

WHITE_BALANCE_METHODS = ("none", "gray_world", "shades_of_gray", "max_rgb")
"""Illuminant estimators of `white_balance` ('none' = pixels unchanged)."""

_CLIPPED = 250.0  # 0..255 value at which a channel is treated as clipped (does not scale with the light)
_DARK = 8.0  # mean 0..255 level under which a pixel carries no colour information


def estimate_illuminant(rgb: np.ndarray, mask: np.ndarray, method: str = "shades_of_gray", p: float = 6.0) -> np.ndarray:
    """(3,) colour of the light on the object's pixels (relative scale), by `method`.

    Args:
        rgb: (H, W, 3) 0..255 (uint8 or float).
        mask: (H, W) bool, object pixels (non-empty).
        method: 'gray_world' (mean), 'shades_of_gray' (Minkowski p-norm mean; p=1 is gray-world,
            p -> inf is max-RGB) or 'max_rgb' (99th percentile per channel, robust to a few hot pixels).
        p: Minkowski norm of 'shades_of_gray' (1..20).

    Clipped pixels (any channel >= 250) and very dark ones are left out of the estimate when at
    least 16 other pixels remain.
    """
    px = np.asarray(rgb, np.float64)[np.asarray(mask, bool)]
    if px.size == 0:
        raise ValueError("illuminant estimate needs a non-empty mask")
    usable = (px.max(axis=1) < _CLIPPED) & (px.mean(axis=1) > _DARK)
    if np.count_nonzero(usable) >= 16:
        px = px[usable]
    if method == "gray_world":
        e = px.mean(axis=0)
    elif method == "shades_of_gray":
        e = np.mean(px ** p, axis=0) ** (1.0 / p)
    elif method == "max_rgb":
        e = np.percentile(px, 99.0, axis=0)
    else:
        raise ValueError(f"unknown illuminant estimator '{method}' (known: {', '.join(WHITE_BALANCE_METHODS[1:])})")
    return np.maximum(e, 1e-6)


def white_balance_gains(
    rgb: np.ndarray, mask: np.ndarray, method: str = "shades_of_gray", p: float = 6.0, max_gain: float = 2.0
) -> np.ndarray:
    """(3,) per-channel gains that map the estimated light to grey; geometric mean 1, each in
    [1/max_gain, max_gain] (so the overall brightness stays about the same). All ones for 'none'."""
    if method == "none":
        return np.ones(3)
    e = estimate_illuminant(rgb, mask, method, p)
    g = 1.0 / e
    g /= np.exp(np.mean(np.log(g)))
    return np.clip(g, 1.0 / max_gain, max_gain)


def white_balance(
    rgb: np.ndarray, mask: np.ndarray, method: str = "shades_of_gray", p: float = 6.0, max_gain: float = 2.0
) -> np.ndarray:
    """(H, W, 3) float32 crop seen under a canonical (grey) light: `rgb` times `white_balance_gains`.

    Values can exceed 255 (not clipped: the histogram is scale-invariant); the gains come from
    the `mask` pixels and apply to the whole crop.
    """
    gains = white_balance_gains(rgb, mask, method, p, max_gain)
    return (np.asarray(rgb, np.float32) * gains.astype(np.float32)).astype(np.float32)


def colour_histogram_dim(hue_bins: int, sat_bins: int) -> int:
    """Length of `colour_histogram`'s output: hue_bins * sat_bins + 1 (undetermined) + 2 (chromatic share)."""
    return hue_bins * sat_bins + 3


def colour_histogram(
    rgb: np.ndarray,
    mask: np.ndarray,
    hue_bins: int = 12,
    sat_bins: int = 3,
    min_saturation: float = 0.15,
    min_value: float = 0.12,
    hue_share: float = 0.8,
    min_chromatic: float = 0.03,
) -> np.ndarray:
    """(hue_bins * sat_bins + 3,) unit vector describing the object's colours, independent of brightness.

    Two parts, square-rooted (Hellinger) so that the dot product of two vectors is
    hue_share * BC(colour distributions) + (1 - hue_share) * BC(chromatic shares), BC being
    the Bhattacharyya coefficient (0..1):
      * the hue x saturation distribution *of the chromatic pixels* (normalised over them, not over
        the whole object: a white mug with a green print and its copy with a red print must not
        look alike just because both are mostly white). Its confidence t = f / (f + min_chromatic)
        grows with the chromatic share f; the remaining 1 - t goes to an "undetermined" bin, so
        the hue noise of a few pixels of a white or black mug counts as "no colour", not as a hue;
      * the share of chromatic vs achromatic pixels (a white mug vs a coloured one).

    Args:
        rgb: (H, W, 3) any positive scale (white-balanced float or uint8).
        mask: (H, W) bool object pixels (non-empty).
        hue_bins: bins around the hue circle; a pixel is shared linearly between its two nearest
            bin centres (a small hue shift from the light moves mass smoothly, not across a hard edge).
        sat_bins: saturation bins over [min_saturation, 1], soft in the same way.
        min_saturation: saturation (max-min)/max below which a pixel counts as achromatic.
        min_value: brightness, relative to the object's 95th-percentile brightness, below which a
            pixel counts as achromatic (hue of near-black pixels is noise). Relative, so a dimmer
            light does not move pixels between bins.
        hue_share: weight of the colour distribution against the chromatic share (0..1).
        min_chromatic: chromatic share at which the colour distribution is trusted half.

    Hue is the opponent-colour angle atan2(sqrt(3) (G - B), 2R - G - B) (the HSV hue up to a
    monotone warp), so hue and saturation do not change with the brightness of the light.
    """
    px = np.asarray(rgb, np.float64)[np.asarray(mask, bool)]
    n = len(px)
    if n == 0:
        raise ValueError("colour histogram needs a non-empty mask")
    mx = px.max(axis=1)
    mn = px.min(axis=1)
    ref = max(float(np.percentile(mx, 95.0)), 1e-6)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    chromatic = (sat >= min_saturation) & (mx >= min_value * ref)
    size = hue_bins * sat_bins
    dist = np.zeros(size)
    n_chrom = int(np.count_nonzero(chromatic))
    if n_chrom:
        r, g, b = px[chromatic, 0], px[chromatic, 1], px[chromatic, 2]
        hue = np.mod(np.arctan2(np.sqrt(3.0) * (g - b), 2.0 * r - g - b), 2.0 * np.pi)
        h_lo, h_hi, h_frac = _soft_bins(hue / (2.0 * np.pi) * hue_bins, hue_bins, circular=True)
        s_lo, s_hi, s_frac = _soft_bins((sat[chromatic] - min_saturation) / (1.0 - min_saturation) * sat_bins,
                                        sat_bins, circular=False)
        for hb, hw in ((h_lo, 1.0 - h_frac), (h_hi, h_frac)):
            for sb, sw in ((s_lo, 1.0 - s_frac), (s_hi, s_frac)):
                dist += np.bincount(hb * sat_bins + sb, weights=hw * sw, minlength=size)
        dist /= float(n_chrom)
    f = n_chrom / float(n)
    t = f / (f + min_chromatic)
    hue_part = np.append(t * dist, 1.0 - t)
    share = np.array([f, 1.0 - f])
    return np.concatenate([np.sqrt(hue_share * hue_part), np.sqrt((1.0 - hue_share) * share)])


def _soft_bins(pos: np.ndarray, bins: int, circular: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear soft binning of positions `pos` in bin units (bin k spans [k, k+1), centre k + 0.5):
    (lower bin, upper bin, weight of the upper bin). Circular wraps around; otherwise the
    outermost half bins go fully to the edge bins."""
    p = pos - 0.5
    lo = np.floor(p)
    frac = p - lo
    lo_i = lo.astype(np.int64)
    if circular:
        return np.mod(lo_i, bins), np.mod(lo_i + 1, bins), frac
    lo_c = np.clip(lo_i, 0, bins - 1)
    hi_c = np.clip(lo_i + 1, 0, bins - 1)
    return lo_c, hi_c, frac


def colour_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Colour score of two `colour_histogram` vectors, 0..1 (1 = the same colours; see `colour_histogram`)."""
    return float(np.clip(np.dot(np.asarray(a, np.float64), np.asarray(b, np.float64)), 0.0, 1.0))
