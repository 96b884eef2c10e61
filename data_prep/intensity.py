"""Map the in-volume intensities of a resampled MR volume to 1..255 (uint8).

MR intensities have no absolute scale, so each volume is clipped to
percentiles of its own in-volume voxels (default 0.5 and 99.5 %) and mapped
linearly to 1..255; 0 is kept for padding outside the native image.

The percentiles are exactly ``np.percentile``'s (method 'linear'), found
faster: ``np.percentile`` partitions all ~4.5 M values of a volume around
both order statistics, while a percentile this close to either end only
needs the few % of values in that tail (see :func:`tail_percentiles`). This
was 15 % of the converter's time (benchmarks/README.md, section 1).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from data_prep.types import DataPrepError

_SAMPLE_STEP = 97  # every n-th value estimates where a tail starts
_TAIL_MIN_SIZE = 20_000  # smaller arrays: np.percentile directly
_TAIL_MAX_PERCENT = 10.0  # percentiles nearer the middle: np.percentile directly


def scale_intensities(image: np.ndarray, inside: np.ndarray,
                      percentiles: tuple[float, float]) -> np.ndarray:
    """uint8 like ``image``: inside voxels clipped to the ``percentiles`` (%) of the
    inside values and mapped linearly to 1..255; outside voxels 0."""
    values = image[inside]
    if values.size == 0:
        raise DataPrepError('the resampled volume has no voxel inside the native image')
    lo, hi = tail_percentiles(values, percentiles)
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
