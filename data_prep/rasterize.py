"""Turn planar contours (LPS mm) into voxel masks on an image's own grid.

Pixel-centre rule: pixel (i, j) belongs to a contour iff its centre lies inside
the polygon. This keeps the mask area equal to the polygon area on average;
filling every pixel the outline touches (e.g. cv2.fillPoly) would grow each
lesion by about half a pixel per side. A centre exactly on an edge counts for
the left/top edges and not for the right/bottom ones (as in scan-line
rasterisers), so a square through pixel centres keeps its area.

Contours of one ROI on one slice combine by even-odd (XOR): a contour inside
another is a hole, disjoint contours are a union. ROIs of one class are OR-ed.
"""
from __future__ import annotations

import numpy as np
from matplotlib.path import Path as PolygonPath

from data_prep.rtstruct import StructureSet
from data_prep.types import DataPrepError, Volume

PLANE_TOL = 0.5  # slice spacings: max distance of a contour point from its slice
PLANE_WARN = 0.05  # slice spacings: farther than this from its slice is worth a warning
_EDGE_NUDGE = 1e-6  # px: moves pixel centres off polygon edges, see module docstring


def contours_to_mask(contours: list[np.ndarray], grid: Volume, *, context: str = '',
                     warnings_out: list[str] | None = None) -> np.ndarray:
    """bool [k, j, i] mask of one ROI's contours (each N x 3 LPS mm) on ``grid``.

    Each contour goes to the slice nearest to it; DataPrepError if a point is
    farther than half a slice spacing from that slice (a tilted contour), the
    slice is outside the stack, or the contour lies entirely outside the image
    in-plane. Contours more than 5 % of a slice spacing off their slice, and
    parts outside the image in-plane (dropped), are reported in
    ``warnings_out``. ``context`` (patient, file, ROI) starts every message.
    """
    mask = np.zeros(grid.array.shape, dtype=bool)
    clipped, off_plane = [], []
    for contour in contours:
        k, ij = contour_slice(contour, grid, context)
        if _outside(ij, mask.shape[1:]):
            _check_overlaps_image(ij, mask.shape[1:], k, context)
            clipped.append(k)
        if np.abs(grid.lps_to_index(contour)[:, 2] - k).max() > PLANE_WARN:
            off_plane.append(k)
        mask[k] ^= polygon_mask(ij, mask.shape[1:])
    if warnings_out is not None:
        if clipped:
            warnings_out.append(f'{context}: {len(clipped)} contour(s) extend outside the '
                                f'image (slices {sorted(set(clipped))}); the outside part is '
                                'dropped')
        if off_plane:
            warnings_out.append(f'{context}: {len(off_plane)} contour(s) lie more than '
                                f'{PLANE_WARN:g} slice spacing off their slice (slices '
                                f'{sorted(set(off_plane))}); drawn on another series?')
    return mask


def class_masks(structure: StructureSet, grid: Volume, *, context: str = '',
                warnings_out: list[str] | None = None) -> dict[str, np.ndarray]:
    """class -> bool [k, j, i] mask: OR over the ROIs of the class."""
    masks = {}
    for cls, rois in structure.rois.items():
        masks[cls] = np.zeros(grid.array.shape, dtype=bool)
        for roi_name, contours in rois.items():
            masks[cls] |= contours_to_mask(contours, grid, context=f'{context}, ROI {roi_name!r}',
                                           warnings_out=warnings_out)
    return masks


def contour_slice(contour: np.ndarray, grid: Volume, context: str = '') -> tuple[int, np.ndarray]:
    """(slice index k, N x 2 continuous (i, j) pixel coordinates) of one contour."""
    index = grid.lps_to_index(contour)
    k = int(np.floor(index[:, 2].mean() + 0.5))
    off_plane = float(np.abs(index[:, 2] - k).max())
    spacing_k = grid.spacing[2]
    if off_plane > PLANE_TOL + 1e-6:
        raise DataPrepError(f'{context}: a contour lies {off_plane * spacing_k:.2f} mm off the '
                            f'nearest image slice (slice spacing {spacing_k:.2f} mm); it is not '
                            'drawn on this series\' slices')
    if not 0 <= k < grid.array.shape[0]:
        z = contour[:, 2].mean()
        raise DataPrepError(f'{context}: a contour (mean z {z:.1f} mm) lies outside the image '
                            f'stack of {grid.array.shape[0]} slices')
    return k, index[:, :2]


def polygon_mask(ij: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool (nj, ni): pixels whose centre lies inside the polygon ``ij`` (N x 2, px).

    Only the centres inside the polygon's bounding box are tested.
    """
    nj, ni = shape
    out = np.zeros(shape, dtype=bool)
    lo = np.maximum(np.ceil(ij.min(axis=0) - _EDGE_NUDGE), 0).astype(int)
    hi = np.minimum(np.floor(ij.max(axis=0)), (ni - 1, nj - 1)).astype(int)
    if np.any(hi < lo):
        return out
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
    centres = np.column_stack([ii.ravel(), jj.ravel()]) + _EDGE_NUDGE
    inside = PolygonPath(ij).contains_points(centres)
    out[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = inside.reshape(ii.shape)
    return out


def _check_overlaps_image(ij: np.ndarray, shape: tuple[int, int], k: int, context: str) -> None:
    """Raise when the polygon's bounding box misses the (nj, ni) image entirely."""
    nj, ni = shape
    lo, hi = ij.min(axis=0), ij.max(axis=0)
    if hi[0] < -0.5 or hi[1] < -0.5 or lo[0] > ni - 0.5 or lo[1] > nj - 0.5:
        raise DataPrepError(f'{context}: a contour on slice {k} lies entirely outside the '
                            f'{ni} x {nj} px image (columns {lo[0]:.0f}..{hi[0]:.0f}, rows '
                            f'{lo[1]:.0f}..{hi[1]:.0f}); drawn on another series?')


def _outside(ij: np.ndarray, shape: tuple[int, int]) -> bool:
    """True if a point lies beyond the outer pixel edges of a (nj, ni) image."""
    nj, ni = shape
    return bool((ij < -0.5).any() or (ij[:, 0] > ni - 0.5).any() or (ij[:, 1] > nj - 0.5).any())
