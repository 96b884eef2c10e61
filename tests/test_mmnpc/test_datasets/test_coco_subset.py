"""Every k-th slice per patient, with exactly its annotations."""
from __future__ import annotations

import json

import pytest

from mmnpc.datasets.coco_subset import every_kth_slice, write_every_kth_slice


def coco(slices_per_patient=(5, 3)):
    images, annotations = [], []
    for p, n in enumerate(slices_per_patient):
        for i in range(n):
            image_id = len(images) + 1
            images.append({'id': image_id, 'patient_id': f'P{p}', 'slice_index': i,
                           'file_name': f'P{p}_{i:04d}.jpg'})
            if i % 2:
                annotations.append({'id': len(annotations) + 1, 'image_id': image_id})
    return {'images': images, 'annotations': annotations, 'categories': [{'id': 1}]}


def test_keeps_every_kth_slice_of_each_patient_and_only_their_annotations():
    subset = every_kth_slice(coco(), 2)
    assert [(im['patient_id'], im['slice_index']) for im in subset['images']] == [
        ('P0', 0), ('P0', 2), ('P0', 4), ('P1', 0), ('P1', 2)]
    assert subset['annotations'] == []  # annotated slices are the odd ones here
    subset = every_kth_slice(coco(), 1)
    assert subset['images'] == coco()['images'] and subset['annotations'] == coco()['annotations']
    shifted = every_kth_slice({**coco(), 'images': [  # now the annotated slices are kept
        {**im, 'slice_index': im['slice_index'] + 1} for im in coco()['images']]}, 2)
    assert [a['image_id'] for a in shifted['annotations']] == [2, 4, 7]
    assert [im['id'] for im in shifted['images']] == [2, 4, 7]
    assert subset['categories'] == [{'id': 1}]


def test_bad_step_or_foreign_coco_is_refused():
    with pytest.raises(ValueError, match='step'):
        every_kth_slice(coco(), 0)
    with pytest.raises(ValueError, match='slice_index'):
        every_kth_slice({'images': [{'id': 1, 'file_name': 'a.jpg'}], 'annotations': []}, 2)


def test_write(tmp_path):
    (tmp_path / 'val.json').write_text(json.dumps(coco()))
    counts = write_every_kth_slice(tmp_path / 'val.json', tmp_path / 'out' / 'val_step2.json', 2)
    assert counts == {'images': 5, 'of_images': 8, 'annotations': 0, 'patients': 2}
    assert json.loads((tmp_path / 'out' / 'val_step2.json').read_text()) == every_kth_slice(coco(), 2)
