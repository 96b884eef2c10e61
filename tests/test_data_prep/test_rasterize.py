"""Contour -> mask with the pixel-centre rule, nested holes, merged overlaps, off-plane checks."""
import numpy as np
import pytest

from data_prep.rasterize import class_masks, contours_to_mask, polygon_mask
from data_prep.rtstruct import StructureSet
from data_prep.types import DataPrepError, Volume


def _grid(shape=(3, 10, 12), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0)):
    return Volume(array=np.zeros(shape, np.float32), spacing=spacing, origin=origin)


def _rect(i0, j0, i1, j1, z, grid=None):
    """Rectangle with corners at continuous pixel coords (i, j), as LPS points."""
    grid = grid or _grid()
    ij = np.array([[i0, j0], [i1, j0], [i1, j1], [i0, j1]], float)
    k = (z - grid.origin[2]) / grid.spacing[2]
    return grid.index_to_lps(np.column_stack([ij, np.full(4, k)]))


def test_square_through_pixel_edges_covers_exactly_the_enclosed_pixels():
    mask = contours_to_mask([_rect(1.5, 1.5, 5.5, 4.5, z=2.0)], _grid())
    expected = np.zeros((3, 10, 12), bool)
    expected[1, 2:5, 2:6] = True  # rows j = 2..4, columns i = 2..5
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize('reverse', [False, True])
def test_square_through_pixel_centres_keeps_its_area(reverse):
    """Centres on the boundary count on the low-i/low-j edges only: area 3 x 3 = 9 px."""
    contour = _rect(2, 2, 5, 5, z=4.0)
    mask = contours_to_mask([contour[::-1] if reverse else contour], _grid())
    expected = np.zeros((3, 10, 12), bool)
    expected[2, 2:5, 2:5] = True
    np.testing.assert_array_equal(mask, expected)


def test_inner_contour_is_a_hole_and_disjoint_contours_add():
    grid = _grid(shape=(1, 20, 20))
    outer, inner = _rect(0.5, 0.5, 8.5, 8.5, 0.0, grid), _rect(2.5, 2.5, 5.5, 5.5, 0.0, grid)
    other = _rect(10.5, 10.5, 12.5, 13.5, 0.0, grid)
    mask = contours_to_mask([outer, inner, other], grid)
    assert mask.sum() == 8 * 8 - 3 * 3 + 2 * 3
    assert not mask[0, 3:6, 3:6].any() and mask[0, 1, 1]


def test_non_unit_spacing_and_offset_origin_in_mm():
    grid = _grid(shape=(2, 40, 30), spacing=(0.5, 0.8, 3.0), origin=(-10.0, 20.0, 5.0))
    # x from -8.25 to -6.25 mm -> i centres 4..7 (x = -8, -7.5, -7, -6.5)
    # y from 21.2 to 23.6 mm -> j centres 2..4 (y = 21.6, 22.4, 23.2); z = 8 -> k = 1
    contour = np.array([[-8.25, 21.2, 8.0], [-6.25, 21.2, 8.0], [-6.25, 23.6, 8.0],
                        [-8.25, 23.6, 8.0]])
    mask = contours_to_mask([contour], grid)
    assert np.argwhere(mask).min(axis=0).tolist() == [1, 2, 4]
    assert np.argwhere(mask).max(axis=0).tolist() == [1, 4, 7]
    assert mask.sum() == 3 * 4


def test_circle_area_matches_the_polygon_not_an_enlarged_outline():
    """cv2.fillPoly-style filling would add ~ half a pixel all round (+5 % here)."""
    t = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = 20.0
    ij = np.column_stack([50.3 + r * np.cos(t), 49.8 + r * np.sin(t)])
    area = polygon_mask(ij, (100, 100)).sum()
    polygon_area = 0.5 * 360 * r * r * np.sin(2 * np.pi / 360)
    assert abs(area - polygon_area) / polygon_area < 0.01


def test_contour_is_assigned_to_the_nearest_slice_with_a_warning():
    grid = _grid()  # slices at z = 0, 2, 4 mm
    warnings = []
    mask = contours_to_mask([_rect(1.5, 1.5, 3.5, 3.5, z=2.8)], grid, context='P1',
                            warnings_out=warnings)  # 0.4 slice spacing off
    assert mask[1].sum() == 4 and mask.sum() == 4
    assert warnings == ['P1: 1 contour(s) lie more than 0.05 slice spacing off their slice '
                        '(slices [1]); drawn on another series?']


@pytest.mark.parametrize('z', [-1.2, 5.2, 9.0])
def test_contour_outside_the_stack_raises(z):
    with pytest.raises(DataPrepError, match='P7, RS.dcm'):
        contours_to_mask([_rect(1.5, 1.5, 3.5, 3.5, z=z)], _grid(), context='P7, RS.dcm')


