"""Detection masks on the converter's 1 mm axial grid -> masks and contours on the input
series' own image planes (any orientation), in patient coordinates (LPS mm).

predict detects on canonical axial slices 1 mm apart (``PreparedSlice``: pixel
(u, v) of slice m has its centre at LPS ``x = origin_mm[0] + u * spacing_mm[0]``,
``y = origin_mm[1] + v * spacing_mm[1]``, ``z = z_mm``). A planning system wants
contours on the images of the input series instead, which may be 3-5 mm apart,
reversed, coronal or oblique. Three steps, pure geometry (no I/O):

1. :func:`detection_volume` stacks the per-slice masks of one class into a
   :class:`data_prep.types.Volume` on that 1 mm grid (identity direction,
   cropped to the detections plus one empty voxel all round, so it stays small).
2. :func:`sample_on_plane` samples that volume at the centres of the pixels of
   one native image (``NativePlane``, from its ImagePositionPatient,
   ImageOrientationPatient and PixelSpacing) by trilinear interpolation and keeps
   the pixels >= 0.5 -- the rule :mod:`data_prep.resample` uses for masks in the
   other direction.
   (:func:`native_masks`: those masks for every image, what the DICOM SEG export
   stores.)
3. :func:`plane_contours` outlines that native mask along its pixel edges
   (:func:`even_odd_outlines`: outer outlines,
   holes as nested outlines) and maps the outline points to LPS with the
   image's own geometry, so every point lies exactly in the image plane and the
   converter's pixel-centre rasteriser gives back exactly the native mask.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
from scipy import ndimage

from data_prep.coco_writer import edge_polygon
from data_prep.rasterize import polygon_mask
from data_prep.types import PreparedSlice, Volume

THRESHOLD = 0.5  # interpolated mask value from which a native pixel is inside
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_MAX_PASSES = 64  # nesting depth of holes in holes; real masks need 1-3
_Z_TOL_MM = 1e-3  # mm: output slices must be this regularly spaced


@dataclass(frozen=True)
class NativePlane:
    """The pixel grid of one image of the input series (DICOM Image Plane module).

    Pixel (i, j) = (column, row) has its centre at
    ``position + i * spacing[0] * axes[:, 0] + j * spacing[1] * axes[:, 1]`` (LPS mm).
    """

    sop_class_uid: str
    sop_instance_uid: str
    position: np.ndarray  # ImagePositionPatient: LPS mm of the centre of pixel (0, 0)
    axes: np.ndarray  # 3x3, columns: row direction (i), column direction (j), normal (LPS)
    spacing: tuple[float, float]  # mm between columns (along i), between rows (along j)
    shape: tuple[int, int]  # (Rows, Columns)
    frame_number: int = 0  # frame (from 1) of a multi-frame file; 0 = a single-frame file

    def pixel_to_lps(self, ij: np.ndarray) -> np.ndarray:
        """N x 2 continuous (i, j) px -> N x 3 LPS mm in the image plane."""
        ij = np.atleast_2d(np.asarray(ij, dtype=float))
        return self.position + (ij * np.asarray(self.spacing)) @ self.axes[:, :2].T

    def lps_to_pixel(self, xyz: np.ndarray) -> np.ndarray:
        """N x 3 LPS mm -> N x 3 (i px, j px, signed distance from the plane in mm)."""
        rel = np.atleast_2d(np.asarray(xyz, dtype=float)) - self.position
        local = rel @ self.axes
        return local / np.array([self.spacing[0], self.spacing[1], 1.0])


def detection_volume(slices: Sequence[PreparedSlice],
                     masks: Mapping[int, np.ndarray]) -> Volume | None:
    """The masks of one class, ``slice index -> bool (H, W)``, as a bool 1 mm Volume.

    ``slices`` are predict's prepared slices (all of them, any order); a slice
    missing from ``masks`` is empty. The volume is cropped to the non-empty
    voxels plus one empty voxel on every side (so that interpolation outside it
    is 0, as in the full grid). None when every mask is empty.
    """
    hits = sorted(i for i, m in masks.items() if np.asarray(m).any())
    if not hits:
        return None
    ordered = sorted(slices, key=lambda s: s.index)
    first = ordered[0]
    z = np.array([s.z_mm for s in ordered])
    dz = float(z[1] - z[0]) if len(z) > 1 else 1.0
    if len(z) > 1 and (dz <= 0 or np.abs(np.diff(z) - dz).max() > _Z_TOL_MM):
        raise ValueError('prepared slices are not evenly spaced along z in index order')
    for s in ordered:
        if s.origin_mm != first.origin_mm or s.spacing_mm != first.spacing_mm:
            raise ValueError(f'prepared slice {s.index} has another in-plane grid than slice '
                             f'{first.index}')
    stack = {i: np.asarray(masks[i], dtype=bool) for i in hits}
    for i, mask in stack.items():
        if mask.shape != first.image.shape:
            raise ValueError(f'mask of slice {i} has shape {mask.shape}, the slices '
                             f'{first.image.shape}')
    rows = np.flatnonzero(np.any([m.any(axis=1) for m in stack.values()], axis=0))
    cols = np.flatnonzero(np.any([m.any(axis=0) for m in stack.values()], axis=0))
    position = {s.index: n for n, s in enumerate(ordered)}
    j0, j1, i0, i1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    k0, k1 = position[hits[0]], position[hits[-1]] + 1
    array = np.zeros((k1 - k0, j1 - j0, i1 - i0), dtype=bool)
    for i in hits:
        array[position[i] - k0] = stack[i][j0:j1, i0:i1]
    array = np.pad(array, 1)  # one empty voxel all round (may reach past the slices' grid)
    (sx, sy), (ox, oy) = first.spacing_mm, first.origin_mm
    origin = (ox + (i0 - 1) * sx, oy + (j0 - 1) * sy, float(z[0]) + (k0 - 1) * dz)
    return Volume(array=array, spacing=(float(sx), float(sy), dz), origin=origin)


def sample_on_plane(volume: Volume, plane: NativePlane) -> np.ndarray | None:
    """bool (Rows, Columns) mask of ``volume`` (bool or 0..1 float) on one native image:
    trilinear interpolation at the pixel centres, >= 0.5; None when the image plane
    misses the volume's non-zero region or no pixel reaches 0.5."""
    nk, nj, ni = volume.array.shape
    corners = volume.index_to_lps(np.array(list(product((0, ni - 1), (0, nj - 1),
                                                        (0, nk - 1)))))
    local = plane.lps_to_pixel(corners)
    if local[:, 2].min() > 0 or local[:, 2].max() < 0:
        return None  # the volume lies on one side of the plane
    rows, cols = plane.shape
    lo = np.clip(np.floor(local[:, :2].min(axis=0)), 0, (cols - 1, rows - 1)).astype(int)
    hi = np.clip(np.ceil(local[:, :2].max(axis=0)), 0, (cols - 1, rows - 1)).astype(int)
    if np.any(local[:, :2].max(axis=0) < 0) or local[:, 0].min() > cols - 1 \
            or local[:, 1].min() > rows - 1:
        return None
    jj, ii = np.mgrid[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    centres = plane.pixel_to_lps(np.column_stack([ii.ravel(), jj.ravel()]))
    kji = volume.lps_to_index(centres)[:, ::-1].T
    array = volume.array if volume.array.dtype == np.float32 else volume.array.astype(np.float32)
    values = ndimage.map_coordinates(array, kji, order=1, mode='constant', cval=0.0)
    inside = values.reshape(ii.shape) >= THRESHOLD
    if not inside.any():
        return None
    mask = np.zeros(plane.shape, dtype=bool)
    mask[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = inside
    return mask


def plane_contours(mask: np.ndarray, plane: NativePlane) -> list[np.ndarray]:
    """Closed contours (each N x 3 LPS mm, in the plane) whose even-odd / nesting
    reading by the pixel-centre rule is exactly ``mask`` (bool (Rows, Columns))."""
    return [plane.pixel_to_lps(ij) for ij in even_odd_outlines(np.asarray(mask, dtype=bool))]


def native_contours(volume: Volume | None, planes: Sequence[NativePlane]
                    ) -> list[tuple[int, np.ndarray]]:
    """(index into ``planes``, N x 3 LPS contour) for every contour of ``volume`` on
    every native image it crosses, in plane order."""
    if volume is None:
        return []
    volume = Volume(array=volume.array.astype(np.float32), spacing=volume.spacing,
                    origin=volume.origin, direction=volume.direction)  # converted once
    out = []
    for k, plane in enumerate(planes):
        mask = sample_on_plane(volume, plane)
        if mask is not None:
            out += [(k, points) for points in plane_contours(mask, plane)]
    return out


def native_masks(volume: Volume | None, planes: Sequence[NativePlane]) -> np.ndarray:
    """bool (len(planes), Rows, Columns) masks of ``volume`` on each native image, in plane
    order: :func:`sample_on_plane`, the very masks :func:`native_contours` outlines
    (all False where it misses a plane, everywhere when ``volume`` is None). The
    planes must share one size."""
    shapes = {plane.shape for plane in planes}
    if len(shapes) != 1:
        raise ValueError(f'native planes of several sizes {sorted(shapes)}; expected one series')
    out = np.zeros((len(planes), *shapes.pop()), dtype=bool)
    if volume is None:
        return out
    volume = Volume(array=volume.array.astype(np.float32), spacing=volume.spacing,
                    origin=volume.origin, direction=volume.direction)  # converted once
    for k, plane in enumerate(planes):
        mask = sample_on_plane(volume, plane)
        if mask is not None:
            out[k] = mask
    return out


def even_odd_outlines(mask: np.ndarray) -> list[np.ndarray]:
    """Pixel-edge outlines (each N x 2 (column, row) px, pixel centres at integers) whose
    even-odd combination, rasterised by the pixel-centre rule, is exactly ``mask`` (bool H x W).

    Each pass outlines the 8-connected components of the pixels still wrong
    and toggles what those outlines cover, until nothing is wrong; the rule is
    :func:`data_prep.rasterize.polygon_mask`, the one the converter reads
    contours with, so the round trip is exact by construction. The outlines
    never cross: each one lies inside or outside every other (holes nested in
    their component), so the converter's nesting rule reads them as even-odd does.
    """
    drawn = np.zeros(mask.shape, dtype=bool)
    outlines: list[np.ndarray] = []
    for _ in range(_MAX_PASSES):
        wrong = mask ^ drawn
        if not wrong.any():
            return outlines
        labels, _ = ndimage.label(wrong, structure=_EIGHT_CONNECTED)
        for label, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
            component = labels[rows, cols] == label
            # edge_polygon: pixel (u, v) spans [u, u+1] x [v, v+1]; here its centre is (u, v)
            ij = np.reshape(edge_polygon(component), (-1, 2)) + (cols.start - 0.5,
                                                                 rows.start - 0.5)
            outlines.append(ij)
            drawn ^= polygon_mask(ij, mask.shape)
    raise RuntimeError(f'mask outlines did not converge in {_MAX_PASSES} passes')
