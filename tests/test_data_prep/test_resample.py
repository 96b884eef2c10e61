"""Geometry of the native -> 1 mm -> 512 px resampling, in patient millimetres.

The invariant: output pixel (u, v) of a slice lies at LPS
(origin_mm + (u, v) * spacing_mm, z_mm); whatever the native orientation, a
structure placed at a known LPS position comes back there.
"""
import numpy as np
import pytest

from data_prep.options import PrepOptions
from data_prep.resample import canonical_grid, resample_to_slices
from data_prep.types import Volume

X, Y, Z = np.eye(3)


def _rotation(axis, degrees):
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [n for n in range(3) if n != axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


# name -> (direction columns i, j, k; spacing (i, j, k) mm; shape (nk, nj, ni))
ORIENTATIONS = {
    'axial': (np.column_stack([X, Y, Z]), (2.0, 2.0, 3.0), (16, 40, 40)),
    # IOP (1, 0, 0, 0, -1, 0): rows run anterior, normal -z
    'flipped_rows': (np.column_stack([X, -Y, -Z]), (2.0, 2.0, 3.0), (16, 40, 40)),
    'reversed_slices': (np.column_stack([X, Y, -Z]), (2.0, 2.0, 3.0), (16, 40, 40)),
    'non_square_anisotropic': (np.column_stack([X, Y, Z]), (2.0, 2.5, 4.0), (12, 30, 44)),
    'coronal': (np.column_stack([X, -Z, Y]), (2.0, 2.0, 3.0), (18, 30, 40)),
    'sagittal': (np.column_stack([Y, -Z, -X]), (2.0, 2.0, 3.0), (26, 30, 36)),
    'oblique': (_rotation(2, 15) @ _rotation(0, 10), (2.0, 2.0, 3.0), (16, 40, 40)),
}
CENTRE = np.array([7.3, -12.1, 25.4])  # LPS mm of the native volume centre


def _native_volume(name, rng):
    """Volume centred on CENTRE with random intensities; also its voxel centres (LPS)."""
    direction, spacing, shape = ORIENTATIONS[name]
    half = (np.array(shape[::-1]) - 1) / 2 * np.array(spacing)
    origin = CENTRE - direction @ half
    volume = Volume(array=rng.uniform(100, 900, shape).astype(np.float32), spacing=spacing,
                    origin=tuple(origin), direction=direction)
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in shape], indexing='ij')
    centres = volume.index_to_lps(np.column_stack([ii.ravel(), jj.ravel(), kk.ravel()]))
    return volume, centres.reshape(shape + (3,))


def _pixel_lps(prepared):
    """LPS (x, y, z) of every output pixel centre, arrays (512, 512)."""
    u = np.arange(prepared.image.shape[1])
    v = np.arange(prepared.image.shape[0])
    xs, ys = np.meshgrid(prepared.origin_mm[0] + u * prepared.spacing_mm[0],
                         prepared.origin_mm[1] + v * prepared.spacing_mm[1])
    return xs, ys, np.full_like(xs, prepared.z_mm)


def _native_index(volume, lps):
    """Native continuous (i, j, k) of an (H, W, 3) LPS pixel grid (affine in u, v)."""
    corners = volume.lps_to_index(np.stack([lps[0, 0], lps[0, 1], lps[1, 0]]))
    du, dv = corners[1] - corners[0], corners[2] - corners[0]
    v, u = np.meshgrid(np.arange(lps.shape[0]), np.arange(lps.shape[1]), indexing='ij')
    return corners[0] + u[..., None] * du + v[..., None] * dv


@pytest.mark.parametrize('name', [n for n in ORIENTATIONS if n != 'oblique'])
@pytest.mark.parametrize('axis', [0, 1, 2])
def test_half_space_boundary_lands_exactly_in_lps(name, axis):
    """A mask "LPS coordinate < t" on native voxel centres (>= 2 mm apart along that
    axis) interpolates linearly to a boundary exactly halfway between the last voxel
    centre inside and the first outside; every output pixel must agree with it.
    Five boundaries in consecutive native gaps fall at different phases of the
    output pixel grid, so a shift of a fraction of an output pixel is caught."""
    rng = np.random.default_rng(axis)
    volume, centres = _native_volume(name, rng)
    levels = np.unique(np.round(centres[..., axis], 6))
    middle = int(np.searchsorted(levels, CENTRE[axis]))
    boundaries = {f'b{n}': (levels[n - 1] + levels[n]) / 2 for n in range(middle - 2, middle + 3)}
    masks = {key: centres[..., axis] < b for key, b in boundaries.items()}
    slices = resample_to_slices(volume, masks, PrepOptions())
    # z boundary: every slice, every 4th pixel; x/y boundary: every 4th slice, every pixel
    pixel_step, slice_step = (4, 1) if axis == 2 else (1, 4)
    checked = 0
    for prepared in slices[::slice_step]:
        lps = np.stack(_pixel_lps(prepared), axis=-1)[::pixel_step, ::pixel_step]
        index = _native_index(volume, lps)
        shape_ijk = np.array(volume.array.shape[::-1])
        interior = np.all((index >= 1) & (index <= shape_ijk - 2), axis=-1)
        for key, boundary in boundaries.items():
            got = prepared.masks.get(key, np.zeros(prepared.image.shape, bool))
            got = got[::pixel_step, ::pixel_step]
            expected = lps[..., axis] < boundary
            # pixels within 1e-6 mm of the boundary are undecidable in floating point
            valid = interior & (np.abs(lps[..., axis] - boundary) > 1e-6)
            assert np.array_equal(got[valid], expected[valid]), (key, prepared.index)
            checked += valid.sum()
    assert checked > 50000