def test_tilted_contour_raises():
    contour = _rect(1.5, 1.5, 3.5, 3.5, z=2.0)
    contour[2, 2] += 1.5  # one point 0.75 slice spacings off the plane
    with pytest.raises(DataPrepError, match='off the nearest image slice'):
        contours_to_mask([contour], _grid())


def test_points_outside_the_image_are_dropped_with_a_warning():
    grid = _grid()
    warnings = []
    mask = contours_to_mask([_rect(-3.5, 7.5, 4.5, 12.5, z=0.0)], grid, context='ctx',
                            warnings_out=warnings)
    assert mask.sum() == 5 * 2  # i = 0..4, j = 8..9
    assert len(warnings) == 1 and 'outside the image' in warnings[0]
    assert contours_to_mask([_rect(1.5, 1.5, 3.5, 3.5, 0.0)], grid, warnings_out=warnings).any()
    assert len(warnings) == 1


def test_rois_of_one_class_are_or_ed_not_xor_ed():
    grid = _grid()
    a, b = _rect(1.5, 1.5, 5.5, 5.5, 0.0), _rect(3.5, 3.5, 7.5, 7.5, 0.0)
    structure = StructureSet(rois={'GTVln': {'GTVnd_L': [a], 'GTVnd_R': [b]}})
    masks = class_masks(structure, grid)
    assert masks['GTVln'].sum() == 16 + 16 - 4
    assert contours_to_mask([a, b], grid).sum() == 16 + 16 - 4  # one ROI: merged as well


def test_duplicated_contour_is_merged_not_cancelled_with_a_warning():
    grid = _grid()
    a = _rect(1.5, 1.5, 5.5, 5.5, 2.0)
    warnings = []
    mask = contours_to_mask([a, a.copy()], grid, context='patient P3, RTSTRUCT RS.dcm, ROI \'GTV\'',
                            warnings_out=warnings)
    assert mask.sum() == 16 and mask[1].sum() == 16  # even-odd would give nothing
    assert warnings == ["patient P3, RTSTRUCT RS.dcm, ROI 'GTV': overlapping or duplicated "
                        'contours merged (union), not cancelled by the even-odd rule, on '
                        'slice(s) [1]']


def test_partially_overlapping_contours_give_their_union():
    grid = _grid(shape=(1, 20, 20))
    a, b = _rect(1.5, 1.5, 9.5, 9.5, 0.0, grid), _rect(5.5, 5.5, 13.5, 12.5, 0.0, grid)
    c = _rect(8.5, 0.5, 11.5, 3.5, 0.0, grid)  # overlaps a's corner (column 9, rows 2-3)
    mask = contours_to_mask([a, b, c], grid)
    expected = np.zeros((1, 20, 20), bool)
    expected[0, 2:10, 2:10] = expected[0, 6:13, 6:14] = expected[0, 1:4, 9:12] = True
    np.testing.assert_array_equal(mask, expected)


def test_hole_in_two_overlapping_outlines_and_island_in_the_hole():
    """Nesting decides: the hole lies inside both overlapping outlines (depth 1, cut out);
    the island inside the hole (depth 2) is added back; a duplicate of the hole stays a hole."""
    grid = _grid(shape=(1, 24, 24))
    a, b = _rect(0.5, 0.5, 14.5, 14.5, 0.0, grid), _rect(4.5, 4.5, 18.5, 18.5, 0.0, grid)
    hole, island = _rect(5.5, 5.5, 12.5, 12.5, 0.0, grid), _rect(7.5, 7.5, 9.5, 9.5, 0.0, grid)
    warnings = []
    mask = contours_to_mask([hole, island, a, b, hole.copy()], grid, context='c',
                            warnings_out=warnings)
    expected = np.zeros((1, 24, 24), bool)
    expected[0, 1:15, 1:15] = expected[0, 5:19, 5:19] = True
    expected[0, 6:13, 6:13] = False
    expected[0, 8:10, 8:10] = True
    np.testing.assert_array_equal(mask, expected)
    assert len(warnings) == 1 and 'slice(s) [0]' in warnings[0]


def test_nested_contours_sharing_vertices_still_make_a_hole():
    """A hole whose outline touches the outer one (pixel-edge outlines of a mask do)."""
    grid = _grid(shape=(1, 12, 12))
    outer = _rect(0.5, 0.5, 6.5, 6.5, 0.0, grid)
    hole = _rect(0.5, 0.5, 3.5, 3.5, 0.0, grid)  # shares a corner and two edges
    warnings = []
    mask = contours_to_mask([outer, hole], grid, warnings_out=warnings, context='c')
    assert mask.sum() == 36 - 9 and not mask[0, 1:4, 1:4].any()
    assert warnings == []
