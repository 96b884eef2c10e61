"""Load one MR series into a Volume with geometry taken from the DICOM headers.

Slices are ordered by their position along the slice normal
n = row direction x column direction (ImageOrientationPatient first triple x
second triple), never by file name or InstanceNumber. The slice spacing comes
from those positions, not from SliceThickness (which may differ from the
spacing when there are gaps or overlaps).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from data_prep.discover import display_name
from data_prep.types import DataPrepError, SeriesInfo, Volume

ORIENTATION_TOL = 1e-4  # max difference of IOP components between slices
SPACING_TOL_MM = 1e-4  # max difference of PixelSpacing between slices
DUPLICATE_TOL_MM = 1e-3  # two slices closer than this along n are duplicates
GAP_TOL = 0.10  # max relative deviation of a slice gap from the median gap


@dataclass
class MrSeries:
    """A loaded MR series; ``files``/``sop_instance_uids`` are in slice (k) order."""

    volume: Volume  # float32 [k, j, i], rescaled intensities
    files: tuple[Path, ...]
    sop_instance_uids: tuple[str, ...]
    orientation: tuple[float, ...]  # ImageOrientationPatient of the series (6)
    warnings: list[str] = field(default_factory=list)


def load_mr_volume(series: SeriesInfo) -> Volume:
    """The float32 [k, j, i] volume of an MR series (see ``load_mr_series``)."""
    return load_mr_series(series).volume


def load_mr_series(series: SeriesInfo) -> MrSeries:
    """Read pixels + geometry of ``series``; raise DataPrepError on inconsistent input.

    spacing = (PixelSpacing[1], PixelSpacing[0], slice gap) mm -- DICOM
    PixelSpacing is [row spacing (between rows, along j), column spacing (along i)];
    direction columns = (IOP[0:3], IOP[3:6], n); origin = ImagePositionPatient of
    the first slice along n.
    """
    pid = series.patient_id
    datasets = [_read_dataset(path, pid) for path in series.files]
    _check_consistent(datasets, series.files, pid)
    axes = slice_axes(_floats(datasets[0], 'ImageOrientationPatient', series.files[0], pid),
                      series.files[0], pid)
    positions = np.array([_floats(ds, 'ImagePositionPatient', path, pid)
                          for ds, path in zip(datasets, series.files)])
    order = np.argsort(positions @ axes[:, 2], kind='stable')
    files = tuple(series.files[k] for k in order)
    warnings: list[str] = []
    row_mm, col_mm = _floats(datasets[0], 'PixelSpacing', files[0], pid)
    dz = _slice_spacing(positions[order], axes, files, pid, datasets[order[0]], warnings,
                        shear_tol_mm=0.01 + 0.1 * min(row_mm, col_mm))
    array = np.stack([_pixels(datasets[k], series.files[k], pid) for k in order])
    volume = Volume(array=array, spacing=(col_mm, row_mm, dz),
                    origin=tuple(float(v) for v in positions[order[0]]), direction=axes)
    return MrSeries(volume=volume, files=files,
                    sop_instance_uids=tuple(str(datasets[k].SOPInstanceUID) for k in order),
                    orientation=tuple(float(v) for v in datasets[0].ImageOrientationPatient),
                    warnings=warnings)


def slice_axes(orientation: np.ndarray, path: Path, patient_id: str) -> np.ndarray:
    """3x3 orthonormal matrix, columns = row direction, column direction, normal (LPS).

    The IOP vectors are stored as rounded decimals; they are re-orthonormalised
    after checking they are unit length and orthogonal to 1e-3.
    """
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    if (abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3
            or abs(row @ col) > 1e-3):
        raise DataPrepError(f'patient {patient_id}: file {display_name(path, patient_id)} has a '
                            f'non-orthonormal ImageOrientationPatient {list(orientation)}')
    row /= np.linalg.norm(row)
    col -= (col @ row) * row
    col /= np.linalg.norm(col)
    return np.column_stack([row, col, np.cross(row, col)])


def _read_dataset(path: Path, patient_id: str) -> Dataset:
    try:
        return pydicom.dcmread(path, force=True)
    except Exception as err:
        raise DataPrepError(f'patient {patient_id}: cannot read DICOM file '
                            f'{display_name(path, patient_id)} ({err})') from err


def _floats(ds: Dataset, keyword: str, path: Path, patient_id: str) -> np.ndarray:
    """A numeric multi-valued attribute as a float array; raise if absent/invalid."""
    try:
        return np.array([float(v) for v in ds[keyword].value], dtype=float)
    except (KeyError, TypeError, ValueError) as err:
        raise DataPrepError(f'patient {patient_id}: file {display_name(path, patient_id)} has no '
                            f'valid {keyword}') from err


def _check_consistent(datasets: list[Dataset], files: tuple[Path, ...], pid: str) -> None:
    """All slices: single frame, grey, same Rows/Columns/PixelSpacing/orientation.

    The odd one out is named: slices are compared with the most common layout.
    """
    layouts = [_layout(ds, path, pid) for ds, path in zip(datasets, files)]
    keys = [(rows, cols, tuple(np.round(np.r_[iop, spacing], 3)))
            for rows, cols, iop, spacing in layouts]
    rows0, cols0, iop0, spacing0 = layouts[keys.index(Counter(keys).most_common(1)[0][0])]
    for ds, path, (rows, cols, iop, spacing) in zip(datasets, files, layouts):
        name = f'patient {pid}: file {display_name(path, pid)}'
        if int(ds.get('NumberOfFrames', 1) or 1) != 1 or int(ds.get('SamplesPerPixel', 1)) != 1:
            raise DataPrepError(f'{name}: multi-frame or colour MR images are not supported')
        if (rows, cols) != (rows0, cols0):
            raise DataPrepError(f'{name}: {rows}x{cols} pixels differ from {rows0}x{cols0} of '
                                'the rest of the series')
        if np.abs(iop - iop0).max() > ORIENTATION_TOL:
            raise DataPrepError(f'{name}: ImageOrientationPatient differs from the rest of '
                                'the series (several orientations in one series?)')
        if np.abs(spacing - spacing0).max() > SPACING_TOL_MM:
            raise DataPrepError(f'{name}: PixelSpacing differs from the rest of the series')


def _layout(ds: Dataset, path: Path, pid: str) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(Rows, Columns, ImageOrientationPatient, PixelSpacing) of one slice."""
    return (int(ds.get('Rows') or 0), int(ds.get('Columns') or 0),
            _floats(ds, 'ImageOrientationPatient', path, pid),
            _floats(ds, 'PixelSpacing', path, pid))