@pytest.mark.parametrize('name', list(ORIENTATIONS))
def test_ellipsoid_comes_back_at_its_place_and_size(name):
    rng = np.random.default_rng(1)
    volume, centres = _native_volume(name, rng)
    centre, semi = CENTRE + np.array([-6.0, 4.5, 3.0]), np.array([14.0, 9.0, 10.0])
    mask = (((centres - centre) / semi) ** 2).sum(axis=-1) <= 1
    slices = resample_to_slices(volume, {'GTV': mask}, PrepOptions())
    step = slices[0].spacing_mm[0]
    points = np.concatenate([np.column_stack([c[p.masks['GTV']] for c in _pixel_lps(p)])
                             for p in slices if 'GTV' in p.masks])
    # centroid within one output pixel in-plane; within 1 mm (output slice step) in z
    assert np.all(np.abs(points.mean(axis=0)[:2] - centre[:2]) <= step), points.mean(axis=0)
    assert abs(points.mean(axis=0)[2] - centre[2]) <= 1.0
    # extent within one native voxel (2-4 mm) of the true diameters
    extent = points.max(axis=0) - points.min(axis=0) + np.array([step, step, 1.0])
    assert np.all(np.abs(extent - 2 * semi) <= max(volume.spacing)), extent
    # volume within 3 % of the native voxelised ellipsoid (the sampling of a 9-14 mm
    # ellipsoid at 2-4 mm alone is up to 7 % off the true volume)
    measured = len(points) * step * step * 1.0
    assert abs(measured / (mask.sum() * np.prod(volume.spacing)) - 1) < 0.03


def test_output_pixel_geometry_follows_cv2_centre_convention():
    volume, _ = _native_volume('non_square_anisotropic', np.random.default_rng(2))
    grid = canonical_grid(volume)
    # edges: x 88 mm (44 x 2.0), y 75 mm (30 x 2.5) -> square side 88 mm
    assert grid.side_mm == 88
    assert grid.x_edge == pytest.approx(CENTRE[0] - 44)
    assert grid.y_edge == pytest.approx(CENTRE[1] - 44)
    assert grid.n_slices == 11 * 4 + 1  # slice centres 44 mm apart, 1 mm steps
    first = resample_to_slices(volume, {}, PrepOptions())[0]
    assert first.spacing_mm == pytest.approx((88 / 512, 88 / 512))
    assert first.origin_mm == pytest.approx((grid.x_edge + 44 / 512, grid.y_edge + 44 / 512))
    assert first.z_mm == pytest.approx(CENTRE[2] - 22)


def test_padding_outside_the_native_field_of_view_is_zero():
    volume, _ = _native_volume('non_square_anisotropic', np.random.default_rng(3))
    prepared = resample_to_slices(volume, {}, PrepOptions())[5]
    _, ys, _ = _pixel_lps(prepared)
    y_lo, y_hi = CENTRE[1] - 37.5, CENTRE[1] + 37.5  # native edges along y (rows)
    inside_rows = prepared.image.min(axis=1) > 0
    outside_rows = prepared.image.max(axis=1) == 0
    assert np.all(inside_rows[(ys[:, 0] > y_lo + 1) & (ys[:, 0] < y_hi - 1)])
    assert np.all(outside_rows[(ys[:, 0] < y_lo - 1) | (ys[:, 0] > y_hi + 1)])
    assert outside_rows.sum() > 50


def test_masks_absent_on_slices_without_structure_and_output_types():
    volume, centres = _native_volume('axial', np.random.default_rng(4))
    mask = np.linalg.norm(centres - CENTRE, axis=-1) < 6
    slices = resample_to_slices(volume, {'GTV': mask, 'GTVln': np.zeros_like(mask)},
                                PrepOptions())
    assert [p.index for p in slices] == list(range(len(slices)))
    assert all(p.image.dtype == np.uint8 and p.image.shape == (512, 512) for p in slices)
    assert all('GTVln' not in p.masks for p in slices)
    with_gtv = [p.z_mm for p in slices if 'GTV' in p.masks]
    assert min(with_gtv) > CENTRE[2] - 6 and max(with_gtv) < CENTRE[2] + 6
    assert all(p.masks['GTV'].dtype == bool for p in slices if 'GTV' in p.masks)
