"""A prediction's marked slices and detection centroids against reference contours (LPS mm)."""
from __future__ import annotations

import numpy as np
import pytest

from mmnpc.evaluation.detection_check import (check_prediction, contours_by_class,
                                              polygon_centroid, reference_planes)


def square(cx: float, cy: float, z: float, half: float = 5.0) -> np.ndarray:
    return np.array([[cx - half, cy - half, z], [cx + half, cy - half, z],
                     [cx + half, cy + half, z], [cx - half, cy + half, z]])


def detection(cls: str, score: float, x: float, y: float, z: float) -> dict:
    return {'class': cls, 'score': score, 'centroid_lps_mm': [x, y, z]}


def test_polygon_centroid_is_the_area_centroid_not_the_vertex_mean():
    # an L-shaped hexagon: its vertex mean differs from its area centroid
    points = np.array([[0, 0], [4, 0], [4, 1], [1, 1], [1, 4], [0, 4]], dtype=float)
    centre, area = polygon_centroid(points)
    assert area == pytest.approx(7.0)
    # two rectangles: 4x1 centred (2, 0.5) and 1x3 centred (0.5, 2.5)
    assert centre == pytest.approx([(4 * 2 + 3 * 0.5) / 7, (4 * 0.5 + 3 * 2.5) / 7])
    assert not np.allclose(centre, points.mean(axis=0))


def test_reference_planes_weight_contours_by_area():
    planes = reference_planes([square(0, 0, 3.0, half=1), square(10, 0, 3.0, half=3)])
    # areas 4 and 36: centroid at 36 * 10 / 40 = 9
    assert list(planes) == [3.0] and planes[3.0] == pytest.approx([9.0, 0.0])


def test_perfect_and_wrong_predictions():
    # GTV on planes z = 0, 3, 6 (3 mm apart) around (20, -40); a node at z = 12
    reference = {'GTV': [square(20, -40, z) for z in (0.0, 3.0, 6.0)],
                 'GTVln': [square(-30, 10, 12.0)]}
    found = {'slices': [
        {'z_mm': 0.0, 'detections': [detection('GTV', 0.9, 21, -40, 0.0)]},
        {'z_mm': 1.0, 'detections': [detection('GTV', 0.8, 20, -42, 1.0),
                                     detection('GTV', 0.3, 80, 80, 1.0)]},  # best-scoring counts
        {'z_mm': 6.0, 'detections': [detection('GTV', 0.9, 20, -40, 6.0)]},
        {'z_mm': 12.0, 'detections': [detection('GTVln', 0.7, -30, 10, 12.0)]},  # a node slice
    ]}
    check = check_prediction(found, reference)
    assert check['tolerance_mm'] == pytest.approx(1.5)
    assert check['n_reference_planes'] == 3 and check['n_marked_slices'] == 4
    assert check['slice_recall'] == pytest.approx(2 / 3)  # planes 0 and 6 (z=1 is plane 0's)
    assert check['slice_precision'] == 1.0  # the node slice lies on a GTVln plane
    assert check['centroid_distance_mm'] == {'median': pytest.approx(1.0), 'max': 2.0, 'n': 3}

    wrong = {'slices': [
        {'z_mm': 3.0, 'detections': [detection('GTV', 0.6, 20 + 24, -40, 3.0)]},  # a vessel
        {'z_mm': 30.0, 'detections': [detection('GTV', 0.6, 20, -40, 30.0)]},  # far from tumour
    ]}
    check = check_prediction(wrong, reference)
    assert check['slice_recall'] == pytest.approx(1 / 3)
    assert check['slice_precision'] == 0.5
    assert check['centroid_distance_mm']['median'] == pytest.approx(24.0)

    nothing = check_prediction({'slices': []}, reference)
    assert nothing['slice_recall'] == 0 and nothing['slice_precision'] is None
    assert nothing['centroid_distance_mm'] == {'median': None, 'max': None, 'n': 0}


def test_contours_by_class_merges_the_rois_of_a_class():
    a, b, c = square(0, 0, 0.0), square(5, 5, 1.0), square(9, 9, 2.0)
    merged = contours_by_class({'GTV': {'GTVp': [a], 'GTV_boost': [b]}, 'GTVln': {'LN': [c]}})
    assert [len(v) for v in merged.values()] == [2, 1] and merged['GTVln'][0] is c


def test_a_class_without_reference_is_refused():
    with pytest.raises(ValueError, match='GTV'):
        check_prediction({'slices': []}, {'GTVln': [square(0, 0, 0.0)]})
