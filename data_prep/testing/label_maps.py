"""Build label-map files (NIfTI-1, NRRD) and lesion shapes for tests of ``mask_sources``.

The writers are independent of SimpleITK (header bytes written here, from the
format specifications), so a test reading them back with SimpleITK checks
ITK's conventions, not a round trip through ITK: NIfTI stores a RAS affine
(``srow_x/y/z``, x = patient Left->Right negated w.r.t. LPS), NRRD with
``space: left-posterior-superior`` stores LPS directly. Geometry follows
``data_prep.types``: array [k, j, i]; ``grid`` gives spacing/origin/direction.
"""
from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_prep.dicom_writer import ellipse_contour
from data_prep.types import Volume

_NIFTI_TYPES = {np.dtype(np.uint8): 2, np.dtype(np.int16): 4, np.dtype(np.int32): 8,
                np.dtype(np.float32): 16, np.dtype(np.uint16): 512}
_NRRD_TYPES = {np.dtype(np.uint8): 'uint8', np.dtype(np.int16): 'int16',
               np.dtype(np.int32): 'int32', np.dtype(np.float32): 'float',
               np.dtype(np.uint16): 'uint16'}


def write_nifti(path: Path, array: np.ndarray, grid: Volume) -> None:
    """NIfTI-1 single file (``.nii``, or gzip-compressed ``.nii.gz``), sform only (code 1).

    array: [k, j, i] (stored with i fastest, as NIfTI wants); its dtype must be
    uint8, int16, uint16, int32 or float32.
    """
    array = np.ascontiguousarray(array)
    affine = _affine(grid)
    affine[:2] *= -1  # LPS -> RAS
    header = bytearray(348)
    struct.pack_into('<i', header, 0, 348)
    dims = [3, *array.shape[::-1], 1, 1, 1, 1]
    struct.pack_into('<8h', header, 40, *dims)
    struct.pack_into('<hh', header, 70, _NIFTI_TYPES[array.dtype], array.dtype.itemsize * 8)
    struct.pack_into('<8f', header, 76, 1.0, *grid.spacing, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into('<fff', header, 108, 352.0, 1.0, 0.0)  # vox_offset, scl_slope, scl_inter
    struct.pack_into('<B', header, 123, 2)  # xyzt_units: mm
    struct.pack_into('<hh', header, 252, 0, 1)  # qform_code 0, sform_code 1 (scanner)
    struct.pack_into('<12f', header, 280, *affine[:3].ravel())
    header[344:348] = b'n+1\0'
    data = bytes(header) + b'\0' * 4 + array.astype(array.dtype.newbyteorder('<')).tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith('.gz') else data)


def write_nrrd(path: Path, array: np.ndarray, grid: Volume) -> None:
    """NRRD in LPS space: attached (``.nrrd``) or detached header (``.nhdr`` + ``.raw``)."""
    array = np.ascontiguousarray(array)
    affine = _affine(grid)
    directions = ' '.join('(' + ','.join(f'{v:.10g}' for v in affine[:3, c]) + ')'
                          for c in range(3))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = array.astype(array.dtype.newbyteorder('<')).tobytes()
    lines = ['NRRD0004', f'type: {_NRRD_TYPES[array.dtype]}', 'dimension: 3',
             'space: left-posterior-superior',
             'sizes: ' + ' '.join(str(n) for n in array.shape[::-1]),
             f'space directions: {directions}', 'kinds: domain domain domain',
             'endian: little', 'encoding: raw',
             'space origin: (' + ','.join(f'{v:.10g}' for v in grid.origin) + ')']
    if path.suffix == '.nhdr':
        raw = path.with_suffix('.raw')
        raw.write_bytes(data)
        path.write_text('\n'.join([*lines, f'data file: {raw.name}']) + '\n')
    else:
        path.write_bytes(('\n'.join(lines) + '\n\n').encode() + data)


def write_label_map(path: Path, array: np.ndarray, grid: Volume) -> None:
    """``write_nifti`` or ``write_nrrd`` by the suffix of ``path``."""
    name = str(path)
    (write_nrrd if name.endswith(('.nrrd', '.nhdr')) else write_nifti)(path, array, grid)


