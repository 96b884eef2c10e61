"""Did the detector find this patient's tumour? A prediction against reference contours.

``tools/predict.py`` writes, per slice it marked (a detection scoring at least
its threshold), the detections in patient coordinates (LPS mm). Reference
contours (an RTSTRUCT's GTV / GTVln, read with ``data_prep.rtstruct``) are in the
same coordinates, so no image grid is involved: a marked slice at ``z`` holds
the class when a reference contour plane of that class lies within half the
reference plane spacing, and a detection's mask centroid is compared in-plane
with the area-weighted centroid of that plane's reference contours.

Reported (``check_prediction``): slice recall (share of the class's reference
planes with a marked slice), slice precision (share of marked slices lying on
a reference plane of any class: a slice marked for its nodes is right), and
the in-plane distance from each marked slice's best detection of the class to
that plane's reference centroid (median and maximum).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def contours_by_class(rois: Mapping[str, Mapping[str, Sequence[np.ndarray]]]
                      ) -> dict[str, list[np.ndarray]]:
    """class -> every contour of the class, from ``StructureSet.rois`` (class -> ROI -> contours)."""
    return {cls: [c for contours in by_roi.values() for c in contours]
            for cls, by_roi in rois.items()}


def polygon_centroid(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centroid (x, y) and area (mm^2) of a closed planar polygon (N x 2 or N x 3, shoelace)."""
    x, y = points[:, 0], points[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2.0
    if abs(area) < 1e-12:
        return np.array([x.mean(), y.mean()]), 0.0
    cx = ((x + xn) * cross).sum() / (6.0 * area)
    cy = ((y + yn) * cross).sum() / (6.0 * area)
    return np.array([cx, cy]), abs(area)


def reference_planes(contours: Sequence[np.ndarray]) -> dict[float, np.ndarray]:
    """z (mm, rounded to 0.01) -> area-weighted in-plane centroid of the contours on that plane."""
    sums: dict[float, list] = {}
    for contour in contours:
        z = round(float(np.median(contour[:, 2])), 2)
        centre, area = polygon_centroid(contour)
        weight = max(area, 1e-9)
        acc = sums.setdefault(z, [np.zeros(2), 0.0])
        acc[0] += centre * weight
        acc[1] += weight
    return {z: total / weight for z, (total, weight) in sums.items()}


def _plane_tolerance(planes: Sequence[float]) -> float:
    """Half the median spacing of the reference planes (0.5 mm for a single plane)."""
    zs = np.unique(np.asarray(planes, dtype=float))
    return float(np.median(np.diff(zs))) / 2.0 if len(zs) > 1 else 0.5


def check_prediction(prediction: Mapping, reference: Mapping[str, Sequence[np.ndarray]],
                     cls: str = 'GTV') -> dict:
    """Compare ``prediction`` (prediction.json's content) with reference contours of ``cls``.

    Args:
        prediction: the dict ``tools/predict.py`` writes; its ``slices`` are the
            marked slices, each with ``z_mm`` and ``detections`` (``class``,
            ``score``, ``centroid_lps_mm``).
        reference: class -> contours (N x 3 LPS mm), e.g. merged over the ROIs
            of ``data_prep.rtstruct.StructureSet.rois[cls]``.
        cls: the class whose slices and centroids are compared.

    Returns:
        JSON-ready dict: ``n_reference_planes`` (of ``cls``), ``n_marked_slices``,
        ``n_marked_on_reference`` (on a plane of any class), ``slice_recall``,
        ``slice_precision`` (None when nothing is marked), ``centroid_distance_mm``
        (median, max, n: the class's best-scoring detection on marked slices
        of its planes) and ``tolerance_mm``.

    Raises:
        ValueError: no reference contour of ``cls``.
    """
    planes = reference_planes(reference.get(cls, []))
    if not planes:
        raise ValueError(f'no reference contour of class {cls!r}')
    any_planes = sorted({z for contours in reference.values() for z in reference_planes(contours)})
    tolerance = _plane_tolerance(any_planes)

    def nearest(z: float, candidates: Sequence[float]) -> float | None:
        zs = np.asarray(candidates, dtype=float)
        i = int(np.argmin(np.abs(zs - z)))
        return float(zs[i]) if abs(zs[i] - z) <= tolerance + 1e-6 else None

    marked = [s for s in prediction.get('slices', []) if s.get('detections')]
    hits, distances = set(), []
    for slc in marked:
        plane = nearest(float(slc['z_mm']), sorted(planes))
        if plane is None:
            continue
        hits.add(plane)
        own = [d for d in slc['detections']
               if d.get('class') == cls and d.get('centroid_lps_mm') is not None]
        if own:
            best = max(own, key=lambda d: d['score'])
            distances.append(float(np.linalg.norm(
                np.asarray(best['centroid_lps_mm'][:2]) - planes[plane])))
    n_true_marked = sum(nearest(float(s['z_mm']), any_planes) is not None for s in marked)
    return {
        'class': cls,
        'n_reference_planes': len(planes),
        'n_marked_slices': len(marked),
        'n_marked_on_reference': n_true_marked,
        'slice_recall': len(hits) / len(planes),
        'slice_precision': n_true_marked / len(marked) if marked else None,
        'centroid_distance_mm': {
            'median': float(np.median(distances)) if distances else None,
            'max': float(np.max(distances)) if distances else None,
            'n': len(distances)},
        'tolerance_mm': tolerance,
    }
