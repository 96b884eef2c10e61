"""Which slices of a COCO annotation file the MSOM classifier sees.

* ``'tumour'`` (default, the paper's method): every slice with at least one
  annotation of ``tumour_classes`` (GTV and/or GTVln). The classifier is
  trained on these slices, each labelled with its patient's outcome, and at
  test time scores the same slices; the patient's risk is the mean of the
  slice scores (mmnpc.evaluation). At prediction time on a new patient the
  slices come from the detector instead of the contours.
* ``'max_area'`` (the comparison model the paper beats): one slice per
  patient, the one with the largest total tumour area (sum of the COCO
  ``area`` of the selected classes, px); ties go to the lowest slice index.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np

from data_prep.types import DataPrepError

from .regions import coco_box

SLICE_SELECTIONS: tuple[str, ...] = ('tumour', 'max_area')


def tumour_area_by_image(coco: dict, tumour_classes: Sequence[str],
                         source: str) -> Dict[int, float]:
    """image id -> total annotated area (px) of ``tumour_classes``; only images with tumour."""
    category_ids = {c['name']: c['id'] for c in coco.get('categories', [])}
    unknown = [name for name in tumour_classes if name not in category_ids]
    if unknown:
        raise DataPrepError(f'{source}: no COCO category {unknown} (categories: '
                            f'{sorted(category_ids)})')
    wanted = {category_ids[name] for name in tumour_classes}
    areas: Dict[int, float] = defaultdict(float)
    for annotation in coco.get('annotations', []):
        if annotation['category_id'] in wanted:
            areas[annotation['image_id']] += float(annotation['area'])
    return dict(areas)


def select_slices(coco: dict, selection: str, tumour_classes: Sequence[str],
                  source: str) -> List[dict]:
    """The image entries of ``coco`` chosen by ``selection``, each with ``tumour_area_px`` added.

    Order: by patient, then slice index. Raises DataPrepError (naming
    ``source``) for an unknown selection or class, or an image entry
    without ``patient_id``.
    """
    if selection not in SLICE_SELECTIONS:
        raise ValueError(f'slice_selection {selection!r} not in {SLICE_SELECTIONS}')
    areas = tumour_area_by_image(coco, tumour_classes, source)
    chosen = []
    for image in coco.get('images', []):
        if 'patient_id' not in image:
            raise DataPrepError(f'{source}: image {image.get("file_name")!r} has no patient_id '
                                '(write the annotations with python -m data_prep convert)')
        if image['id'] in areas:
            chosen.append({**image, 'tumour_area_px': areas[image['id']]})
    chosen.sort(key=lambda im: (im['patient_id'], im.get('slice_index', 0), im['id']))
    if selection == 'max_area':
        largest: Dict[str, dict] = {}
        for image in chosen:  # sorted by slice index: the first of equal areas is kept
            best = largest.get(image['patient_id'])
            if best is None or image['tumour_area_px'] > best['tumour_area_px']:
                largest[image['patient_id']] = image
        chosen = [largest[p] for p in sorted(largest)]
    return chosen


def evenly_spaced(images: Sequence[dict], max_per_patient: Optional[int]) -> List[dict]:
    """At most ``max_per_patient`` of each patient's ``images``, evenly spaced in their order.

    ``images`` as :func:`select_slices` returns them (grouped by patient,
    ordered by slice index). Keeps the first and last slice of a patient and
    spreads the rest between them (:func:`evenly_spaced_positions`); None keeps
    everything.
    """
    if max_per_patient is None:
        return list(images)
    _check_max(max_per_patient)
    by_patient: Dict[str, List[dict]] = defaultdict(list)
    for image in images:
        by_patient[image['patient_id']].append(image)
    kept = []
    for patient_id in sorted(by_patient):
        slices = by_patient[patient_id]
        kept.extend(slices[i] for i in evenly_spaced_positions(len(slices), max_per_patient))
    return kept


def evenly_spaced_positions(n: int, max_per_patient: Optional[int]) -> List[int]:
    """Positions 0..n-1 of the slices kept out of ``n``: all of them when
    ``max_per_patient`` is None or >= n, else ``max_per_patient`` spread evenly
    from the first to the last. Shared by evaluation (the dataset) and
    prediction (tools/predict.py), so both average the same kind of selection.
    """
    if max_per_patient is None:
        return list(range(n))
    _check_max(max_per_patient)
    if n <= max_per_patient:
        return list(range(n))
    spaced = np.linspace(0, n - 1, max_per_patient)
    return [int(i) for i in np.unique(np.round(spaced).astype(int))]


def _check_max(max_per_patient: int) -> None:
    if max_per_patient < 1:
        raise ValueError(f'max_slices_per_patient must be >= 1, got {max_per_patient}')


def select_regions(coco: dict, region_classes: Sequence[str], per_structure: Optional[int],
                   source: str) -> List[dict]:
    """One record per annotation of ``region_classes`` (a lesion section on one slice):
    the image entry plus ``structure`` (class name), ``region_box`` (x1, y1, x2, y2 px),
    ``region_area_px`` and ``tumour_area_px`` (the slice's total of ``region_classes``).

    At most ``per_structure`` regions of each structure of a patient are kept, the
    largest ones (:func:`largest_regions`; None keeps all). Order: by patient,
    slice index, then annotation id.
    """
    areas = tumour_area_by_image(coco, region_classes, source)
    names = {c['id']: c['name'] for c in coco.get('categories', [])}
    images = {image['id']: image for image in coco.get('images', [])}
    records = []
    for annotation in coco.get('annotations', []):
        structure = names.get(annotation['category_id'])
        if structure not in region_classes:
            continue
        image = images.get(annotation['image_id'])
        if image is None or 'patient_id' not in image:
            raise DataPrepError(f'{source}: annotation {annotation.get("id")} refers to image '
                                f'{annotation["image_id"]}, which is missing or has no patient_id')
        records.append({**image, 'structure': structure, 'annotation_id': annotation['id'],
                        'region_box': coco_box(annotation['bbox']),
                        'region_area_px': float(annotation['area']),
                        'tumour_area_px': areas[image['id']]})
    return largest_regions(records, per_structure)


def largest_regions(records: Sequence[dict], per_structure: Optional[int]) -> List[dict]:
    """The ``per_structure`` largest (``region_area_px``) records of each (patient,
    structure); ties go to the lower slice index. Shared by the dataset (contours)
    and prediction (detections), so both keep the same kind of regions. Sorted by
    patient, slice index, then ``annotation_id`` (a running number for detections)."""
    if per_structure is not None:
        _check_max(per_structure)
        groups: Dict[tuple, List[dict]] = defaultdict(list)
        for record in records:
            groups[(record['patient_id'], record['structure'])].append(record)
        records = [r for group in groups.values()
                   for r in sorted(group, key=lambda r: (-r['region_area_px'],
                                                         r.get('slice_index', 0),
                                                         r['annotation_id']))[:per_structure]]
    return sorted(records, key=lambda r: (r['patient_id'], r.get('slice_index', 0),
                                          r['annotation_id']))
