"""Put contours drawn on one MR series onto another series of the same frame of reference.

Both series share a FrameOfReferenceUID, so the contours' patient coordinates
(LPS mm) are valid on either grid. Two ways, chosen by geometry:

* every contour lies on a slice plane of the target series (within
  ``rasterize.PLANE_WARN`` slice spacings) and inside its image: the contours
  are rasterised on the target grid directly (``rasterize.class_masks``), which
  gives exactly the masks of an RTSTRUCT drawn on the target;
* otherwise (other slice positions, thickness or orientation): the masks
  rasterised on the series the contours were drawn on are resampled onto the
  target grid by linear interpolation (SimpleITK, voxel centres in LPS mm),
  giving float masks in 0..1 that are thresholded at 0.5 after the final
  resampling, like every mask (``resample.resample_to_slices``). What falls
  outside the target's field of view is lost, and reported.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from data_prep.rasterize import PLANE_WARN
from data_prep.resample import to_sitk
from data_prep.rtstruct import StructureSet
from data_prep.types import Volume

LOST_WARN = 0.01  # share of a class's volume outside the target series worth a warning


def contours_on_slice_planes(structure: StructureSet, grid: Volume) -> bool:
    """True when every contour lies within ``PLANE_WARN`` slice spacings of one slice
    plane of ``grid`` and all its points inside the image (outer pixel edges)."""
    nk, nj, ni = grid.array.shape
    for rois in structure.rois.values():
        for contours in rois.values():
            for contour in contours:
                index = grid.lps_to_index(contour)
                k = np.floor(index[:, 2].mean() + 0.5)
                if (np.abs(index[:, 2] - k).max() > PLANE_WARN or not 0 <= k < nk
                        or (index[:, :2] < -0.5).any() or (index[:, 0] > ni - 0.5).any()
                        or (index[:, 1] > nj - 0.5).any()):
                    return False
    return True


def resample_mask(mask: np.ndarray, source: Volume, target: Volume) -> np.ndarray:
    """float32 [k, j, i] on ``target``'s grid: ``mask`` (on ``source``'s grid, bool or
    0..1) linearly interpolated at the target voxel centres; 0 outside ``source``."""
    reference = sitk.Image([int(n) for n in target.array.shape[::-1]], sitk.sitkUInt8)
    reference.SetSpacing(tuple(float(s) for s in target.spacing))
    reference.SetOrigin(tuple(float(o) for o in target.origin))
    reference.SetDirection(tuple(float(d) for d in np.asarray(target.direction).ravel()))
    out = sitk.Resample(to_sitk(mask.astype(np.float32), source), reference,
                        sitk.Transform(3, sitk.sitkIdentity), sitk.sitkLinear, 0.0,
                        sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def resample_masks(masks: dict[str, np.ndarray], source: Volume, target: Volume, *,
                   context: str = '', warnings_out: list[str] | None = None
                   ) -> dict[str, np.ndarray]:
    """class -> float32 mask on ``target`` (``resample_mask``). A class more than
    ``LOST_WARN`` of whose source voxels lie outside the target's field of view
    (outer voxel edges) is reported in ``warnings_out``, starting with ``context``."""
    out = {}
    for cls, mask in masks.items():
        out[cls] = resample_mask(mask, source, target)
        lost = outside_fraction(mask, source, target)
        if warnings_out is not None and lost > LOST_WARN:
            warnings_out.append(f'{context}: {100 * lost:.0f}% of the {cls} volume lies '
                                'outside this series and is lost')
    return out


def outside_fraction(mask: np.ndarray, source: Volume, target: Volume) -> float:
    """Share (0..1, weighted by the mask values) of ``mask``'s non-zero voxels on
    ``source`` whose centres lie outside ``target``'s voxels; 0 for an empty mask."""
    kji = np.argwhere(mask)
    if not len(kji):
        return 0.0
    weights = np.asarray(mask, dtype=np.float64)[tuple(kji.T)]
    index = target.lps_to_index(source.index_to_lps(kji[:, ::-1].astype(float)))
    size = np.asarray(target.array.shape[::-1], dtype=float)
    outside = ((index < -0.5) | (index > size - 0.5)).any(axis=1)
    return float(weights[outside].sum() / weights.sum())