def _slice_spacing(positions: np.ndarray, axes: np.ndarray, files: tuple[Path, ...], pid: str,
                   first: Dataset, warnings: list[str], shear_tol_mm: float) -> float:
    """Mean gap (mm) between sorted slice positions; raise on duplicates/irregular gaps.

    Also raise when the slice positions do not lie on one line along the normal
    (in-plane shift > ``shear_tol_mm``): such a stack is not a regular grid.
    """
    if len(positions) == 1:
        dz = float(first.get('SpacingBetweenSlices') or first.get('SliceThickness') or 1.0)
        warnings.append(f'single-slice series: slice spacing {dz:g} mm taken from the header')
        return dz
    offsets = positions - positions[0]
    along = offsets @ axes[:, 2]
    sideways = np.linalg.norm(offsets - np.outer(along, axes[:, 2]), axis=1)
    if sideways.max() > shear_tol_mm:
        k = int(sideways.argmax())
        raise DataPrepError(f'patient {pid}: file {display_name(files[k], pid)} is shifted '
                            f'{sideways[k]:.2f} mm in-plane from the first slice (sheared stack)')
    gaps = np.diff(along)
    between = [f'{display_name(files[k], pid)} and {display_name(files[k + 1], pid)}'
               for k in range(len(gaps))]
    if (gaps < DUPLICATE_TOL_MM).any():
        k = int(np.argmax(gaps < DUPLICATE_TOL_MM))
        raise DataPrepError(f'patient {pid}: files {between[k]} have the same slice position')
    median = float(np.median(gaps))
    deviation = np.abs(gaps - median)
    if deviation.max() > GAP_TOL * median:
        k = int(deviation.argmax())
        raise DataPrepError(f'patient {pid}: irregular slice gap of {gaps[k]:.3f} mm (median '
                            f'{median:.3f} mm) between files {between[k]}')
    return float(along[-1] / (len(along) - 1))


def _pixels(ds: Dataset, path: Path, pid: str) -> np.ndarray:
    """Rescaled float32 [j, i] pixels (signed data handled by pydicom)."""
    try:
        raw = ds.pixel_array
    except Exception as err:
        raise DataPrepError(f'patient {pid}: cannot decode the pixels of '
                            f'{display_name(path, pid)} ({err})') from err
    if raw.shape != (int(ds.Rows), int(ds.Columns)):
        raise DataPrepError(f'patient {pid}: file {display_name(path, pid)} has pixel data of '
                            f'shape {raw.shape}, expected ({ds.Rows}, {ds.Columns})')
    slope = float(ds.get('RescaleSlope', 1) or 1)
    intercept = float(ds.get('RescaleIntercept', 0) or 0)
    return (raw.astype(np.float64) * slope + intercept).astype(np.float32)
