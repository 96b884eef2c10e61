"""Load one MR series into a Volume with geometry taken from the DICOM headers.

Slices are ordered by their position along the slice normal
n = row direction x column direction (ImageOrientationPatient first triple x
second triple), never by file name or InstanceNumber. The slice spacing comes
from those positions, not from SliceThickness (which may differ from the
spacing when there are gaps or overlaps).

Messy series, and what happens (each fallback adds a warning to the manifest):

* the same instance (SOPInstanceUID) stored twice with identical pixels: the
  copy is ignored; two *different* files with one SOPInstanceUID: error;
* two slices at one position, slices of several orientations or sizes, a
  sheared stack (gantry tilt), gaps that are not a multiple of the usual gap:
  error;
* a single missing slice (a gap of twice the usual one): the slice is filled
  by linear interpolation between its neighbours (``MrSeries.filled_slices``);
  more consecutive missing slices: error;
* an oblique series (axes more than ``OBLIQUE_WARN_DEG`` off the patient
  axes): converted (resampled to the axial grid later) with a warning.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from data_prep.discover import display_name
from data_prep.types import DataPrepError, SeriesInfo, Volume

ORIENTATION_TOL = 1e-4  # max difference of IOP components between slices
SPACING_TOL_MM = 1e-4  # max difference of PixelSpacing between slices
DUPLICATE_TOL_MM = 1e-3  # two slices closer than this along n are duplicates
GAP_TOL = 0.10  # max deviation of gap / median gap from a whole number
MAX_MISSING_SLICES = 1  # consecutive missing slices filled by interpolation
OBLIQUE_WARN_DEG = 1.0  # axes further than this from the LPS axes are reported


@dataclass
class MrSeries:
    """A loaded MR series; ``files``/``sop_instance_uids`` are in slice (k) order.

    ``slice_indices[n]`` is the slice k of ``volume`` read from ``files[n]``;
    slices of ``volume`` no file maps to were missing and are interpolated
    (``filled_slices``).
    """

    volume: Volume  # float32 [k, j, i], rescaled intensities
    files: tuple[Path, ...]
    sop_instance_uids: tuple[str, ...]
    orientation: tuple[float, ...]  # ImageOrientationPatient of the series (6)
    slice_indices: tuple[int, ...] = ()  # () = 0, 1, ... (no missing slice)
    warnings: list[str] = field(default_factory=list)

    @property
    def filled_slices(self) -> dict[int, tuple[int, int, float]]:
        """Interpolated slice k -> (k below, k above, weight of the slice above)."""
        filled = {}
        for below, above in zip(self.slice_indices, self.slice_indices[1:]):
            for k in range(below + 1, above):
                filled[k] = (below, above, (k - below) / (above - below))
        return filled


def load_mr_volume(series: SeriesInfo) -> Volume:
    """The float32 [k, j, i] volume of an MR series (see ``load_mr_series``)."""
    return load_mr_series(series).volume


def load_mr_series(series: SeriesInfo) -> MrSeries:
    """Read pixels + geometry of ``series``; raise DataPrepError on inconsistent input.

    spacing = (PixelSpacing[1], PixelSpacing[0], slice gap) mm -- DICOM
    PixelSpacing is [row spacing (between rows, along j), column spacing (along i)];
    direction columns = (IOP[0:3], IOP[3:6], n); origin = ImagePositionPatient of
    the first slice along n. See the module docstring for the fallbacks.
    """
    pid = series.patient_id
    warnings: list[str] = []
    datasets, paths = _without_identical_copies(_datasets(series), series.files, pid, warnings)
    _check_consistent(datasets, paths, pid)
    axes = slice_axes(_floats(datasets[0], 'ImageOrientationPatient', paths[0], pid),
                      paths[0], pid)
    positions = np.array([_floats(ds, 'ImagePositionPatient', path, pid)
                          for ds, path in zip(datasets, paths)])
    order = np.argsort(positions @ axes[:, 2], kind='stable')
    datasets, files = [datasets[k] for k in order], tuple(paths[k] for k in order)
    row_mm, col_mm = _floats(datasets[0], 'PixelSpacing', files[0], pid)
    indices, dz = _slice_lattice(positions[order], axes, files, pid, datasets[0], warnings,
                                 shear_tol_mm=0.01 + 0.1 * min(row_mm, col_mm))
    array = _fill_missing(np.stack([_pixels(ds, path, pid) for ds, path in zip(datasets, files)]),
                          indices)
    angle = oblique_angle_deg(axes)
    if angle > OBLIQUE_WARN_DEG:
        warnings.append(f'oblique series ({angle:.1f} degrees off the patient axes): resampled '
                        'to the axial grid')
    volume = Volume(array=array, spacing=(col_mm, row_mm, dz),
                    origin=tuple(float(v) for v in positions[order[0]]), direction=axes)
    return MrSeries(volume=volume, files=files,
                    sop_instance_uids=tuple(str(ds.SOPInstanceUID) for ds in datasets),
                    orientation=tuple(float(v) for v in datasets[0].ImageOrientationPatient),
                    slice_indices=tuple(int(k) for k in indices), warnings=warnings)


def oblique_angle_deg(axes: np.ndarray) -> float:
    """Largest angle (degrees) between a column of ``axes`` and its nearest LPS axis."""
    cosines = np.clip(np.abs(np.asarray(axes)).max(axis=0), 0.0, 1.0)
    return float(np.degrees(np.arccos(cosines)).max())


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


def _datasets(series: SeriesInfo) -> list[Dataset]:
    """The series' datasets: the ones discovery parsed of these very files, else read."""
    return [ds if ds is not None else _read_dataset(path, series.patient_id)
            for path, ds in zip(series.files, series.parsed_datasets())]


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


