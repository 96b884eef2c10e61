"""Map detections on an output slice back to patient coordinates (LPS mm).

Output-slice pixel (u, v) has its centre at LPS
``x = origin_mm[0] + u * spacing_mm[0]``, ``y = origin_mm[1] + v * spacing_mm[1]``,
``z = z_mm`` (data_prep.types.PreparedSlice). MMDetection boxes use continuous
pixel coordinates in which pixel u spans [u, u + 1), so its centre is u + 0.5.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from data_prep.types import PreparedSlice
from mmnpc.inference.slice_detector import SliceDetections


def box_to_mm(box_px: Sequence[float], slc: PreparedSlice) -> list[float]:
    """x1, y1, x2, y2 of a box in continuous px -> the same box edges in LPS mm."""
    (sx, sy), (ox, oy) = slc.spacing_mm, slc.origin_mm
    x1, y1, x2, y2 = (float(v) for v in box_px)
    return [ox + (x1 - 0.5) * sx, oy + (y1 - 0.5) * sy, ox + (x2 - 0.5) * sx, oy + (y2 - 0.5) * sy]


def mask_centroid_mm(mask: np.ndarray, slc: PreparedSlice) -> list[float] | None:
    """LPS (x, y, z) mm of the mean pixel centre of ``mask``; None for an empty mask."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    (sx, sy), (ox, oy) = slc.spacing_mm, slc.origin_mm
    return [ox + float(cols.mean()) * sx, oy + float(rows.mean()) * sy, float(slc.z_mm)]


def describe_detections(dets: SliceDetections, slc: PreparedSlice,
                        classes: Sequence[str]) -> list[dict]:
    """JSON-ready records of every detection on one slice, in px and in LPS mm."""
    pixel_area_mm2 = float(slc.spacing_mm[0] * slc.spacing_mm[1])
    records = []
    for box, score, label, mask in zip(dets.boxes, dets.scores, dets.labels, dets.masks):
        records.append({
            'class': classes[int(label)],
            'score': round(float(score), 4),
            'bbox_px': [round(float(v), 1) for v in box],
            'bbox_lps_mm': [round(v, 2) for v in box_to_mm(box, slc)],
            'z_mm': float(slc.z_mm),
            'centroid_lps_mm': _rounded(mask_centroid_mm(mask, slc)),
            'mask_area_mm2': round(float(mask.sum()) * pixel_area_mm2, 1),
        })
    return records


def _rounded(values: list[float] | None) -> list[float] | None:
    return None if values is None else [round(v, 2) for v in values]
