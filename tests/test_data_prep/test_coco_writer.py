"""COCO records from masks: components, polygons on pixel edges, RLE for holes, ids, JSON."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy import ndimage

from data_prep import coco_writer
from data_prep.types import DataPrepError, PreparedSlice


def decode(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO segmentation as MMDetection's ``LoadAnnotations._poly2mask`` does."""
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation['counts'], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:  # compressed RLE
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def test_two_separate_blobs_give_two_annotations_with_bbox_and_area():
    mask = np.zeros((20, 30), bool)
    mask[2:5, 3:9] = True  # 3 rows x 6 columns
    mask[10:17, 20:22] = True  # 7 rows x 2 columns
    annotations = coco_writer.component_annotations(mask, category_id=2)
    assert len(annotations) == 2
    first, second = annotations
    assert first['bbox'] == [3.0, 2.0, 6.0, 3.0] and first['area'] == 18
    assert second['bbox'] == [20.0, 10.0, 2.0, 7.0] and second['area'] == 14
    assert all(a['category_id'] == 2 and a['iscrowd'] == 0 for a in annotations)
    assert all(isinstance(a['segmentation'], list) for a in annotations)


def test_diagonal_neighbours_are_one_component():
    mask = np.zeros((6, 6), bool)
    mask[1, 1] = mask[2, 2] = mask[3, 3] = True
    annotations = coco_writer.component_annotations(mask, 1)
    assert len(annotations) == 1
    assert annotations[0]['area'] == 3 and annotations[0]['bbox'] == [1.0, 1.0, 3.0, 3.0]
    assert np.array_equal(decode(annotations[0]['segmentation'], 6, 6), mask)


def test_blob_with_hole_is_rle_that_decodes_to_the_exact_mask():
    mask = np.zeros((16, 16), bool)
    mask[3:12, 4:13] = True
    mask[6:9, 7:10] = False  # the hole
    (annotation,) = coco_writer.component_annotations(mask, 1)
    segmentation = annotation['segmentation']
    assert isinstance(segmentation, dict) and isinstance(segmentation['counts'], str)
    assert segmentation['size'] == [16, 16]
    assert np.array_equal(decode(segmentation, 16, 16), mask)
    assert annotation['area'] == 81 - 9 == int(mask_utils.area(
        {'size': segmentation['size'], 'counts': segmentation['counts'].encode()}))


def test_single_pixel_polygon_traces_the_pixel_square():
    mask = np.zeros((8, 8), bool)
    mask[5, 2] = True  # row 5, column 2 -> the square [2, 3] x [5, 6]
    (annotation,) = coco_writer.component_annotations(mask, 1)
    (polygon,) = annotation['segmentation']
    corners = {(polygon[i], polygon[i + 1]) for i in range(0, len(polygon), 2)}
    assert corners == {(2.0, 5.0), (3.0, 5.0), (3.0, 6.0), (2.0, 6.0)}
    assert annotation['area'] == 1 and annotation['bbox'] == [2.0, 5.0, 1.0, 1.0]


def test_random_components_decode_exactly():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        height, width = rng.integers(4, 24, size=2)
        mask = ndimage.binary_opening(rng.random((height, width)) < 0.55) | (
            rng.random((height, width)) < 0.1)
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        annotations = coco_writer.component_annotations(mask, 1)
        assert len(annotations) == count
        for label, annotation in enumerate(annotations, start=1):
            decoded = decode(annotation['segmentation'], height, width)
            assert np.array_equal(decoded, labels == label)
            assert decoded.sum() == annotation['area']
            x, y, w, h = annotation['bbox']
            rows, cols = np.nonzero(decoded)
            assert (cols.min(), rows.min(), cols.max() - cols.min() + 1,
                    rows.max() - rows.min() + 1) == (x, y, w, h)
            checked += isinstance(annotation['segmentation'], list)
    assert checked > 100  # polygons, not only RLE, were exercised


def test_hole_touching_only_diagonally_counts_as_hole():
    # 8-connected ring whose inner pixel is enclosed by 4-connectivity only
    mask = np.array([[0, 1, 0],
                     [1, 0, 1],
                     [0, 1, 0]], bool)
    (annotation,) = coco_writer.component_annotations(mask, 1)
    assert isinstance(annotation['segmentation'], dict)
    assert np.array_equal(decode(annotation['segmentation'], 3, 3), mask)


