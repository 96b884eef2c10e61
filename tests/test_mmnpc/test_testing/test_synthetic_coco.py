"""The synthetic set has the converter's layout: COCO polygons / RLE, tumour-free slices, patient split."""
import json

import cv2
import numpy as np
from pycocotools.coco import COCO

from mmnpc.testing import write_synthetic_coco


def test_layout_annotations_and_split(tmp_path):
    folders = write_synthetic_coco(tmp_path, sequences=('t2', 'cet1'), n_patients=4,
                                   slices_per_patient=4, n_val_patients=1, seed=3)
    assert set(folders) == {'t2', 'cet1'}
    patients = {}
    for split in ('train', 'val'):
        coco = COCO(str(tmp_path / 'cet1' / 'annotations' / f'{split}.json'))
        assert {c['name']: c['id'] for c in coco.loadCats(coco.getCatIds())} == {'GTV': 1, 'GTVln': 2}
        images = coco.loadImgs(coco.getImgIds())
        patients[split] = {im['patient_id'] for im in images}
        empty = [im for im in images if not coco.getAnnIds(imgIds=[im['id']])]
        assert empty, 'tumour-free slices must be present'
        for image in images:
            pixels = cv2.imread(str(tmp_path / 'cet1' / 'images' / image['file_name']),
                                cv2.IMREAD_GRAYSCALE)
            assert pixels.shape == (image['height'], image['width']) == (512, 512)
        for ann in coco.loadAnns(coco.getAnnIds()):
            mask = coco.annToMask(ann)
            assert mask.sum() > 0 and ann['iscrowd'] == 0
            x, y, w, h = ann['bbox']
            assert mask[int(y):int(y + h), int(x):int(x + w)].sum() == mask.sum()
    assert patients['train'].isdisjoint(patients['val'])
    assert len(patients['val']) == 1


def test_rings_are_rle_with_a_hole(tmp_path):
    write_synthetic_coco(tmp_path, n_patients=6, slices_per_patient=6, seed=0)
    data = json.loads((tmp_path / 'cet1' / 'annotations' / 'train.json').read_text())
    rings = [a for a in data['annotations'] if isinstance(a['segmentation'], dict)]
    assert rings
    from pycocotools import mask as mask_utils
    mask = mask_utils.decode(rings[0]['segmentation']).astype(bool)
    rows, cols = np.nonzero(mask)
    assert not mask[int(rows.mean()), int(cols.mean())]  # the centre is the hole


def test_same_seed_same_data(tmp_path):
    write_synthetic_coco(tmp_path / 'a', n_patients=2, slices_per_patient=2, seed=5)
    write_synthetic_coco(tmp_path / 'b', n_patients=2, slices_per_patient=2, seed=5)
    for name in ('train.json', 'val.json'):
        assert (tmp_path / 'a/cet1/annotations' / name).read_text() == \
            (tmp_path / 'b/cet1/annotations' / name).read_text()