def _slice_lattice(positions: np.ndarray, axes: np.ndarray, files: tuple[Path, ...], pid: str,
                   first: Dataset, warnings: list[str],
                   shear_tol_mm: float) -> tuple[np.ndarray, float]:
    """(slice index k of each sorted position, slice spacing in mm).

    Consecutive positions are one usual (median) gap apart, or -- a missing
    slice, reported in ``warnings`` -- up to ``MAX_MISSING_SLICES + 1`` gaps.
    Raise on duplicates, on other irregular gaps, and when the positions do not
    lie on one line along the normal (in-plane shift > ``shear_tol_mm``): such a
    stack is not a regular grid.
    """
    if len(positions) == 1:
        dz = float(first.get('SpacingBetweenSlices') or first.get('SliceThickness') or 1.0)
        warnings.append(f'single-slice series: slice spacing {dz:g} mm taken from the header')
        return np.zeros(1, dtype=int), dz
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
    steps = np.maximum(np.rint(gaps / median), 1).astype(int)
    deviation = np.abs(gaps / median - steps)
    if deviation.max() > GAP_TOL:
        k = int(deviation.argmax())
        raise DataPrepError(f'patient {pid}: irregular slice gap of {gaps[k]:.3f} mm (median '
                            f'{median:.3f} mm) between files {between[k]}')
    if steps.max() > MAX_MISSING_SLICES + 1:
        k = int(steps.argmax())
        raise DataPrepError(f'patient {pid}: {steps[k] - 1} consecutive slices missing (gap of '
                            f'{gaps[k]:.3f} mm, median {median:.3f} mm) between files '
                            f'{between[k]}; at most {MAX_MISSING_SLICES} is interpolated')
    for k in np.flatnonzero(steps > 1):
        warnings.append(f'{steps[k] - 1} missing slice(s) filled by linear interpolation (gap '
                        f'of {gaps[k]:.3f} mm, median {median:.3f} mm, between files '
                        f'{between[k]})')
    indices = np.concatenate([[0], np.cumsum(steps)])
    return indices, float(along[-1] / indices[-1])


