"""Resample a native MR volume (+ class masks) to axial 1 mm, then to 512 x 512 slices.

Two steps, as in the paper's preprocessing (1 mm for every scanner):

1. SimpleITK resampling (linear) onto an axis-aligned 1 mm grid (direction =
   identity) whose in-plane field of view is a square of S whole mm, centred on
   the physical bounding box of the native voxels (their outer edges, all 8
   corners), padded with 0 outside them; z runs from the lowest to the highest
   native voxel centre (= slice centre for an axial series) in 1 mm steps.
   Intensities are then clipped to limits found in the in-volume voxels
   (``data_prep.intensity``: a low percentile, and the brightest voxel unless
   it is an outlier) and mapped to 1..255 (uint8); padding stays 0.
2. Each axial slice resized S x S -> 512 x 512 with cv2.resize (INTER_LINEAR).
   cv2 maps output pixel u to source coordinate (u + 0.5) * S / 512 - 0.5, so
   its centre lies at x_edge + (u + 0.5) * S / 512 mm (x_edge = left edge of
   the square). Hence spacing_mm = S / 512 and origin_mm = edge + spacing / 2.

Masks follow the same path as float images (linear interpolation) and are
thresholded at 0.5 once, after the second step, so that a boundary lands where
the interpolated mask crosses 0.5 without an intermediate rounding to 1 mm.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import cv2
import numpy as np
import SimpleITK as sitk

from data_prep.intensity import contour_clip_shares, scale_to_limits, volume_limits
from data_prep.options import PrepOptions
from data_prep.types import PreparedSlice, Volume

_MM_TOL = 1e-6  # mm, absorbs float noise before rounding extents to whole mm


@dataclass(frozen=True)
class CanonicalGrid:
    """The axis-aligned 1 mm grid a native volume is resampled to (LPS mm)."""

    side_mm: int  # S: the square in-plane field of view is S x S mm = S x S voxels
    x_edge: float  # LPS x of the left edge of the square (voxel 0 centre = x_edge + 0.5)
    y_edge: float  # LPS y of the top (anterior) edge
    z0: float  # LPS z of the lowest slice centre
    n_slices: int  # 1 mm apart, ascending z

    def origin(self) -> tuple[float, float, float]:
        """LPS mm of the centre of voxel (0, 0, 0)."""
        return (self.x_edge + 0.5, self.y_edge + 0.5, self.z0)

    def size(self) -> tuple[int, int, int]:
        """Voxels along (x, y, z)."""
        return (self.side_mm, self.side_mm, self.n_slices)


def voxel_bounds(volume: Volume, *, edges: bool) -> tuple[np.ndarray, np.ndarray]:
    """LPS (min xyz, max xyz) over the 8 corners of the voxel grid, in mm.

    edges=True: outer voxel edges (index -0.5 and n - 0.5); else voxel centres.
    """
    nk, nj, ni = volume.array.shape
    half = 0.5 if edges else 0.0
    corners = np.array(list(product(*[(-half, n - 1 + half) for n in (ni, nj, nk)])))
    lps = volume.index_to_lps(corners)
    return lps.min(axis=0), lps.max(axis=0)


def canonical_grid(volume: Volume) -> CanonicalGrid:
    """Square 1 mm axial grid covering ``volume`` (see module docstring)."""
    lo, hi = voxel_bounds(volume, edges=True)
    side = int(np.ceil((hi[:2] - lo[:2]).max() - _MM_TOL))
    centre = (lo[:2] + hi[:2]) / 2
    z_lo, z_hi = voxel_bounds(volume, edges=False)
    n_slices = int(np.floor(z_hi[2] - z_lo[2] + _MM_TOL)) + 1
    return CanonicalGrid(side_mm=side, x_edge=float(centre[0] - side / 2),
                         y_edge=float(centre[1] - side / 2), z0=float(z_lo[2]), n_slices=n_slices)


def resample_to_slices(volume: Volume, masks: dict[str, np.ndarray],
                       options: PrepOptions) -> list[PreparedSlice]:
    """The slices of :func:`resample_sequence`, without its intensity report."""
    return resample_sequence(volume, masks, options)[0]


def resample_sequence(volume: Volume, masks: dict[str, np.ndarray],
                      options: PrepOptions) -> tuple[list[PreparedSlice], dict]:
    """Axial uint8 slices of ``options.output_size`` px with their class masks, and
    the intensity report ``{'limits': [lower, upper], 'contour_clip_shares': {class:
    {'voxels', 'low', 'high'}}}`` (``data_prep.intensity``; measured on the 1 mm grid,
    mask >= 0.5).

    volume: native float32 [k, j, i] image; masks: class -> bool (or float in
    0..1, see ``contour_masks.interpolate_missing_masks``) [k, j, i] on the same grid.
    Returns one PreparedSlice per 1 mm, inferior to superior;
    image 0 = outside the native volume, 1..255 = intensities clipped to
    ``options.intensity_percentiles`` of the in-volume voxels.
    """
    grid = canonical_grid(volume)
    # NaN marks the 1 mm voxels whose centre lies outside the native voxels' edges
    image = _resample(volume.array.astype(np.float32), volume, grid.origin(), grid.size(), np.nan)
    inside = ~np.isnan(image)
    limits = volume_limits(image, inside, options.intensity_percentiles,
                           options.intensity_top_voxels)
    scaled = scale_to_limits(image, inside, *limits)
    inside_255 = inside.astype(np.uint8) * np.uint8(255)
    resampled_masks = {cls: _resample_mask(m, volume, grid) for cls, m in masks.items() if m.any()}
    size = options.output_size
    step = grid.side_mm / size
    origin = (grid.x_edge + 0.5 * step, grid.y_edge + 0.5 * step)
    slices = []
    inside_plane, kept = None, None
    ones = np.ones((size, size), np.uint8)  # np.maximum(x, 1) with a scalar is ~9x slower
    mask_peaks = {cls: r.max(axis=(1, 2)) for cls, r in resampled_masks.items()}
    for m in range(grid.n_slices):
        out = np.maximum(_resize(scaled[m], size), ones)
        if inside_plane is None or not np.array_equal(inside_255[m], inside_plane):
            inside_plane = inside_255[m]  # usually the same on every slice: resized once
            # 1 = in the volume, 0 = mostly padding after interpolation
            kept = (_resize(inside_plane, size) >= 128).astype(np.uint8)
        np.multiply(out, kept, out=out)  # padding -> 0
        slice_masks = {cls: _resize(r[m], size) >= 0.5
                       for cls, r in resampled_masks.items() if mask_peaks[cls][m] >= 0.5}
        slices.append(PreparedSlice(
            index=m, image=out, masks={c: v for c, v in slice_masks.items() if v.any()},
            z_mm=grid.z0 + m, spacing_mm=(step, step), origin_mm=origin))
    report = {'limits': [round(float(v), 4) for v in limits],
              'contour_clip_shares': contour_clip_shares(
                  scaled, {cls: r >= 0.5 for cls, r in resampled_masks.items()})}
    return slices, report


def to_sitk(array: np.ndarray, volume: Volume) -> sitk.Image:
    """A SimpleITK image of ``array`` [k, j, i] with ``volume``'s geometry."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in volume.spacing))
    image.SetOrigin(tuple(float(o) for o in volume.origin))
    image.SetDirection(tuple(float(d) for d in np.asarray(volume.direction).ravel()))
    return image