def test_slice_annotations_orders_classes_and_checks_input():
    gtv = np.zeros((10, 10), bool)
    gtv[1:3, 1:3] = True
    nodes = np.zeros((10, 10), bool)
    nodes[6:8, 6:8] = True
    annotations = coco_writer.slice_annotations({'GTVln': nodes, 'GTV': gtv}, (10, 10))
    assert [a['category_id'] for a in annotations] == [1, 2]
    assert coco_writer.slice_annotations({}, (10, 10)) == []
    with pytest.raises(DataPrepError, match='unknown mask classes'):
        coco_writer.slice_annotations({'Parotid': gtv}, (10, 10))
    with pytest.raises(DataPrepError, match='shape'):
        coco_writer.slice_annotations({'GTV': gtv}, (12, 10))


def test_image_entry_carries_patient_geometry():
    slice_ = PreparedSlice(index=7, image=np.zeros((12, 16), np.uint8), masks={},
                           z_mm=-31.5, spacing_mm=(0.75, 0.5), origin_mm=(-96.0, -80.25))
    entry = coco_writer.image_entry(slice_, 'NPC004', 'cet1', 'NPC004_cet1_0007.jpg')
    assert entry == {
        'file_name': 'NPC004_cet1_0007.jpg', 'height': 12, 'width': 16,
        'patient_id': 'NPC004', 'sequence': 'cet1', 'slice_index': 7, 'z_mm': -31.5,
        'spacing_mm': [0.75, 0.5], 'origin_mm': [-96.0, -80.25]}
    assert coco_writer.image_file_name('NPC004', 'cet1', 7) == entry['file_name']


def test_build_coco_numbers_ids_and_loads_in_pycocotools(tmp_path):
    square = np.zeros((10, 10), bool)
    square[2:4, 2:4] = True
    annotations = coco_writer.slice_annotations({'GTV': square, 'GTVln': ~square}, (10, 10))
    entry = {'file_name': 'a.jpg', 'height': 10, 'width': 10}
    coco = coco_writer.build_coco(
        [(entry, annotations), ({**entry, 'file_name': 'b.jpg'}, []),
         ({**entry, 'file_name': 'c.jpg'}, annotations[:1])], 'test')
    assert [image['id'] for image in coco['images']] == [1, 2, 3]
    assert [a['id'] for a in coco['annotations']] == [1, 2, 3]
    assert [a['image_id'] for a in coco['annotations']] == [1, 1, 3]
    assert coco['categories'] == [{'id': 1, 'name': 'GTV', 'supercategory': 'tumour'},
                                  {'id': 2, 'name': 'GTVln', 'supercategory': 'tumour'}]
    path = tmp_path / 'train.json'
    coco_writer.write_json(path, coco)
    loaded = COCO(str(path))
    assert loaded.getImgIds() == [1, 2, 3] and loaded.getAnnIds(imgIds=[1]) == [1, 2]
    # the GTVln annotation is the square's complement: a ring with a hole -> RLE
    assert np.array_equal(loaded.annToMask(loaded.anns[2]).astype(bool), ~square)


def test_json_is_deterministic_and_rounded():
    value = {'b': (np.float32(0.1), 0.1 + 0.2), 'a': [np.int64(3), np.bool_(True)]}
    text = coco_writer.dumps_json(value)
    assert text == '{"a":[3,true],"b":[0.1,0.3]}\n'
    assert json.loads(coco_writer.dumps_json(value, indent=2)) == json.loads(text)
    with pytest.raises(ValueError):
        coco_writer.dumps_json({'x': math.nan})
    with pytest.raises(TypeError):
        coco_writer.dumps_json({'x': object()})


@pytest.mark.parametrize('values', [
    [float(v) for v in range(-40, 40)],                       # polygon corners: copied
    [float(v) for v in range(40)] + [0.1 + 0.2],              # one non-integral float
    [float(v) for v in range(40)] + [3],                      # an int stays an int
    [float(v) for v in range(40)] + [np.float64(2.0000004)],  # numpy float: rounded
    [float(v) for v in range(40)] + [2.0 ** 60],              # large: left to round()
    [float(v) for v in range(40)] + [-0.0, 1e-9],
])
def test_long_lists_are_written_as_if_rounded_item_by_item(values):
    expected = [round(float(v), coco_writer.FLOAT_DIGITS) if isinstance(v, float) else v
                for v in values]
    text = coco_writer.dumps_json({'segmentation': [values]})
    assert text == json.dumps({'segmentation': [expected]}, separators=(',', ':')) + '\n'
    with pytest.raises(ValueError):  # NaN still refused in a long list
        coco_writer.dumps_json([float(v) for v in range(40)] + [math.nan])


def test_write_jpeg_uses_the_quality_constant(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (32, 48), dtype=np.uint8)
    path = tmp_path / 'slice.jpg'
    coco_writer.write_jpeg(path, image)
    ok, expected = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok and path.read_bytes() == expected.tobytes()
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == (32, 48)
    with pytest.raises(DataPrepError, match='uint8'):
        coco_writer.write_jpeg(path, image.astype(np.float32))
