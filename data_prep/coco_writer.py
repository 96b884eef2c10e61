"""Write the detector's dataset pieces: JPEG slices and COCO instance records.

COCO geometry convention used here (the one pycocotools and MMDetection use):
pixel ``(u, v)`` = (column, row) is the unit square ``[u, u+1] x [v, v+1]``, so
pixel centres sit at half-integers. Polygons therefore trace the pixel *edges*
of a component (integer corner coordinates), and ``pycocotools.mask`` decodes
such a polygon back to exactly the component's pixels.

One annotation per connected component (8-connectivity) per class per slice:

* ``segmentation``: one polygon ``[x1, y1, x2, y2, ...]`` (px, >= 4 corners)
  when the component has no hole; compressed RLE (``counts`` as str) when it
  has one, because a polygon cannot carry a hole. ``LoadAnnotations(poly2mask=
  True)`` in MMDetection accepts both.
* ``bbox``: ``[x, y, w, h]`` px from the mask (``x`` = first column,
  ``w`` = last - first + 1), so it encloses the pixel squares.
* ``area``: number of mask pixels. Tiny components (even 1 px) are kept: they
  are real contour content after resampling, and dropping them silently would
  change the ground truth; MMDetection's own size filters can drop them later.

JSON is written deterministically (sorted keys, floats rounded to
``FLOAT_DIGITS`` decimals) so re-running a conversion gives identical bytes.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path, PurePath

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from data_prep.types import CATEGORY_IDS, CLASSES, DataPrepError, PreparedSlice

JPEG_QUALITY: int = 95  # cv2.IMWRITE_JPEG_QUALITY of every written slice
FLOAT_DIGITS: int = 6  # decimals kept for every float written to JSON
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_LONG_LIST = 32  # lists at least this long are checked at once for integral floats
_EXACT_LIMIT = 2.0 ** 52  # below this, an integral float is exactly what round() returns


def image_file_name(patient_id: str, sequence: str, index: int) -> str:
    """File name of one slice, relative to ``OUT/<sequence>/images``."""
    return f'{patient_id}_{sequence}_{index:04d}.jpg'


def write_jpeg(path: Path, image: np.ndarray) -> None:
    """Write a uint8 (H, W) slice as a grayscale JPEG of quality ``JPEG_QUALITY``."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise DataPrepError(
            f'{path.name}: slice image must be uint8 (H, W), got {image.dtype} {image.shape}')
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f'cv2.imwrite could not write {path}')


def jpeg_round_trip(image: np.ndarray) -> np.ndarray:
    """``image`` (uint8 (H, W)) as it reads back from the JPEG :func:`write_jpeg` writes.

    Training slices went through this lossy step; prediction applies it to the
    slices of a new patient so that the models see the same kind of pixels.
    """
    ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError('cv2.imencode could not encode a slice as JPEG')
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)


def categories() -> list[dict]:
    """The COCO ``categories`` list: GTV (id 1), GTVln (id 2)."""
    return [{'id': CATEGORY_IDS[name], 'name': name, 'supercategory': 'tumour'}
            for name in CLASSES]


def edge_polygon(component: np.ndarray) -> list[float]:
    """Trace the pixel-edge outline of one hole-free 8-connected component.

    component: bool (H, W). Returns ``[x1, y1, x2, y2, ...]`` in px with
    integer corner coordinates (pixel ``(u, v)`` spans ``[u, u+1] x [v, v+1]``).

    ``cv2.findContours`` traces pixel *centres*. On the mask upsampled 2x, the
    traced centres of left/top half-pixels sit at even coordinates ``2u`` and
    those of right/bottom halves at odd ones ``2u + 1``, so ``(c + 1) // 2`` maps
    them onto the original pixel corners ``u`` and ``u + 1``.
    """
    doubled = np.kron(component.astype(np.uint8), np.ones((2, 2), dtype=np.uint8))
    # One px of zero frame: findContours needs background around the outline.
    doubled = np.pad(doubled, 1)
    contours, _ = cv2.findContours(doubled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) != 1:
        raise ValueError(f'expected one connected component, found {len(contours)} outlines')
    corners = contours[0].reshape(-1, 2) // 2  # (c + 1) // 2, the +1 being the frame
    changed = np.ones(len(corners), dtype=bool)
    changed[1:] = np.any(corners[1:] != corners[:-1], axis=1)
    return corners[changed].astype(float).ravel().tolist()


def rle_segmentation(component: np.ndarray) -> dict:
    """Compressed COCO RLE of a bool (H, W) mask, ``counts`` decoded to str."""
    rle = mask_utils.encode(np.asfortranarray(component.astype(np.uint8)))
    return {'size': [int(s) for s in rle['size']], 'counts': rle['counts'].decode('ascii')}


def has_hole(component: np.ndarray) -> bool:
    """True when the component encloses background (4-connected, as for 8-conn. foreground)."""
    return bool(np.any(ndimage.binary_fill_holes(component) & ~component))


