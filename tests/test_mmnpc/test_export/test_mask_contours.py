"""masks_to_contours_mm: contours the converter's pixel-centre rasteriser turns back
into exactly the detector's mask pixels."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from data_prep.rasterize import contours_to_mask
from data_prep.types import Volume
from mmnpc.export import masks_to_contours_mm


def _rasterise(contours, shape, origin, spacing, z) -> np.ndarray:
    """The converter's reading of the contours on the slice grid (DS-rounded like a file)."""
    grid = Volume(array=np.zeros((1, *shape), np.float32), spacing=(*spacing, 1.0),
                  origin=(*origin, z))
    if not contours:
        return np.zeros(shape, bool)
    return contours_to_mask([np.round(c, 6) for c in contours], grid)[0]


def _masks(rng: np.random.Generator):
    """Blobs, salt-and-pepper noise, a ring with an island, a diagonal pinch, border pixels."""
    for _ in range(20):
        shape = tuple(int(v) for v in rng.integers(4, 30, size=2))
        yield ndimage.gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.5, 0.56)
        yield rng.random(shape) > rng.uniform(0.3, 0.6)
    yy, xx = np.mgrid[:21, :21]
    radius = np.hypot(yy - 10, xx - 10)
    yield ((radius > 5) & (radius < 9)) | (radius < 2)
    yield np.eye(6, dtype=bool) | np.eye(6, dtype=bool)[::-1]
    yield np.ones((5, 7), bool)


def test_round_trip_is_exact():
    rng = np.random.default_rng(7)
    for mask in _masks(rng):
        origin = tuple(rng.uniform(-120, 120, size=2))
        spacing = tuple(rng.uniform(0.3, 1.2, size=2))
        z = float(rng.uniform(-60, 60))
        contours = masks_to_contours_mm(mask, origin, spacing, z)
        back = _rasterise(contours, mask.shape, origin, spacing, z)
        assert np.array_equal(back, mask), f'{(back != mask).sum()} pixels differ'


def test_points_on_pixel_edges_in_the_slice_plane():
    mask = np.zeros((12, 16), bool)
    mask[3:7, 5:12] = True
    (contour,) = masks_to_contours_mm(mask, (-40.0, 25.0), (0.5, 0.75), 17.0)
    assert np.all(contour[:, 2] == 17.0)
    u = (contour[:, 0] + 40.0) / 0.5
    v = (contour[:, 1] - 25.0) / 0.75
    # edges of columns 5..11 and rows 3..6 lie half a pixel outside their centres
    assert set(np.round(u, 9)) == {4.5, 11.5} and set(np.round(v, 9)) == {2.5, 6.5}


def test_single_pixel_is_a_square_of_its_size():
    mask = np.zeros((5, 5), bool)
    mask[2, 3] = True
    (contour,) = masks_to_contours_mm(mask, (0.0, 0.0), (0.8, 0.6), 0.0)
    assert len(contour) == 4
    x, y = contour[:, 0], contour[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert area == pytest.approx(0.8 * 0.6)
    assert contour[:, :2].mean(axis=0) == pytest.approx([3 * 0.8, 2 * 0.6])


def test_hole_gives_an_inner_contour():
    mask = np.ones((9, 9), bool)
    mask[3:6, 3:6] = False
    contours = masks_to_contours_mm(mask, (0.0, 0.0), (1.0, 1.0), 0.0)
    assert len(contours) == 2
    assert np.ptp(contours[1][:, 0]) == 3.0  # the 3 px wide hole


def test_empty_mask_and_bad_input():
    assert masks_to_contours_mm(np.zeros((8, 8), bool), (0, 0), (1, 1), 0.0) == []
    with pytest.raises(ValueError, match='2-D'):
        masks_to_contours_mm(np.zeros((2, 8, 8), bool), (0, 0), (1, 1), 0.0)
    with pytest.raises(ValueError, match='positive'):
        masks_to_contours_mm(np.ones((8, 8), bool), (0, 0), (1, 0), 0.0)
