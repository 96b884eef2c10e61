"""Lesion regions for stage 2: fixed-size windows in millimetres around a box.

Stage 2 reads the regions stage 1 finds rather than the whole slice: a square
window of ``size_mm`` (so a lesion's size stays visible: a 30 mm node fills
half of a 60 mm window whatever the scanner's field of view) centred on a
lesion's box, resampled to ``out_px`` pixels. The box is the only input that
says where the lesion is, and it is the same kind of object from both sources:
the bounding box of a COCO annotation (contours, training and test) or a
detection box of the stage-1 detector (prediction, end-to-end evaluation), in
the slice's pixel coordinates (x1, y1, x2, y2 at pixel *edges*: pixel u spans
[u, u + 1], as COCO and MMDetection have it). One function maps both, so the
same box gives the same tensor.

Geometry. Output pixel (a, b) has its centre at
``(a + 0.5 - out_px / 2) * step`` mm right of (and b likewise below) the box
centre, ``step = size_mm / out_px``; with the slice's ``spacing_mm`` (sx, sy)
that is the source pixel-centre coordinate ``u = cu + offset / sx`` where
``cu = (x1 + x2) / 2 - 0.5``. Sampling is bilinear (``cv2.warpAffine`` with the
inverse map); beyond the slice the window reads 0, the converter's padding
value, so a lesion at the image border is cut, never shifted.

What the window keeps (``keep``):

* ``'window'``: every pixel (the lesion and its surroundings);
* ``'lesion'``: the box grown by ``margin_mm`` on each side (peri-tumoural
  margin), 0 elsewhere;
* ``'ring'``: only that margin: the grown box minus the box itself.

A lesion larger than the window is cut to it (choose ``size_mm`` above the
largest lesions: the default 64 mm holds a T4 primary's axial section in most
patients; the converter's manifest gives the extents).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np

REGION_KEEPS: tuple[str, ...] = ('window', 'lesion', 'ring')


@dataclass(frozen=True)
class RegionSpec:
    """Size, sampling and masking of a lesion window (module docstring)."""

    size_mm: float = 64.0
    out_px: int = 128
    margin_mm: float = 5.0
    keep: str = 'window'

    def __post_init__(self) -> None:
        if self.keep not in REGION_KEEPS:
            raise ValueError(f'region keep {self.keep!r} not in {REGION_KEEPS}')
        if self.size_mm <= 0 or self.out_px < 1 or self.margin_mm < 0:
            raise ValueError(f'region size_mm {self.size_mm} and out_px {self.out_px} must be '
                             f'positive, margin_mm {self.margin_mm} >= 0')

    def unmasked(self) -> 'RegionSpec':
        """The same window with ``keep='window'`` (nothing masked)."""
        return replace(self, keep='window')

    @property
    def step_mm(self) -> float:
        """mm between output pixel centres."""
        return self.size_mm / self.out_px


def _checked_box(box: Sequence[float]) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f'a region box is (x1, y1, x2, y2) with x2 >= x1, y2 >= y1; got {box}')
    return box


def window_matrix(box: Sequence[float], spacing_mm: Sequence[float],
                  spec: RegionSpec) -> np.ndarray:
    """2 x 3 affine map from output pixel (a, b) to source pixel-centre coordinates (u, v)."""
    x1, y1, x2, y2 = _checked_box(box)
    sx, sy = (float(s) for s in spacing_mm)
    if sx <= 0 or sy <= 0:
        raise ValueError(f'pixel spacing must be positive, got {spacing_mm}')
    start = 0.5 - spec.out_px / 2
    cu, cv = (x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5
    kx, ky = spec.step_mm / sx, spec.step_mm / sy
    return np.array([[kx, 0.0, cu + start * kx], [0.0, ky, cv + start * ky]])


def keep_mask(box: Sequence[float], spacing_mm: Sequence[float], spec: RegionSpec) -> np.ndarray:
    """bool (out_px, out_px): the window pixels ``spec.keep`` keeps (module docstring)."""
    n = spec.out_px
    if spec.keep == 'window':
        return np.ones((n, n), bool)
    x1, y1, x2, y2 = _checked_box(box)
    offsets = (np.arange(n) + 0.5 - n / 2) * spec.step_mm  # mm from the box centre
    half_x, half_y = (x2 - x1) * spacing_mm[0] / 2, (y2 - y1) * spacing_mm[1] / 2
    ax, ay = np.abs(offsets)[None, :], np.abs(offsets)[:, None]
    grown = (ax <= half_x + spec.margin_mm) & (ay <= half_y + spec.margin_mm)
    if spec.keep == 'lesion':
        return grown
    return grown & ~((ax <= half_x) & (ay <= half_y))


def crop_region(image: np.ndarray, box: Sequence[float], spacing_mm: Sequence[float],
                spec: RegionSpec) -> np.ndarray:
    """The window of ``image`` ((H, W) or (H, W, C), any dtype cv2 warps) around ``box``.

    Returns an array of ``image``'s dtype, (out_px, out_px[, C]); 0 beyond the
    slice and wherever ``spec.keep`` masks.
    """
    matrix = window_matrix(box, spacing_mm, spec)
    out = cv2.warpAffine(image, matrix, (spec.out_px, spec.out_px),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if spec.keep != 'window':
        mask = keep_mask(box, spacing_mm, spec)
        out[~mask] = 0
    return out


def masks_in_window(masks: dict, box: Sequence[float], spacing_mm: Sequence[float],
                    spec: RegionSpec) -> dict:
    """Each bool (H, W) mask cut like the image (the unmasked window), thresholded at 0.5."""
    window = spec.unmasked()
    return {name: crop_region(np.asarray(m, np.float32), box, spacing_mm, window) >= 0.5
            for name, m in masks.items()}


def coco_box(bbox: Sequence[float]) -> list[float]:
    """COCO ``[x, y, w, h]`` -> (x1, y1, x2, y2), the convention of detector boxes."""
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def mean_by_slice(slice_indices: Sequence[int], scores: Sequence[float]) -> dict[int, float]:
    """slice index -> mean of the scores of its regions (sorted by slice): the first step
    of a region model's patient score (``mmnpc.evaluation.patient_table``)."""
    grouped: dict[int, list[float]] = {}
    for index, score in zip(slice_indices, scores):
        grouped.setdefault(int(index), []).append(float(score))
    return {i: float(np.mean(v)) for i, v in sorted(grouped.items())}
