"""Lesion windows in millimetres: placement, size, border, masks, and one geometry for
contour boxes and detector boxes."""
import numpy as np
import pytest

from mmnpc.datasets.regions import (RegionSpec, coco_box, crop_region, keep_mask, mean_by_slice,
                                    window_matrix)
from mmnpc.datasets.slice_selection import largest_regions, select_regions


def _dot_image(size, points):
    image = np.zeros((size, size), np.uint8)
    for u, v in points:
        image[v, u] = 200
    return image


@pytest.mark.parametrize('spacing', [(0.5, 0.5), (0.45, 0.6)])
def test_a_point_lands_at_its_millimetre_offset_from_the_box_centre(spacing):
    """A dot 10 mm right and 6 mm above the box centre appears 10 / 6 mm from the window
    centre whatever the slice's pixel spacing: the window is in mm, not pixels."""
    sx, sy = spacing
    box = [200.0, 180.0, 240.0, 220.0]  # edges; centre pixel coordinate (219.5, 199.5)
    cu, cv = 219.5, 199.5
    spec = RegionSpec(size_mm=40.0, out_px=80)  # 0.5 mm per output pixel
    du, dv = 10 / sx, -6 / sy
    u, v = int(round(cu + du)), int(round(cv + dv))
    # exact offset of the pixel actually set, in mm
    off_x, off_y = (u - cu) * sx, (v - cv) * sy
    crop = crop_region(_dot_image(512, [(u, v)]).astype(np.float32), box, spacing, spec)
    ys, xs = np.nonzero(crop)
    weights = crop[ys, xs]
    a, b = np.average(xs, weights=weights), np.average(ys, weights=weights)
    # output pixel a has its centre (a + 0.5 - 40) * 0.5 mm from the box centre
    assert (a + 0.5 - 40) * 0.5 == pytest.approx(off_x, abs=0.05)
    assert (b + 0.5 - 40) * 0.5 == pytest.approx(off_y, abs=0.05)


def test_window_size_is_physical_so_lesion_size_stays_visible():
    """The same 20 mm lesion fills the same share of the window at 0.4 and 0.8 mm pixels."""
    spec = RegionSpec(size_mm=64.0, out_px=128)
    filled = []
    for spacing in (0.4, 0.8):
        half = 10 / spacing  # 20 mm wide square lesion, in px
        image = np.zeros((512, 512), np.uint8)
        c = 256
        image[int(c - half):int(c + half), int(c - half):int(c + half)] = 255
        box = [c - half, c - half, c + half, c + half]
        crop = crop_region(image, box, (spacing, spacing), spec)
        filled.append(np.mean(crop > 127))
    assert filled[0] == pytest.approx((20 / 64) ** 2, rel=0.05)
    assert filled[1] == pytest.approx(filled[0], rel=0.05)


def test_border_reads_zero_and_does_not_shift_the_lesion():
    """A box touching the top-left corner: the outside reads 0 (padding), the image part
    stays where the geometry puts it (not clamped towards the centre)."""
    image = np.full((100, 100), 90, np.uint8)
    spec = RegionSpec(size_mm=40.0, out_px=40)  # 1 mm per output pixel at 1 mm spacing
    crop = crop_region(image, [0.0, 0.0, 10.0, 10.0], (1.0, 1.0), spec)
    # box centre pixel coordinate (4.5, 4.5); output a=0 samples u = 4.5 - 19.5 = -15
    assert np.all(crop[:, :14] == 0) and np.all(crop[:14, :] == 0)
    assert np.all(crop[16:, 16:] == 90)
    np.testing.assert_allclose(window_matrix([0, 0, 10, 10], (1.0, 1.0), spec),
                               [[1, 0, -15], [0, 1, -15]])


def test_lesion_and_ring_masks_follow_the_box_and_margin_in_mm():
    image = np.full((200, 200), 100, np.uint8)
    box = [80.0, 90.0, 120.0, 110.0]  # 40 x 20 px = 20 x 10 mm at 0.5 mm
    window = RegionSpec(size_mm=40.0, out_px=80, margin_mm=5.0)  # 0.5 mm per pixel
    lesion = RegionSpec(size_mm=40.0, out_px=80, margin_mm=5.0, keep='lesion')
    ring = RegionSpec(size_mm=40.0, out_px=80, margin_mm=5.0, keep='ring')
    kept = crop_region(image, box, (0.5, 0.5), lesion) > 0
    # grown box: (20 + 10) x (10 + 10) mm = 60 x 40 output px
    assert kept.sum() == 60 * 40
    ring_kept = crop_region(image, box, (0.5, 0.5), ring) > 0
    assert ring_kept.sum() == 60 * 40 - 40 * 20
    assert not ring_kept[40, 40]  # the box centre is not in the ring
    assert crop_region(image, box, (0.5, 0.5), window).min() == 100
    assert np.array_equal(keep_mask(box, (0.5, 0.5), lesion), kept)
    with pytest.raises(ValueError, match='keep'):
        RegionSpec(keep='rim')
    with pytest.raises(ValueError, match='x2 >= x1'):
        crop_region(image, [10, 10, 5, 20], (0.5, 0.5), window)


