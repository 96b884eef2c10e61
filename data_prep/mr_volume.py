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

Enhanced (multi-frame) MR files are split into one image plane per frame by
``data_prep.multiframe`` (per-frame geometry and rescale from the functional
groups) and the frames go through the very same checks, ordering and gap
handling as the files of a classic series; messages name ``<file> frame <n>``.
A series may hold several multi-frame files (or a mix with single-frame files):
their planes are stacked together when they form one regular stack. A
multi-frame file without functional groups (no per-frame geometry) is refused.
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
from data_prep.multiframe import frame_headers, frame_name, is_multiframe
from data_prep.types import DataPrepError, SeriesInfo, Volume

ORIENTATION_TOL = 1e-4  # max difference of IOP components between slices
SPACING_TOL_MM = 1e-4  # max difference of PixelSpacing between slices
DUPLICATE_TOL_MM = 1e-3  # two slices closer than this along n are duplicates
GAP_TOL = 0.10  # max deviation of gap / median gap from a whole number
MAX_MISSING_SLICES = 1  # consecutive missing slices filled by interpolation
OBLIQUE_WARN_DEG = 1.0  # axes further than this from the LPS axes are reported


@dataclass
class MrSeries:
    """A loaded MR series; ``files``/``sop_instance_uids``/``frame_numbers`` are in
    slice (k) order, one entry per image plane read.

    ``slice_indices[n]`` is the slice k of ``volume`` read from ``files[n]``
    (frame ``frame_numbers[n]`` of it, counted from 1, for a multi-frame file;
    0 for a single-frame file, whose own SOPInstanceUID is
    ``sop_instance_uids[n]``; the frames of a multi-frame file share its
    SOPInstanceUID); slices of ``volume`` no plane maps to were missing and are
    interpolated (``filled_slices``).
    """

    volume: Volume  # float32 [k, j, i], rescaled intensities
    files: tuple[Path, ...]
    sop_instance_uids: tuple[str, ...]
    orientation: tuple[float, ...]  # ImageOrientationPatient of the series (6)
    slice_indices: tuple[int, ...] = ()  # () = 0, 1, ... (no missing slice)
    warnings: list[str] = field(default_factory=list)
    frame_numbers: tuple[int, ...] = ()  # () = all single-frame files

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
    planes = _planes(datasets, paths, pid, warnings)
    _check_consistent(planes, pid)
    first = planes[0]
    axes = slice_axes(_floats(first.header, 'ImageOrientationPatient', first.name(pid), pid),
                      first.path, pid)
    positions = np.array([_floats(p.header, 'ImagePositionPatient', p.name(pid), pid)
                          for p in planes])
    order = np.argsort(positions @ axes[:, 2], kind='stable')
    planes = [planes[k] for k in order]
    row_mm, col_mm = _floats(planes[0].header, 'PixelSpacing', planes[0].name(pid), pid)
    indices, dz = _slice_lattice(positions[order], axes, [p.name(pid) for p in planes], pid,
                                 planes[0].header, warnings,
                                 shear_tol_mm=0.01 + 0.1 * min(row_mm, col_mm))
    array = _fill_missing(_pixel_stack(planes, pid), indices)
    angle = oblique_angle_deg(axes)
    if angle > OBLIQUE_WARN_DEG:
        warnings.append(f'oblique series ({angle:.1f} degrees off the patient axes): resampled '
                        'to the axial grid')
    volume = Volume(array=array, spacing=(col_mm, row_mm, dz),
                    origin=tuple(float(v) for v in positions[order[0]]), direction=axes)
    return MrSeries(volume=volume, files=tuple(p.path for p in planes),
                    sop_instance_uids=tuple(str(p.header.SOPInstanceUID) for p in planes),
                    orientation=tuple(float(v) for v in planes[0].header.ImageOrientationPatient),
                    slice_indices=tuple(int(k) for k in indices), warnings=warnings,
                    frame_numbers=tuple(p.frame for p in planes))


@dataclass(frozen=True)
class _Plane:
    """One image plane of a series: a single-frame file, or one frame of a multi-frame file."""

    header: Dataset  # geometry, size, rescale: the file's dataset, or the frame's header
    source: Dataset  # the file's dataset (pixel data, transfer syntax)
    path: Path
    frame: int = 0  # frame number (from 1) in a multi-frame file; 0 = single-frame file

    def name(self, patient_id: str) -> str:
        """The file (and frame) as messages name it."""
        if self.frame:
            return frame_name(self.path, patient_id, self.frame)
        return display_name(self.path, patient_id)


def _planes(datasets: list[Dataset], files: tuple[Path, ...], pid: str,
            warnings: list[str]) -> list[_Plane]:
    """Every image plane of the files: a single-frame file as it is, a multi-frame
    file split into its frames (``multiframe.frame_headers``)."""
    planes = []
    for ds, path in zip(datasets, files):
        if is_multiframe(ds):
            planes += [_Plane(header, ds, path, n)
                       for n, header in enumerate(frame_headers(ds, path, pid, warnings), 1)]
        else:
            planes.append(_Plane(ds, ds, path))
    return planes


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


def _floats(ds: Dataset, keyword: str, name: str, patient_id: str) -> np.ndarray:
    """A numeric multi-valued attribute as a float array; raise if absent/invalid.

    name: the file (and frame) holding ``ds``, as messages name it.
    """
    try:
        return np.array([float(v) for v in ds[keyword].value], dtype=float)
    except (KeyError, TypeError, ValueError) as err:
        raise DataPrepError(f'patient {patient_id}: file {name} has no valid {keyword}') from err