def ellipsoid_labels(grid: Volume, lesions: Sequence[tuple[Sequence[float], Sequence[float], int]],
                     dtype: type = np.uint8) -> np.ndarray:
    """[k, j, i] label array: ``value`` where a voxel centre lies inside an axis-aligned
    ellipsoid (centre LPS mm, semi-axes mm along x, y, z, value); later lesions win."""
    nk, nj, ni = grid.array.shape
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing='ij')
    lps = grid.index_to_lps(np.column_stack([ii.ravel(), jj.ravel(), kk.ravel()]))
    out = np.zeros(nk * nj * ni, dtype=dtype)
    for centre, semi, value in lesions:
        inside = (((lps - np.asarray(centre)) / np.asarray(semi)) ** 2).sum(axis=1) <= 1
        out[inside] = value
    return out.reshape(nk, nj, ni)


def ellipsoid_contours(grid: Volume, centre: Sequence[float], semi: Sequence[float],
                       n_points: int = 128) -> list[np.ndarray]:
    """Cross-sections (N x 3 LPS mm) of an axis-aligned ellipsoid with each slice plane of
    ``grid`` (whose axes must be along the patient axes), for an RTSTRUCT."""
    direction, centre, semi = np.asarray(grid.direction), np.asarray(centre), np.asarray(semi)
    normal = direction[:, 2]
    axis_n = int(np.argmax(np.abs(normal)))
    half_u, half_v = (semi[int(np.argmax(np.abs(direction[:, c])))] for c in (0, 1))
    contours = []
    for k in range(grid.array.shape[0]):
        offset = (np.asarray(grid.origin) + k * grid.spacing[2] * normal - centre) @ normal
        shrink = 1 - (offset / semi[axis_n]) ** 2
        if shrink > 0.05:
            contours.append(ellipse_contour(centre + offset * normal,
                                            (half_u * np.sqrt(shrink), half_v * np.sqrt(shrink)),
                                            n_points, plane_axes=(direction[:, 0],
                                                                  direction[:, 1])))
    return contours


def reoriented(grid: Volume, array: np.ndarray, *, flip: Sequence[int] = (),
               order: Sequence[int] = (0, 1, 2)) -> tuple[np.ndarray, Volume]:
    """The same voxels stored another way: reversed along index axes ``flip`` (0 = i,
    1 = j, 2 = k), then with new axes (i', j', k') = old axes ``order``. Returns the
    new [k', j', i'] array and its grid (same positions in LPS)."""
    direction = np.asarray(grid.direction, float).copy()
    shape_ijk = np.array(array.shape[::-1])
    corner = np.zeros(3)
    for axis in flip:
        array = np.flip(array, axis=2 - axis)
        corner[axis] = shape_ijk[axis] - 1
        direction[:, axis] *= -1
    origin = grid.index_to_lps(corner)[0]
    order = list(order)
    array = np.transpose(array, [2 - order[2], 2 - order[1], 2 - order[0]])
    spacing = tuple(float(grid.spacing[a]) for a in order)
    return np.ascontiguousarray(array), Volume(array=np.zeros(array.shape, np.float32),
                                               spacing=spacing, origin=tuple(origin),
                                               direction=direction[:, order])


def box_grid(lo_lps: Sequence[float], hi_lps: Sequence[float], spacing_mm: float) -> Volume:
    """An axis-aligned (identity direction) grid of ``spacing_mm`` voxels whose centres span
    the LPS box from ``lo_lps`` (voxel 0) towards ``hi_lps``."""
    lo, hi = np.asarray(lo_lps, float), np.asarray(hi_lps, float)
    n = np.floor((hi - lo) / spacing_mm + 1e-9).astype(int) + 1
    return Volume(array=np.zeros(tuple(n[::-1]), np.float32), spacing=(spacing_mm,) * 3,
                  origin=tuple(lo))


def _affine(grid: Volume) -> np.ndarray:
    """4 x 4 index (i, j, k) -> LPS mm."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(grid.direction, float) * np.asarray(grid.spacing, float)
    affine[:3, 3] = grid.origin
    return affine
