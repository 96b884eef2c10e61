"""Turn planar contours (LPS mm) into voxel masks on an image's own grid.

Pixel-centre rule: pixel (i, j) belongs to a contour iff its centre lies inside
the polygon. This keeps the mask area equal to the polygon area on average;
filling every pixel the outline touches (e.g. cv2.fillPoly) would grow each
lesion by about half a pixel per side. A centre exactly on an edge counts for
the left/top edges and not for the right/bottom ones (as in scan-line
rasterisers), so a square through pixel centres keeps its area.

Several contours of one ROI on one slice (``combine_slice_contours``):

* a contour lying inside another one is a hole (and a contour inside that
  hole an island again, and so on): the contours' nesting depth decides, as
  the even-odd rule would for properly nested contours;
* disjoint contours add up;
* overlapping or duplicated contours are MERGED (their union), where the
  even-odd rule would cancel the overlap (two copies of one contour would
  give nothing); the merge is reported in ``warnings_out`` with the slice.

"Inside" means: every vertex of the inner contour lies inside or on the outer
one (within 1e-3 px) AND the pixels it covers are a proper subset of the outer
one's. Two contours covering the same pixels are duplicates, not a hole.
Nested holes happen when a clinician draws a ring (necrotic centre) as an
outline plus an inner outline, or when a tool (mmnpc.export) writes a mask
with holes; overlaps happen when a contour is duplicated by copy/paste or
drawn in two passes.

Why not plain even-odd (XOR) or plain union (OR): DICOM RTSTRUCT has no hole
flag in CLOSED_PLANAR contours (only the rarely written internal-contour
attributes), so readers pick a rule. rt-utils
(``image_helper.get_slice_mask_from_slice_contour_data``) inverts the filled
region of each contour (XOR: "create holes where needed if contours are
stacked"), so a duplicated contour cancels itself; plastimatch's
``Rasterizer`` ORs overlapping contours by default (``xor_overlapping`` =
false), so it loses holes. Planning systems commonly read a contour drawn
inside another as a hole. The nesting rule above gives XOR's result wherever
contours are properly nested and OR's where they overlap without nesting.
Limitation: a smaller duplicate lying entirely inside a bigger, different
delineation of the same lesion on the same slice is read as a hole, as every
XOR reader would read it.

ROIs of one class are OR-ed.
"""
from __future__ import annotations

import numpy as np
from matplotlib.path import Path as PolygonPath

from data_prep.rtstruct import StructureSet
from data_prep.types import DataPrepError, Volume

PLANE_TOL = 0.5  # slice spacings: max distance of a contour point from its slice
PLANE_WARN = 0.05  # slice spacings: farther than this from its slice is worth a warning
_EDGE_NUDGE = 1e-6  # px: moves pixel centres off polygon edges, see module docstring
_ON_OUTLINE_PX = 1e-3  # px: a vertex this close to another contour lies on it


def contours_to_mask(contours: list[np.ndarray], grid: Volume, *, context: str = '',
                     warnings_out: list[str] | None = None) -> np.ndarray:
    """bool [k, j, i] mask of one ROI's contours (each N x 3 LPS mm) on ``grid``.

    Each contour goes to the slice nearest to it; DataPrepError if a point is
    farther than half a slice spacing from that slice (a tilted contour), the
    slice is outside the stack, or the contour lies entirely outside the image
    in-plane. Contours of one slice combine by :func:`combine_slice_contours`
    (nested = hole, overlapping = union). Contours more than 5 % of a slice
    spacing off their slice, parts outside the image in-plane (dropped) and
    overlapping contours merged are reported in ``warnings_out`` with their
    slices k. ``context`` (patient, file, ROI) starts every message.
    """
    mask = np.zeros(grid.array.shape, dtype=bool)
    clipped, off_plane, merged = [], [], []
    on_slice: dict[int, list[np.ndarray]] = {}
    for contour in contours:
        k, ij = contour_slice(contour, grid, context)
        if _outside(ij, mask.shape[1:]):
            _check_overlaps_image(ij, mask.shape[1:], k, context)
            clipped.append(k)
        if np.abs(grid.lps_to_index(contour)[:, 2] - k).max() > PLANE_WARN:
            off_plane.append(k)
        on_slice.setdefault(k, []).append(ij)
    for k, polygons in on_slice.items():
        mask[k], n_merged = combine_slice_contours(polygons, mask.shape[1:])
        if n_merged:
            merged.append(k)
    if warnings_out is not None:
        if merged:
            warnings_out.append(f'{context}: overlapping or duplicated contours merged (union), '
                                f'not cancelled by the even-odd rule, on slice(s) '
                                f'{sorted(merged)}')
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


def combine_slice_contours(polygons: list[np.ndarray], shape: tuple[int, int]
                           ) -> tuple[np.ndarray, int]:
    """(bool (nj, ni) mask, number of contours merged by union where XOR would differ).

    polygons: the contours of one ROI on one slice, each N x 2 continuous (i, j)
    px. Nesting depth decides (see the module docstring): depth 0 contours are
    OR-ed, depth 1 (holes) cut out, depth 2 (islands in holes) added back, ...
    The count is 0 when the result equals the even-odd rule's.
    """
    filled = [polygon_mask(ij, shape) for ij in polygons]
    if len(filled) == 1:
        return filled[0], 0
    areas = [int(f.sum()) for f in filled]
    order = sorted((n for n in range(len(filled)) if areas[n]), key=lambda n: -areas[n])
    depth: dict[int, int] = {}
    for pos, n in enumerate(order):
        depth[n] = max((depth[m] + 1 for m in order[:pos]
                        if areas[m] > areas[n] and _is_inside(polygons[n], filled[n],
                                                              polygons[m], filled[m])),
                       default=0)
    mask = np.zeros(shape, dtype=bool)
    for level in range(max(depth.values(), default=-1) + 1):
        layer = np.zeros(shape, dtype=bool)
        for n in order:
            if depth[n] == level:
                layer |= filled[n]
        mask = mask | layer if level % 2 == 0 else mask & ~layer
    even_odd = np.logical_xor.reduce(filled)
    if np.array_equal(mask, even_odd):
        return mask, 0
    overlapping = {n for pos, n in enumerate(order) for m in order[:pos]
                   if depth[n] == depth[m] and (filled[n] & filled[m]).any()}
    return mask, max(len(overlapping), 1)


def _is_inside(inner_ij: np.ndarray, inner: np.ndarray, outer_ij: np.ndarray,
               outer: np.ndarray) -> bool:
    """True when contour ``inner_ij`` is a hole of ``outer_ij``: its pixels (``inner``) are
    a proper subset of the outer ones and every vertex lies inside or on the outer contour."""
    if not (inner & ~outer).any() and (outer & ~inner).any():
        inside = PolygonPath(outer_ij).contains_points(inner_ij)
        if inside.all():
            return True
        return bool((_distance_to_outline(inner_ij[~inside], outer_ij) <= _ON_OUTLINE_PX).all())
    return False


def _distance_to_outline(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance (px) of each of N x 2 ``points`` to the closed outline ``polygon`` (M x 2)."""
    start, end = polygon, np.roll(polygon, -1, axis=0)
    edge = end - start  # M x 2
    rel = points[:, None, :] - start[None]  # N x M x 2
    length2 = np.maximum((edge ** 2).sum(axis=1), 1e-12)
    t = np.clip((rel * edge[None]).sum(axis=2) / length2, 0.0, 1.0)
    nearest = start[None] + t[..., None] * edge[None]
    return np.linalg.norm(points[:, None, :] - nearest, axis=2).min(axis=1)


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