def _fill_missing(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """[k, j, i] stack with slice n of ``array`` at k = indices[n]; the slices in
    between interpolated linearly from their two neighbours."""
    if indices[-1] == len(indices) - 1:
        return array
    full = np.empty((int(indices[-1]) + 1, *array.shape[1:]), dtype=array.dtype)
    full[indices] = array
    for n, (below, above) in enumerate(zip(indices, indices[1:])):
        for k in range(below + 1, above):
            weight = (k - below) / (above - below)
            full[k] = (1 - weight) * array[n] + weight * array[n + 1]
    return full


def _without_identical_copies(datasets: list[Dataset], files: tuple[Path, ...], pid: str,
                              warnings: list[str]) -> tuple[list[Dataset], tuple[Path, ...]]:
    """Drop files repeating an earlier file's SOPInstanceUID with the same position and
    pixels (a copy, noted in ``warnings``); raise when such files differ."""
    kept: dict[str, int] = {}
    keep = []
    for n, ds in enumerate(datasets):
        uid = str(ds.get('SOPInstanceUID', ''))
        if uid not in kept:
            kept[uid] = n
            keep.append(n)
            continue
        first = datasets[kept[uid]]
        names = f'{display_name(files[kept[uid]], pid)} and {display_name(files[n], pid)}'
        if (ds.get('PixelData') != first.get('PixelData')
                or ds.get('ImagePositionPatient') != first.get('ImagePositionPatient')):
            raise DataPrepError(f'patient {pid}: files {names} are different images with the '
                                'same SOPInstanceUID')
        warnings.append(f'files {names} are copies of one image; the copy is ignored')
    return [datasets[n] for n in keep], tuple(files[n] for n in keep)


def _pixels(ds: Dataset, path: Path, pid: str) -> np.ndarray:
    """Rescaled float32 [j, i] pixels (signed data handled by pydicom).

    Compressed pixel data (JPEG, JPEG-LS, JPEG 2000, RLE, deflate) is decoded by
    pydicom's plugins, installed as dependencies (pyproject.toml). A syntax that
    cannot be decoded raises DataPrepError naming patient, file and syntax.
    """
    try:
        raw = ds.pixel_array
    except Exception as err:
        raise DataPrepError(f'patient {pid}: cannot decode the pixels of file '
                            f'{display_name(path, pid)}, {_syntax_problem(ds, err)}') from err
    if raw.shape != (int(ds.Rows), int(ds.Columns)):
        raise DataPrepError(f'patient {pid}: file {display_name(path, pid)} has pixel data of '
                            f'shape {raw.shape}, expected ({ds.Rows}, {ds.Columns})')
    slope = float(ds.get('RescaleSlope', 1) or 1)
    intercept = float(ds.get('RescaleIntercept', 0) or 0)
    return (raw.astype(np.float64) * slope + intercept).astype(np.float32)


def transfer_syntax_name(ds: Dataset) -> str:
    """``'JPEG-LS Lossless Image Compression' (1.2.840.10008.1.2.4.80)``, for messages."""
    uid = getattr(getattr(ds, 'file_meta', None), 'TransferSyntaxUID', None)
    if uid is None:
        return 'transfer syntax not given (no file meta information)'
    name = uid.name if uid.name != str(uid) else 'unknown'
    return f'transfer syntax {name!r} ({uid})'


def _syntax_problem(ds: Dataset, err: Exception) -> str:
    """Why the pixel data of ``ds`` could not be decoded: the syntax and what is missing."""
    syntax = transfer_syntax_name(ds)
    uid = getattr(getattr(ds, 'file_meta', None), 'TransferSyntaxUID', None)
    detail = ' '.join(str(err).split())  # pydicom's messages span lines; ours is one line
    try:
        decoder = get_decoder(uid) if uid is not None else None
    except (NotImplementedError, ValueError):
        return (f'{syntax}: not a transfer syntax pydicom can decode; re-export the series '
                f'uncompressed or in a standard syntax ({detail})')
    if decoder is not None and not decoder.is_available:
        return (f'{syntax}: no decoder for it is installed (reinstall this project\'s '
                f'dependencies: pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, '
                f'pylibjpeg-rle, pyjpegls) ({detail})')
    return f'{syntax} ({detail})'
