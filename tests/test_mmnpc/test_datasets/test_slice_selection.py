"""Slice choice: every tumour slice, or the largest-tumour slice per patient."""
from __future__ import annotations

import pytest

from data_prep.types import DataPrepError
from mmnpc.datasets import evenly_spaced, select_slices

CATEGORIES = [{'id': 1, 'name': 'GTV'}, {'id': 2, 'name': 'GTVln'}]


def _coco():
    images = [{'id': i, 'file_name': f'{p}_{k}.jpg', 'patient_id': p, 'slice_index': k}
              for i, (p, k) in enumerate([('A', 0), ('A', 1), ('A', 2), ('A', 3), ('B', 0), ('B', 1)],
                                         start=1)]
    annotations = [
        {'id': 1, 'image_id': 2, 'category_id': 1, 'area': 30.0},
        {'id': 2, 'image_id': 3, 'category_id': 1, 'area': 20.0},
        {'id': 3, 'image_id': 3, 'category_id': 2, 'area': 15.0},  # A slice 2: 35 px in all
        {'id': 4, 'image_id': 4, 'category_id': 2, 'area': 50.0},  # A slice 3: nodes only
        {'id': 5, 'image_id': 5, 'category_id': 1, 'area': 10.0},
        {'id': 6, 'image_id': 6, 'category_id': 1, 'area': 10.0},  # B: a tie
    ]
    return {'images': images, 'annotations': annotations, 'categories': CATEGORIES}


def _keys(images):
    return [(im['patient_id'], im['slice_index'], im['tumour_area_px']) for im in images]


def test_tumour_keeps_every_slice_with_an_annotation():
    chosen = select_slices(_coco(), 'tumour', ('GTV', 'GTVln'), 'x.json')
    assert _keys(chosen) == [('A', 1, 30.0), ('A', 2, 35.0), ('A', 3, 50.0), ('B', 0, 10.0),
                             ('B', 1, 10.0)]


def test_tumour_classes_restrict_the_slices_and_the_area():
    chosen = select_slices(_coco(), 'tumour', ('GTV',), 'x.json')
    assert _keys(chosen) == [('A', 1, 30.0), ('A', 2, 20.0), ('B', 0, 10.0), ('B', 1, 10.0)]


def test_max_area_keeps_one_slice_per_patient_ties_to_the_lowest_index():
    chosen = select_slices(_coco(), 'max_area', ('GTV', 'GTVln'), 'x.json')
    assert _keys(chosen) == [('A', 3, 50.0), ('B', 0, 10.0)]
    chosen = select_slices(_coco(), 'max_area', ('GTV',), 'x.json')
    assert _keys(chosen) == [('A', 1, 30.0), ('B', 0, 10.0)]


def test_unknown_selection_class_or_anonymous_image_is_refused():
    with pytest.raises(ValueError, match='slice_selection'):
        select_slices(_coco(), 'middle', ('GTV',), 'x.json')
    with pytest.raises(DataPrepError, match="x.json: no COCO category \\['GTVp'\\]"):
        select_slices(_coco(), 'tumour', ('GTVp',), 'x.json')
    coco = _coco()
    del coco['images'][0]['patient_id']
    with pytest.raises(DataPrepError, match='has no patient_id'):
        select_slices(coco, 'tumour', ('GTV',), 'x.json')


def test_evenly_spaced_keeps_first_last_and_spreads_the_rest():
    images = [{'patient_id': p, 'slice_index': k} for p, n in (('A', 10), ('B', 2)) for k in range(n)]
    kept = evenly_spaced(images, 4)
    assert [(im['patient_id'], im['slice_index']) for im in kept] == [
        ('A', 0), ('A', 3), ('A', 6), ('A', 9), ('B', 0), ('B', 1)]
    assert evenly_spaced(images, None) == images
    with pytest.raises(ValueError):
        evenly_spaced(images, 0)
