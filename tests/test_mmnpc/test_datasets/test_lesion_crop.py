"""LesionCrop: fixed-size crops of the full-resolution slice that keep a lesion whole."""
from __future__ import annotations

import numpy as np
import pytest
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

import mmnpc  # noqa: F401  registers LesionCrop

SIZE = 512
CROP = 128


def slice_with(lesions: list[tuple[int, int, int, int]]) -> dict:
    """A 512 px slice whose pixel values encode their position, with square lesions."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    img = np.stack([yy % 256, xx % 256, (yy // 256) * 2 + xx // 256], axis=-1).astype(np.uint8)
    masks = np.zeros((len(lesions), SIZE, SIZE), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(lesions):
        masks[i, y1:y2, x1:x2] = 1
    return {'img': img, 'img_shape': (SIZE, SIZE),
            'gt_bboxes': HorizontalBoxes(np.asarray(lesions, dtype=np.float32).reshape(-1, 4)),
            'gt_bboxes_labels': np.arange(len(lesions)) % 2,
            'gt_ignore_flags': np.zeros(len(lesions), dtype=bool),
            'gt_masks': BitmapMasks(masks, SIZE, SIZE)}


def crop_origin(out: dict) -> tuple[int, int]:
    """(x, y) of the crop's top-left pixel in the slice, read from the pixel values."""
    first = out['img'][0, 0].astype(int)
    return first[1] + 256 * (first[2] % 2), first[0] + 256 * (first[2] // 2)


def test_lesion_crops_keep_a_whole_lesion_and_map_back(seed=0):
    np.random.seed(seed)
    lesions = [(40, 300, 70, 330), (400, 60, 425, 90)]  # far apart: one crop holds one
    transform = TRANSFORMS.build(dict(type='LesionCrop', crop_size=(CROP, CROP), lesion_prob=1.0))
    seen = set()
    for _ in range(200):
        out = transform(slice_with(lesions))
        assert out['img'].shape[:2] == (CROP, CROP)
        x0, y0 = crop_origin(out)
        offset = out['homography_matrix'][:2, 2]
        assert tuple(-offset) == (x0, y0)
        whole = [i for i, (x1, y1, x2, y2) in enumerate(lesions)
                 if x0 <= x1 and x2 <= x0 + CROP and y0 <= y1 and y2 <= y0 + CROP]
        assert len(whole) == 1
        i = whole[0]
        seen.add(i)
        # the kept lesion's mask and box, moved by the crop offset, are the original ones
        kept = list(out['gt_bboxes_labels']).index(i % 2)
        x1, y1, x2, y2 = lesions[i]
        assert out['gt_masks'].masks[kept].sum() == (x2 - x1) * (y2 - y1)
        np.testing.assert_allclose(out['gt_bboxes'].numpy()[kept],
                                   [x1 - x0, y1 - y0, x2 - x0, y2 - y0])
    assert seen == {0, 1}


def test_uniform_crops_when_lesion_prob_is_zero():
    np.random.seed(1)
    transform = TRANSFORMS.build(dict(type='LesionCrop', crop_size=(CROP, CROP), lesion_prob=0.0))
    origins = [crop_origin(transform(slice_with([(40, 300, 70, 330)]))) for _ in range(300)]
    xs, ys = np.array(origins).T
    assert xs.min() >= 0 and xs.max() <= SIZE - CROP and ys.max() <= SIZE - CROP
    # uniform over [0, 384]: about 1/4 of x offsets in each quarter, most crops miss the lesion
    assert 0.15 < np.mean(xs < 96) < 0.35 and 0.15 < np.mean(xs >= 288) < 0.35
    missed = [not (x <= 40 and 70 <= x + CROP and y <= 300 and 330 <= y + CROP) for x, y in origins]
    assert np.mean(missed) > 0.7


def test_lesion_larger_than_the_crop_is_centred_and_slice_without_lesion_crops():
    np.random.seed(2)
    transform = TRANSFORMS.build(dict(type='LesionCrop', crop_size=(CROP, CROP), lesion_prob=1.0))
    out = transform(slice_with([(100, 100, 300, 260)]))
    assert crop_origin(out) == (136, 116)  # centre (200, 180) - 64
    empty = transform(slice_with([]))
    assert empty['img'].shape[:2] == (CROP, CROP) and len(empty['gt_bboxes']) == 0


def test_rejects_a_probability_outside_0_1():
    with pytest.raises(ValueError, match='lesion_prob'):
        TRANSFORMS.build(dict(type='LesionCrop', crop_size=(CROP, CROP), lesion_prob=1.5))


def test_a_lesion_flagged_ignore_is_never_the_one_kept_whole():
    np.random.seed(3)
    transform = TRANSFORMS.build(dict(type='LesionCrop', crop_size=(CROP, CROP), lesion_prob=1.0))
    lesions = [(40, 300, 70, 330), (400, 60, 425, 90)]
    for _ in range(50):
        results = slice_with(lesions)
        results['gt_ignore_flags'] = np.array([True, False])
        x0, y0 = crop_origin(transform(results))
        assert x0 <= 400 and 425 <= x0 + CROP and y0 <= 60 and 90 <= y0 + CROP