def _check_consistent(planes: list[_Plane], pid: str) -> None:
    """All planes: grey, same Rows/Columns/PixelSpacing/orientation; no multi-frame
    file without functional groups.

    The odd one out is named: planes are compared with the most common layout.
    """
    layouts = [_layout(plane.header, plane.name(pid), pid) for plane in planes]
    keys = [(rows, cols, tuple(np.round(np.r_[iop, spacing], 3)))
            for rows, cols, iop, spacing in layouts]
    rows0, cols0, iop0, spacing0 = layouts[keys.index(Counter(keys).most_common(1)[0][0])]
    for plane, (rows, cols, iop, spacing) in zip(planes, layouts):
        ds = plane.header
        name = f'patient {pid}: file {plane.name(pid)}'
        if int(ds.get('NumberOfFrames', 1) or 1) != 1:
            raise DataPrepError(f'{name}: multi-frame MR image without functional groups (no '
                                'per-frame geometry) is not supported')
        if int(ds.get('SamplesPerPixel', 1) or 1) != 1:
            raise DataPrepError(f'{name}: colour MR images are not supported')
        if (rows, cols) != (rows0, cols0):
            raise DataPrepError(f'{name}: {rows}x{cols} pixels differ from {rows0}x{cols0} of '
                                'the rest of the series')
        if np.abs(iop - iop0).max() > ORIENTATION_TOL:
            raise DataPrepError(f'{name}: ImageOrientationPatient differs from the rest of '
                                'the series (several orientations in one series?)')
        if np.abs(spacing - spacing0).max() > SPACING_TOL_MM:
            raise DataPrepError(f'{name}: PixelSpacing differs from the rest of the series')


def _layout(ds: Dataset, name: str, pid: str) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(Rows, Columns, ImageOrientationPatient, PixelSpacing) of one plane."""
    return (int(ds.get('Rows') or 0), int(ds.get('Columns') or 0),
            _floats(ds, 'ImageOrientationPatient', name, pid),
            _floats(ds, 'PixelSpacing', name, pid))


def _slice_lattice(positions: np.ndarray, axes: np.ndarray, names: list[str], pid: str,
                   first: Dataset, warnings: list[str],
                   shear_tol_mm: float) -> tuple[np.ndarray, float]:
    """(slice index k of each sorted position, slice spacing in mm).

    names: the file (and frame) of each position, for messages.

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
        raise DataPrepError(f'patient {pid}: file {names[k]} is shifted '
                            f'{sideways[k]:.2f} mm in-plane from the first slice (sheared stack)')
    gaps = np.diff(along)
    between = [f'{names[k]} and {names[k + 1]}' for k in range(len(gaps))]
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


# a copy repeats these (the geometry of a single-frame or of a multi-frame file)
_COPY_KEYWORDS = ('PixelData', 'ImagePositionPatient', 'NumberOfFrames',
                  'PerFrameFunctionalGroupsSequence', 'SharedFunctionalGroupsSequence')


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
        if any(ds.get(keyword) != first.get(keyword) for keyword in _COPY_KEYWORDS):
            raise DataPrepError(f'patient {pid}: files {names} are different images with the '
                                'same SOPInstanceUID')
        warnings.append(f'files {names} are copies of one image; the copy is ignored')
    return [datasets[n] for n in keep], tuple(files[n] for n in keep)


def _pixel_stack(planes: list[_Plane], pid: str) -> np.ndarray:
    """Rescaled float32 [n, j, i] pixels of ``planes``, in their order.

    A multi-frame file is decoded once (pydicom gives frames x rows x columns);
    each frame is rescaled with its own header's RescaleSlope/Intercept.
    """
    decoded: dict[int, np.ndarray] = {}
    slices = []
    for plane in planes:
        if id(plane.source) not in decoded:
            decoded[id(plane.source)] = _decoded(plane.source, plane.path, pid)
        raw = decoded[id(plane.source)][max(plane.frame - 1, 0)]
        header = plane.header
        slope = float(header.get('RescaleSlope', 1) or 1)
        intercept = float(header.get('RescaleIntercept', 0) or 0)
        slices.append((raw.astype(np.float64) * slope + intercept).astype(np.float32))
    return np.stack(slices)


def _decoded(ds: Dataset, path: Path, pid: str) -> np.ndarray:
    """Stored (not rescaled) pixels of one file, [frames, j, i] (signed data handled by
    pydicom).

    Compressed pixel data (JPEG, JPEG-LS, JPEG 2000, RLE, deflate) is decoded by
    pydicom's plugins, installed as dependencies (pyproject.toml). A syntax that
    cannot be decoded raises DataPrepError naming patient, file and syntax.
    """
    try:
        raw = ds.pixel_array
    except Exception as err:
        raise DataPrepError(f'patient {pid}: cannot decode the pixels of file '
                            f'{display_name(path, pid)}, {_syntax_problem(ds, err)}') from err
    n_frames = int(ds.get('NumberOfFrames', 1) or 1) if is_multiframe(ds) else 1
    expected = (n_frames, int(ds.Rows), int(ds.Columns))
    if raw.size != np.prod(expected) or raw.shape[-2:] != expected[1:]:
        shape = expected[1:] if n_frames == 1 else expected
        raise DataPrepError(f'patient {pid}: file {display_name(path, pid)} has pixel data of '
                            f'shape {raw.shape}, expected {shape}')
    return raw.reshape(expected)


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