def component_annotations(mask: np.ndarray, category_id: int) -> list[dict]:
    """One COCO annotation (without ``id``/``image_id``) per 8-connected component.

    mask: bool (H, W). Components are returned in scipy's label order (raster
    order of their first pixel), so the result is deterministic.
    """
    rows_used, cols_used = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows_used.size == 0:
        return []
    # Labelling only the box around the mask is faster and keeps the raster order.
    top, left = int(rows_used[0]), int(cols_used[0])
    box = (slice(top, int(rows_used[-1]) + 1), slice(left, int(cols_used[-1]) + 1))
    labels, _ = ndimage.label(mask[box], structure=_EIGHT_CONNECTED)
    annotations = []
    for label, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        # A hole never touches the bounding box, so the crop decides holes and outline.
        crop = labels[rows, cols] == label
        x0, y0 = cols.start + left, rows.start + top
        if has_hole(crop):
            component = np.zeros(mask.shape, dtype=bool)
            component[box] = labels == label
            segmentation = rle_segmentation(component)
        else:
            polygon = np.asarray(edge_polygon(crop)).reshape(-1, 2) + (x0, y0)
            segmentation = [polygon.ravel().tolist()]
        annotations.append({
            'category_id': int(category_id),
            'segmentation': segmentation,
            'bbox': [float(x0), float(y0),
                     float(cols.stop - cols.start), float(rows.stop - rows.start)],
            'area': int(crop.sum()),
            'iscrowd': 0,
        })
    return annotations


def slice_annotations(masks: Mapping[str, np.ndarray], shape: tuple[int, int]) -> list[dict]:
    """Annotations of one slice, class by class in ``CLASSES`` order.

    masks: class name -> bool (H, W); an absent class means an empty mask.
    Unknown class names or a shape differing from the image ``shape`` raise.
    """
    unknown = sorted(set(masks) - set(CLASSES))
    if unknown:
        raise DataPrepError(f'unknown mask classes {unknown}; expected {list(CLASSES)}')
    annotations = []
    for name in CLASSES:
        if name not in masks:
            continue
        mask = np.asarray(masks[name])
        if mask.shape != tuple(shape):
            raise DataPrepError(f'{name} mask shape {mask.shape} differs from image {shape}')
        annotations.extend(component_annotations(mask.astype(bool), CATEGORY_IDS[name]))
    return annotations


def image_entry(slice_: PreparedSlice, patient_id: str, sequence: str, file_name: str) -> dict:
    """COCO image record (without ``id``) carrying the slice's patient geometry.

    ``z_mm``, ``spacing_mm`` [sx, sy] and ``origin_mm`` [x, y] (LPS mm of the
    centre of pixel (0, 0)) come from the PreparedSlice; ``slice_index`` is its
    position in the 1 mm output stack (0 = most inferior).
    """
    height, width = slice_.image.shape
    return {
        'file_name': file_name,
        'height': int(height),
        'width': int(width),
        'patient_id': patient_id,
        'sequence': sequence,
        'slice_index': int(slice_.index),
        'z_mm': float(slice_.z_mm),
        'spacing_mm': [float(v) for v in slice_.spacing_mm],
        'origin_mm': [float(v) for v in slice_.origin_mm],
    }


def build_coco(records: Sequence[tuple[dict, Sequence[dict]]], description: str) -> dict:
    """Assemble a COCO instances dict, numbering images and annotations from 1.

    records: (image entry, its annotations) in the order the ids are to follow
    (the caller sorts by patient, then slice index).
    """
    images, annotations = [], []
    for image_id, (entry, entry_annotations) in enumerate(records, start=1):
        images.append({**entry, 'id': image_id})
        for annotation in entry_annotations:
            annotations.append({**annotation, 'id': len(annotations) + 1, 'image_id': image_id})
    return {
        'info': {'description': description},
        'licenses': [],
        'categories': categories(),
        'images': images,
        'annotations': annotations,
    }


def to_json_value(value: object) -> object:
    """Plain-JSON copy of ``value``: floats rounded, tuples/arrays as lists, paths as str."""
    kind = type(value)  # fast path for the built-in types COCO files are made of
    if kind is float:
        return round(value, FLOAT_DIGITS)
    if kind is str or kind is int or value is None:
        return value
    if kind is list or kind is tuple:  # polygons: long lists of floats
        if len(value) >= _LONG_LIST and _integral_floats(value):
            return list(value)  # round() would return each item unchanged
        return [round(item, FLOAT_DIGITS) if type(item) is float else to_json_value(item)
                for item in value]
    if kind is dict:
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), FLOAT_DIGITS)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    if is_dataclass(value) and not isinstance(value, type):
        return to_json_value(asdict(value))
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return to_json_value(value.tolist())
    if isinstance(value, (set, frozenset)):
        return sorted(to_json_value(item) for item in value)
    if isinstance(value, (list, tuple)):
        return [to_json_value(item) for item in value]
    raise TypeError(f'cannot write {type(value).__name__} to JSON: {value!r}')


def _integral_floats(values: Sequence) -> bool:
    """True when every item is a finite, integral built-in float (polygon corners).

    Rounding such a value to ``FLOAT_DIGITS`` returns it unchanged, so a COCO
    polygon of thousands of corners is copied instead of rounded item by item.
    """
    if not all(type(item) is float for item in values):
        return False
    array = np.array(values)
    return bool(np.all(np.abs(array) < _EXACT_LIMIT) and np.all(np.rint(array) == array))


def dumps_json(value: object, indent: int | None = None) -> str:
    """Deterministic JSON text: sorted keys, rounded floats, trailing newline.

    ``indent=None`` gives compact text (COCO files); an int pretty-prints.
    """
    separators = (',', ':') if indent is None else (',', ': ')
    return json.dumps(to_json_value(value), sort_keys=True, allow_nan=False,
                      indent=indent, separators=separators) + '\n'


def write_json(path: Path, value: object, indent: int | None = None) -> None:
    """Write ``dumps_json(value, indent)`` atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(dumps_json(value, indent), encoding='utf-8')
    os.replace(tmp, path)