def _coco_with_regions():
    images = [{'id': i, 'file_name': f'P{p}_{i}.jpg', 'patient_id': f'P{p}', 'slice_index': i,
               'spacing_mm': [0.5, 0.5]} for p, i in [(1, 1), (1, 2), (1, 3), (2, 4)]]
    anns = [(1, 1, 1, [10, 10, 20, 20], 300), (2, 2, 1, [10, 10, 30, 30], 700),
            (3, 2, 2, [100, 100, 8, 8], 50), (4, 3, 2, [90, 90, 12, 12], 110),
            (5, 3, 1, [12, 12, 10, 10], 80), (6, 4, 2, [5, 5, 5, 5], 20)]
    return {'images': images,
            'categories': [{'id': 1, 'name': 'GTV'}, {'id': 2, 'name': 'GTVln'}],
            'annotations': [{'id': a, 'image_id': im, 'category_id': c, 'bbox': b, 'area': ar}
                            for a, im, c, b, ar in anns]}


def test_regions_from_contours_keep_the_k_largest_of_each_structure():
    coco = _coco_with_regions()
    every = select_regions(coco, ('GTV', 'GTVln'), None, 'test.json')
    assert [r['annotation_id'] for r in every] == [1, 2, 3, 4, 5, 6]
    assert every[1]['region_box'] == [10.0, 10.0, 40.0, 40.0]
    one = select_regions(coco, ('GTV', 'GTVln'), 1, 'test.json')
    assert [(r['patient_id'], r['structure'], r['annotation_id']) for r in one] == [
        ('P1', 'GTV', 2), ('P1', 'GTVln', 4), ('P2', 'GTVln', 6)]
    nodes = select_regions(coco, ('GTVln',), None, 'test.json')
    assert {r['structure'] for r in nodes} == {'GTVln'}
    assert largest_regions(every, 2) == [r for r in every if r['annotation_id'] != 5]


def test_the_same_box_gives_the_same_tensor_from_contours_and_from_the_detector(tmp_path):
    """The region dataset's CropRegion (contour box from COCO) and prediction's window of a
    detector box with the same coordinates give identical arrays."""
    from mmnpc.datasets.transforms import CropRegion

    rng = np.random.default_rng(0)
    image = rng.integers(1, 255, (512, 512), dtype=np.uint8)
    coco = _coco_with_regions()
    region = select_regions(coco, ('GTV',), 1, 'x')[0]
    transform = CropRegion(size_mm=32.0, out_px=64, margin_mm=3.0, keep='lesion')
    from_contour = transform(dict(img=np.repeat(image[..., None], 3, 2),
                                  region_box=region['region_box'],
                                  spacing_mm=region['spacing_mm']))['img'][..., 0]
    detector_box = np.array([10.0, 10.0, 40.0, 40.0])  # what SliceDetections.boxes holds
    from_detector = crop_region(image, detector_box, [0.5, 0.5], transform.spec)
    assert np.array_equal(from_contour, from_detector)


def test_slice_score_is_the_mean_of_its_regions():
    assert mean_by_slice([5, 3, 5], [0.2, 0.9, 0.4]) == {3: 0.9, 5: pytest.approx(0.3)}
    assert coco_box([1, 2, 3, 4]) == [1.0, 2.0, 4.0, 6.0]


@pytest.mark.parametrize('seed', range(4))
def test_training_jitter_moves_the_window_not_the_ring_onto_the_lesion(seed):
    """With keep='ring', a jittered window still masks the lesion's own box: the ring
    never holds lesion pixels (a jitter that moved the mask with the window would put up to
    4 mm of lesion into the ring)."""
    from mmnpc.datasets.transforms import CropRegion

    np.random.seed(seed)
    image = np.full((256, 256, 3), 100, np.uint8)
    image[108:148, 108:148] = 250  # a 20 mm lesion at 0.5 mm
    crop = CropRegion(size_mm=48.0, out_px=96, margin_mm=5.0, keep='ring', jitter_mm=4.0)
    out = crop(dict(img=image.copy(), region_box=[108.0, 108.0, 148.0, 148.0],
                    spacing_mm=[0.5, 0.5]))['img'][..., 0]
    kept = out > 0
    assert kept.sum() > 0.5 * (30 ** 2 - 20 ** 2) * 4  # most of the 5 mm ring survives
    assert np.mean(out[kept] >= 200) < 0.05  # and it is not the lesion


def test_region_spec_of_a_test_pipeline_ignores_training_only_keys():
    from mmengine.config import Config

    from mmnpc.inference.predict_patient import region_spec

    cfg = Config(dict(test_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='CropRegion', size_mm=32.0, out_px=64, jitter_mm=0.0)]))))
    assert region_spec(cfg) == RegionSpec(size_mm=32.0, out_px=64)
