"""Intensity mapping to 1..255 and its exact fast percentiles."""
from __future__ import annotations

import numpy as np
import pytest

from data_prep.intensity import (_SAMPLE_STEP, _order_statistics_pair, scale_intensities,
                                  tail_percentiles)


@pytest.mark.parametrize('shape', [(4, 50, 50), (20, 120, 120)])  # np.percentile / tail path
def test_intensity_scaling_clips_percentiles_and_keeps_padding_zero(shape):
    rng = np.random.default_rng(5)
    image = rng.uniform(0, 100, shape).astype(np.float32)
    image[0, 0, :10] = 1e6  # outliers above the 99.5th percentile
    inside = np.ones(image.shape, bool)
    inside[:, :, :5] = False
    out = scale_intensities(image, inside, (0.5, 99.5))
    assert out.dtype == np.uint8
    assert np.all(out[~inside] == 0)
    assert out[inside].min() == 1 and out[inside].max() == 255
    assert np.all(out[0, 0, 5:10] == 255)
    lo, hi = np.percentile(image[inside], [0.5, 99.5])
    expected = np.rint(1 + 254 * (np.clip(image[inside], lo, hi) - lo) / (hi - lo))
    assert np.abs(out[inside] - expected).max() <= 1  # float32 vs float64 rounding ties
    assert np.mean(out[inside] == expected) > 0.999


def test_constant_image_maps_to_one():
    out = scale_intensities(np.full((2, 3, 3), 7.0, np.float32), np.ones((2, 3, 3), bool),
                            (0.5, 99.5))
    assert np.all(out == 1)


def _cases(rng):
    """Value sets like resampled MR volumes and worse: skewed, tied, tiny tails, padding."""
    n = 60_000
    yield rng.normal(300, 80, n).astype(np.float32)
    yield rng.lognormal(5, 1, n).astype(np.float32)  # long upper tail
    yield rng.integers(0, 40, n).astype(np.float32)  # heavy ties
    yield np.concatenate([np.zeros(n // 2), rng.uniform(0, 1000, n // 2)]).astype(np.float32)
    yield np.sort(rng.uniform(-5, 5, n)).astype(np.float32)  # sorted: sample from one end
    yield rng.normal(0, 1, n)  # float64 values
    yield rng.normal(300, 80, 123_457).astype(np.float32)


@pytest.mark.parametrize('percentiles', [(0.5, 99.5), (0.0, 100.0), (1.0, 99.0), (3.7, 96.2),
                                         (10.0, 90.0), (25.0, 75.0)])
def test_tail_percentiles_equal_numpy_bit_for_bit(percentiles):
    for values in _cases(np.random.default_rng(11)):
        expected = [float(v) for v in np.percentile(values, percentiles)]
        assert tail_percentiles(values, percentiles) == expected


def test_tail_percentiles_fall_back_when_the_sample_misleads():
    # the sampled values (every 97th) are the smallest of all, so the sampled
    # threshold leaves a lower tail too small to hold the 0.5th percentile
    values = np.linspace(2000, 3000, 100_000).astype(np.float32)
    sampled = np.arange(0, values.size, _SAMPLE_STEP)
    values[sampled] = np.arange(sampled.size)
    sample = np.sort(values[::_SAMPLE_STEP])
    assert _order_statistics_pair(values, sample, 0.5) is None  # detected ...
    expected = [float(v) for v in np.percentile(values, (0.5, 99.5))]
    assert tail_percentiles(values, (0.5, 99.5)) == expected  # ... and answered exactly


def test_tail_percentiles_equal_numpy_on_random_sizes_and_percentiles():
    rng = np.random.default_rng(0)
    for _ in range(100):
        values = rng.normal(300, 80, int(rng.integers(20_000, 60_000))).astype(np.float32)
        percentiles = (float(rng.uniform(0, 9)), float(rng.uniform(91, 100)))
        expected = [float(v) for v in np.percentile(values, percentiles)]
        assert tail_percentiles(values, percentiles) == expected