def _resample(array: np.ndarray, volume: Volume, origin: tuple[float, float, float],
              size: tuple[int, int, int], outside: float) -> np.ndarray:
    """float32 [z, y, x] of ``array`` (on ``volume``'s grid) linearly sampled on the
    axis-aligned 1 mm grid of ``size`` voxels (x, y, z) whose voxel 0 is centred at
    ``origin``; ``outside`` where a voxel centre lies outside the native grid."""
    identity = sitk.Transform(3, sitk.sitkIdentity)  # a linear transform: ITK's fast path
    out = sitk.Resample(to_sitk(array, volume), [int(n) for n in size], identity,
                        sitk.sitkLinear, [float(o) for o in origin], [1.0, 1.0, 1.0],
                        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], outside, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def _resample_mask(mask: np.ndarray, volume: Volume, grid: CanonicalGrid) -> np.ndarray:
    """float32 [z, y, x] of a class mask (on ``volume``'s grid) linearly sampled on ``grid``.

    The values of ``_resample`` over the whole grid, computed only in the box of
    1 mm voxels whose interpolation neighbours can include a non-zero native
    voxel; everywhere else all neighbours are 0, so the value is exactly 0. A
    lesion fills a few % of the volume, so this saves most of the mask resampling
    time. Performance only: inside the box the values can differ from a whole-grid
    resampling by float rounding of the box origin (~1e-15), far below what could
    move the 0.5 threshold.
    """
    out = np.zeros((grid.n_slices, grid.side_mm, grid.side_mm), dtype=np.float32)
    nonzero = np.argwhere(mask)  # rows (k, j, i)
    if nonzero.size == 0:
        return out
    # native continuous indices (i, j, k) within one voxel of the non-zero ones
    lows, highs = nonzero.min(axis=0)[::-1], nonzero.max(axis=0)[::-1]
    box = [(lo - 1, hi + 1) for lo, hi in zip(lows, highs)]
    lps = volume.index_to_lps(np.array(list(product(*box))))
    origin = np.array(grid.origin())  # centre of voxel 0
    shape_xyz = np.array(out.shape[::-1])
    start = np.clip(np.floor(lps.min(axis=0) - origin) - 1, 0, shape_xyz).astype(int)
    stop = np.clip(np.ceil(lps.max(axis=0) - origin) + 2, 0, shape_xyz).astype(int)
    if np.any(stop <= start):
        return out
    box_origin = tuple(float(o + s) for o, s in zip(origin, start))
    out[start[2]:stop[2], start[1]:stop[1], start[0]:stop[0]] = _resample(
        mask.astype(np.float32), volume, box_origin, tuple(stop - start), 0.0)
    return out


def _resize(plane: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(plane, (size, size), interpolation=cv2.INTER_LINEAR)
