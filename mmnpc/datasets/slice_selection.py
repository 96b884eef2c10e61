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
