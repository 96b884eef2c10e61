"""Map the in-volume intensities of a resampled MR volume to 1..255 (uint8).

MR intensities have no absolute scale, so each volume is clipped to limits
found in its own in-volume voxels and mapped linearly to 1..255; 0 is kept for
padding outside the native image.

The limits (:func:`intensity_limits`): the lower one is a low percentile
(default 0.5 %); the upper one is the ``top_voxels``-th brightest voxel
(default 27, i.e. 27 mm3 of the 1 mm grid: a 3 mm cube), or the high
percentile (99.5 %) if that is higher (tiny volumes). Up to 26 voxels brighter
than it are clipped as possible outliers (a flow spike, a hot pixel spread by
interpolation); anything larger keeps its grading. The rule uses no contours,
so prediction applies it to new patients as it is.

Why not the 99.5th percentile, as before (``top_voxels=None`` keeps that
rule): a lesion often *is* the brightest 0.5 % of a volume (an enhancing
tumour in a fat-suppressed CE-T1 series, small bright nodes, a large field of
view), and clipping there saturated it: in one converted synthetic cohort a
median 52 % of the pixels inside each CE-T1 GTV were at >= 250, erasing the
texture and necrosis a model should read. A fence relative to the percentile
range (p99.5 + k (p99.5 - p0.5)) was tried first and rejected: a lesion four
times brighter than its surroundings lies beyond any such fence with a small k.
The price of the new rule: a large structure brighter than the lesion (a
vessel, unsuppressed fat) compresses the lesion's grey levels instead of being
clipped; ``contour_clip_shares`` measures, per structure, how many contour
voxels end at either limit (the converter writes it to the manifest and warns
above ``CLIP_WARN_SHARE``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from data_prep.types import DataPrepError

_SAMPLE_STEP = 97  # every n-th value estimates where a tail starts
_TAIL_MIN_SIZE = 20_000  # smaller arrays: np.percentile directly
_TAIL_MAX_PERCENT = 10.0  # percentiles nearer the middle: np.percentile directly

CLIP_WARN_SHARE = 0.05  # a structure with more of its voxels at 1 or 255 gets a warning


def intensity_limits(values: np.ndarray, percentiles: tuple[float, float],
                     top_voxels: int | None = None) -> tuple[float, float]:
    """(lower, upper) intensity mapped to 1 and 255 (module docstring).

    values: the in-volume voxels (1-D float, no NaN). top_voxels None = the
    plain ``percentiles`` (the rule before 2026-12-07).
    """
    lo, hi = tail_percentiles(values, percentiles)
    if top_voxels is not None:
        if top_voxels < 1:
            raise ValueError(f'intensity top_voxels must be >= 1, got {top_voxels}')
        n = min(int(top_voxels), values.size)
        hi = max(hi, float(np.partition(values, values.size - n)[values.size - n]))
    return lo, hi


def scale_intensities(image: np.ndarray, inside: np.ndarray,
                      percentiles: tuple[float, float],
                      top_voxels: int | None = None) -> np.ndarray:
    """uint8 like ``image``: inside voxels clipped to :func:`intensity_limits` of the
    inside values and mapped linearly to 1..255; outside voxels 0."""
    return scale_to_limits(image, inside, *volume_limits(image, inside, percentiles, top_voxels))


def scale_to_limits(image: np.ndarray, inside: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """uint8 like ``image``: inside voxels clipped to [lo, hi] and mapped linearly to
    1..255 (all 1 when hi <= lo); outside voxels 0."""
    values = image[inside]
    out = np.zeros(image.shape, np.uint8)
    if hi > lo:  # in place on the copy ``values``; float32 throughout
        np.clip(values, lo, hi, out=values)
        values -= lo
        values *= 254 / (hi - lo)
        values += 1
        out[inside] = np.rint(values, out=values)
    else:
        out[inside] = 1
    return out


def volume_limits(image: np.ndarray, inside: np.ndarray, percentiles: tuple[float, float],
                  top_voxels: int | None) -> tuple[float, float]:
    """:func:`intensity_limits` of the ``inside`` voxels; DataPrepError when there are none."""
    values = image[inside]
    if values.size == 0:
        raise DataPrepError('the resampled volume has no voxel inside the native image')
    return intensity_limits(values, percentiles, top_voxels)


def contour_clip_shares(scaled: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per structure: its voxel count and the shares of them at 1 (``low``) and 255 (``high``).

    scaled: the uint8 1..255 volume; masks: class -> bool array of the same shape.
    Empty masks are left out.
    """
    shares = {}
    for name, mask in masks.items():
        values = scaled[mask]
        if values.size:
            shares[name] = {'voxels': int(values.size),
                            'low': round(float(np.mean(values <= 1)), 4),
                            'high': round(float(np.mean(values >= 255)), 4)}
    return shares


def tail_percentiles(values: np.ndarray, percentiles: Sequence[float]) -> list[float]:
    """``[float(np.percentile(values, q)) for q in percentiles]``, bit for bit.

    values: 1-D float array without NaN. A percentile q within
    ``_TAIL_MAX_PERCENT`` of either end needs the order statistics k and k + 1
    (k = floor((n - 1) q / 100)); every value up to a threshold t (down to t
    for the upper tail) holds them when there are more than k + 1 such values.
    t comes from a regular sample of the values with a 2x margin; when the
    check fails (unlucky sample) the function falls back to ``np.percentile``.
    """
    n = values.size
    quick = n >= _TAIL_MIN_SIZE and all(
        min(q, 100 - q) <= _TAIL_MAX_PERCENT for q in percentiles)
    if not quick:
        return [float(v) for v in np.percentile(values, percentiles)]
    sample = np.sort(values[::_SAMPLE_STEP])
    out = []
    for q in percentiles:
        pair = _order_statistics_pair(values, sample, q)
        if pair is None:
            return [float(v) for v in np.percentile(values, percentiles)]
        out.append(pair)
    return out


def _order_statistics_pair(values: np.ndarray, sample: np.ndarray, q: float) -> float | None:
    """np.percentile(values, q) from the tail that holds it, or None if the sampled
    threshold left fewer values in the tail than needed."""
    n, m = values.size, sample.size
    virtual = (n - 1) * (q / 100)  # numpy's 'linear' virtual index, same float operations
    k = int(np.floor(virtual))
    k1 = min(k + 1, n - 1)
    if q <= 50:
        rank = k1 + 1  # values needed in the lower tail
        threshold = sample[min(m - 1, 2 * rank * m // n + 16)]
        tail = values[values <= threshold]
        if tail.size < rank:
            return None
        low, high = np.partition(tail, [k, k1])[[k, k1]]
    else:
        rank = n - k  # values needed in the upper tail, from the top down to k
        threshold = sample[max(0, m - 1 - (2 * rank * m // n + 16))]
        tail = values[values >= threshold]
        if tail.size < rank:
            return None
        first = tail.size - rank  # index of order statistic k within the tail
        low, high = np.partition(tail, [first, first + k1 - k])[[first, first + k1 - k]]
    return float(_numpy_lerp(low, high, virtual - k))


def _numpy_lerp(a: np.floating, b: np.floating, gamma: float) -> np.float64:
    """numpy's interpolation between neighbouring order statistics (numpy/lib/
    _function_base_impl.py ``_lerp``): the difference in the values' dtype, the
    weight in float64, and from the upper neighbour when the weight is >= 0.5."""
    gamma = np.float64(gamma)
    diff = b - a
    if gamma >= 0.5:
        return b - diff * (1 - gamma)
    return a + diff * gamma
