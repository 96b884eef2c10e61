"""Write MR image series and RT Structure Sets as DICOM files.

Building blocks for the synthetic cohort (:mod:`data_prep.synth`) and for
tests that need DICOM edge cases (reversed slice order, flipped or oblique
orientation, non-square matrices, rescale slope/intercept, signed pixels,
contours without image references, ...).

Geometry follows :mod:`data_prep.types`: ``volume`` is indexed ``[k, j, i]``
(slice, row, column) and voxel ``(i, j, k)`` lies at
``origin + direction @ (spacing * (i, j, k))`` in LPS millimetres.

Everything written is determined by the inputs and the ``rng`` passed in:
UIDs are hashed from random draws of that generator, dates and times are
fixed, so the same seed gives byte-identical files. Without ``rng`` fresh
entropy is used (unique UIDs, not reproducible).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import MRImageStorage, RTStructureSetStorage

from data_prep.dicom_write import (STUDY_COMPONENT_SOP_CLASS_UID, ds_strings, ds_value,  # noqa: F401
                                   new_rng, save_part10, uid_from_rng)

_PLANE_TOLERANCE_MM = 1e-3  # contour-to-slice-plane distance accepted as "on"

# Realistic defaults for a 3 T turbo spin echo acquisition; override any of
# them (or add e.g. ContrastBolusAgent) through ``write_mr_series(extra_tags=)``.
DEFAULT_MR_TAGS: dict[str, Any] = {
    'Manufacturer': 'SYNTHETIC',
    'ManufacturerModelName': 'PhantomScan 3T',
    'SoftwareVersions': 'mmnpc-synth 1.0',
    'StationName': 'SYNTH-MR1',
    'StudyDescription': 'MR NASOPHARYNX',
    'BodyPartExamined': 'HEADNECK',
    'PatientPosition': 'HFS',
    'ScanningSequence': ['SE'],
    'SequenceVariant': ['SK', 'SP'],
    'ScanOptions': ['PFP'],
    'MRAcquisitionType': '2D',
    'SequenceName': '*tse2d1_3',
    'RepetitionTime': 600.0,
    'EchoTime': 10.0,
    'EchoTrainLength': 3,
    'NumberOfAverages': 2.0,
    'FlipAngle': 150.0,
    'MagneticFieldStrength': 3.0,
    'ImagingFrequency': 123.25,
    'ImagedNucleus': '1H',
    'PixelBandwidth': 200.0,
    'PercentSampling': 100.0,
    'PercentPhaseFieldOfView': 100.0,
    'ReceiveCoilName': 'HeadNeck_20',
    'TransmitCoilName': 'Body',
    'InPlanePhaseEncodingDirection': 'ROW',
}


@dataclass
class PatientHeader:
    """Identifying values written into every file.

    Tests plant recognisable values here and check they never reach any
    output of the converter.
    """

    name: str = 'SYNTH^PATIENT'
    patient_id: str = 'SYN0001'
    birth_date: str = '19700101'  # YYYYMMDD
    accession: str = 'ACC0001'
    institution: str = 'Synthetic Hospital'
    study_date: str = '20200101'  # YYYYMMDD, also series/content date
    sex: str = 'O'  # 'M', 'F' or 'O'
    study_time: str = '093000'  # HHMMSS


@dataclass
class WrittenSeries:
    """What an RTSTRUCT (or a test) needs to know about a written MR series.

    All per-slice lists are in slice (k) order, i.e. the order of
    ``volume[k]``, not the order of file names or InstanceNumbers.
    """

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    sop_instance_uids: list[str]
    files: list[Path]
    slice_positions: np.ndarray  # k x 3 ImagePositionPatient, LPS mm (as written)
    direction: np.ndarray  # 3 x 3, columns = LPS unit vectors of i, j, k
    spacing: tuple[float, float, float]  # mm, (i, j, k)
    sop_class_uid: str = MRImageStorage

    @property
    def slice_normal(self) -> np.ndarray:
        """Unit normal of the image planes, row cosine x column cosine (LPS)."""
        normal = np.cross(self.direction[:, 0], self.direction[:, 1])
        return normal / np.linalg.norm(normal)


def ellipse_contour(
    center_lps: Sequence[float] | np.ndarray,
    semi_axes_mm: tuple[float, float],
    n_points: int = 64,
    angle_rad: float = 0.0,
    plane_axes: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Closed planar ellipse as an ``n_points x 3`` array of LPS mm points.

    The ellipse lies in the plane through ``center_lps`` spanned by
    ``plane_axes`` (two orthonormal LPS vectors; default: +x and +y, an axial
    plane). ``semi_axes_mm`` are along the first and second axis after a
    rotation by ``angle_rad`` within the plane. The first point is not
    repeated at the end (DICOM CLOSED_PLANAR convention).
    """
    if n_points < 3:
        raise ValueError(f'an ellipse contour needs >= 3 points, got {n_points}')
    if plane_axes is None:
        u_axis, v_axis = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    else:
        u_axis, v_axis = (np.asarray(a, dtype=float) for a in plane_axes)
    t = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)
    a = semi_axes_mm[0] * np.cos(t)
    b = semi_axes_mm[1] * np.sin(t)
    u = a * np.cos(angle_rad) - b * np.sin(angle_rad)
    v = a * np.sin(angle_rad) + b * np.cos(angle_rad)
    center = np.asarray(center_lps, dtype=float)
    return center + np.outer(u, u_axis) + np.outer(v, v_axis)


def write_mr_series(
    out_dir: Path,
    volume: np.ndarray,
    *,
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    direction: np.ndarray | None = None,
    description: str,
    patient: PatientHeader,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_number: int = 1,
    rescale: tuple[float, float] | None = None,
    signed: bool = False,
    file_names: Sequence[str] | None = None,
    instance_numbers: Sequence[int] | None = None,
    extra_tags: Mapping[str, Any] | None = None,
    rng: np.random.Generator | None = None,
) -> WrittenSeries:
    """Write ``volume`` as one single-frame MR Image Storage file per slice.

    Args:
        out_dir: folder receiving the files (created if missing).
        volume: real-valued image, shape (slices, rows, columns) = (k, j, i).
        spacing: mm between voxel centres along (i, j, k); ``spacing[2]`` is
            written as SliceThickness and SpacingBetweenSlices.
        origin: LPS mm of the centre of voxel (0, 0, 0).
        direction: 3 x 3, columns = LPS unit vectors of i, j, k (default
            identity). ImageOrientationPatient = first two columns.
        description: SeriesDescription.
        patient: identifying values written into every file.
        study_uid, frame_of_reference_uid: share them between series of one
            session; drawn from ``rng`` when None.
        rescale: (slope, intercept); the stored value is
            ``round((real - intercept) / slope)`` and RescaleSlope/Intercept
            are written. None writes ``round(real)`` and no rescale tags.
        signed: store int16 (PixelRepresentation 1) instead of uint16.
        file_names: one name per slice in k order, relative to ``out_dir``
            (may contain sub-folders). Default: random hex names.
        instance_numbers: InstanceNumber per slice in k order. Default: a
            random permutation of 1..n, so nobody can rely on it for order.
        extra_tags: DICOM keywords -> values added to (or overriding) every
            file, e.g. RepetitionTime or ContrastBolusAgent.
        rng: source of UIDs, file names and InstanceNumbers.

    Returns the UIDs, files (k order) and slice positions as written.

    Raises:
        ValueError: bad shape/geometry, or values that do not fit 16 bits.
    """
    rng = new_rng(rng)
    volume, spacing_arr = _checked_volume(volume, spacing)
    n_slices = volume.shape[0]
    direction = _checked_direction(direction)
    stored = _stored_values(volume, rescale, signed)

    study_uid, frame_of_reference_uid, series_uid, sop_uids = _series_uids(
        n_slices, study_uid, frame_of_reference_uid, rng)
    names, numbers = _names_and_numbers(n_slices, file_names, instance_numbers, rng)

    steps = np.arange(n_slices) * spacing_arr[2]
    positions = np.asarray(origin, dtype=float) + np.outer(steps, direction[:, 2])
    positions = np.round(positions, 6)  # what is written (DS), so contours can match exactly
    window = _window(volume)
    files: list[Path] = []
    for k in range(n_slices):
        ds = _mr_dataset(patient, extra_tags)
        ds.SOPInstanceUID, ds.InstanceNumber = sop_uids[k], numbers[k]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.SeriesDescription, ds.SeriesNumber, ds.AcquisitionNumber = description, series_number, 1
        _set_plane_and_pixels(ds, positions[k], direction, spacing_arr, stored[k], signed,
                              window, rescale)
        files.append(Path(out_dir) / names[k])
        _save(ds, files[-1], MRImageStorage)
    return WrittenSeries(
        study_uid=study_uid, series_uid=series_uid,
        frame_of_reference_uid=frame_of_reference_uid, sop_instance_uids=sop_uids,
        files=files, slice_positions=positions, direction=direction,
        spacing=(float(spacing_arr[0]), float(spacing_arr[1]), float(spacing_arr[2])))


def _checked_volume(volume: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    volume = np.asarray(volume)
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise ValueError(f'volume must be 3-D (slices, rows, columns), got shape {volume.shape}')
    spacing_arr = np.asarray(spacing, dtype=float)
    if spacing_arr.shape != (3,) or np.any(spacing_arr <= 0):
        raise ValueError(f'spacing must be 3 positive mm values, got {spacing}')
    return volume, spacing_arr


def _series_uids(n_slices: int, study_uid: str | None, frame_of_reference_uid: str | None,
                 rng: np.random.Generator) -> tuple[str, str, str, list[str]]:
    """(study, frame of reference, series, SOP instance UIDs), drawn from ``rng`` where not
    given, in that order."""
    study_uid = study_uid or uid_from_rng(rng)
    frame_of_reference_uid = frame_of_reference_uid or uid_from_rng(rng)
    series_uid = uid_from_rng(rng)
    return study_uid, frame_of_reference_uid, series_uid, [uid_from_rng(rng)
                                                           for _ in range(n_slices)]


def _names_and_numbers(n_slices: int, file_names, instance_numbers,
                       rng: np.random.Generator) -> tuple[list, list]:
    """File names (random hex by default) and InstanceNumbers (a random permutation)."""
    names = list(file_names) if file_names is not None else _random_file_names(n_slices, rng)
    numbers = (list(instance_numbers) if instance_numbers is not None
               else [int(v) + 1 for v in rng.permutation(n_slices)])
    if len(names) != n_slices or len(numbers) != n_slices:
        raise ValueError(f'need {n_slices} file names and instance numbers, '
                         f'got {len(names)} and {len(numbers)}')
    return names, numbers


def _set_plane_and_pixels(ds: Dataset, position: np.ndarray, direction: np.ndarray,
                          spacing: np.ndarray, stored: np.ndarray, signed: bool,
                          window: tuple[float, float],
                          rescale: tuple[float, float] | None) -> None:
    """Image plane (position, orientation, spacing) and pixel module of one slice."""
    normal = np.cross(direction[:, 0], direction[:, 1])
    ds.ImagePositionPatient = ds_strings(position, 6)
    ds.ImageOrientationPatient = ds_strings(direction[:, :2].T.ravel(), 10)
    ds.SliceLocation = ds_value(float(position @ normal), 6)
    ds.PixelSpacing = ds_strings([spacing[1], spacing[0]], 6)  # [row, column] spacing
    ds.SliceThickness = ds_value(spacing[2], 6)
    ds.SpacingBetweenSlices = ds_value(spacing[2], 6)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.WindowCenter, ds.WindowWidth = ds_value(window[0], 2), ds_value(window[1], 2)
    if rescale is not None:
        ds.RescaleIntercept = ds_value(rescale[1], 6)
        ds.RescaleSlope = ds_value(rescale[0], 8)
        ds.RescaleType = 'US'
    ds.PixelData = stored.tobytes()


def write_rtstruct(
    path: Path,
    series: WrittenSeries,
    rois: Mapping[str, Sequence[np.ndarray]],
    *,
    patient: PatientHeader,
    reference_series: bool = True,
    reference_images: bool = True,
    strict_planes: bool = True,
    roi_types: Mapping[str, str] | None = None,
    series_number: int = 1001,
    label: str = 'RTstruct',
    rng: np.random.Generator | None = None,
) -> None:
    """Write an RT Structure Set whose contours are drawn on ``series``.

    Args:
        path: output file (parent folders are created).
        series: the MR series the contours were drawn on.
        rois: ROI name -> closed planar contours, each an N x 3 array of LPS
            mm points (N >= 3, first point not repeated). An empty list
            writes an ROI without contours. ROI numbers follow dict order.
        patient: identifying values written into the file.
        reference_series: write ReferencedFrameOfReferenceSequence ->
            RTReferencedStudySequence -> RTReferencedSeriesSequence. False
            keeps only the FrameOfReferenceUID there.
        reference_images: write ContourImageSequence items (per contour and
            the series-level image list). Each contour references the slice
            whose plane contains it.
        strict_planes: raise if a contour is not planar or lies on no slice
            plane (within 1e-3 mm); False writes such a contour without an
            image reference (to build broken inputs in tests).
        roi_types: ROI name -> RTROIInterpretedType; default guessed from the
            name ('GTV...' -> GTV, 'External' -> EXTERNAL, else ORGAN).
        series_number, label: SeriesNumber and StructureSetLabel.
        rng: source of the new SOP instance and series UIDs.

    Raises:
        ValueError: a malformed contour, or (strict_planes) one on no slice.
    """
    rng = new_rng(rng)
    ds = _common_dataset(patient, RTStructureSetStorage, 'RTSTRUCT')
    ds.SOPInstanceUID = uid_from_rng(rng)
    ds.StudyInstanceUID = series.study_uid
    ds.SeriesInstanceUID = uid_from_rng(rng)
    ds.SeriesNumber = series_number
    ds.SeriesDescription = label
    ds.InstanceNumber = 1
    ds.Manufacturer = 'SYNTHETIC'
    ds.StructureSetLabel = label
    ds.StructureSetName = label
    ds.StructureSetDate = patient.study_date
    ds.StructureSetTime = '120000'
    ds.ReferencedFrameOfReferenceSequence = DicomSequence(
        [_referenced_frame(series, reference_series, reference_images)])

    roi_items, contour_items, observation_items = [], [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = series.frame_of_reference_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = 'MANUAL'
        roi_items.append(roi)
        contour_items.append(_roi_contour(number, name, contours, series,
                                          reference_images, strict_planes))
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = (roi_types or {}).get(name, _guess_roi_type(name))
        observation.ROIInterpreter = ''
        observation_items.append(observation)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    ds.RTROIObservationsSequence = DicomSequence(observation_items)
    _save(ds, Path(path), RTStructureSetStorage)


# --------------------------------------------------------------------------
# helpers


def _checked_direction(direction: np.ndarray | None) -> np.ndarray:
    """Validate a 3 x 3 direction matrix with unit, non-parallel in-plane axes."""
    if direction is None:
        return np.eye(3)
    direction = np.asarray(direction, dtype=float)
    if direction.shape != (3, 3):
        raise ValueError(f'direction must be 3 x 3, got shape {direction.shape}')
    norms = np.linalg.norm(direction, axis=0)
    if not np.allclose(norms, 1.0, atol=1e-6):
        raise ValueError(f'direction columns must be unit vectors, norms {norms}')
    if abs(direction[:, 0] @ direction[:, 1]) > 1e-6:
        raise ValueError('row and column directions must be orthogonal')
    if abs(np.linalg.det(direction)) < 1e-6:
        raise ValueError('slice direction lies in the image plane')
    return direction


def _stored_values(volume: np.ndarray, rescale: tuple[float, float] | None,
                   signed: bool) -> np.ndarray:
    """Real values -> little-endian 16-bit stored values (same shape)."""
    real = volume.astype(np.float64)
    if rescale is not None:
        slope, intercept = rescale
        if slope == 0:
            raise ValueError('rescale slope must be non-zero')
        real = (real - intercept) / slope
    stored = np.rint(real)
    dtype = np.dtype('<i2') if signed else np.dtype('<u2')
    info = np.iinfo(dtype)
    if stored.min() < info.min or stored.max() > info.max:
        raise ValueError(f'stored values [{stored.min()}, {stored.max()}] do not fit {dtype.name}; '
                         'use signed=True or a rescale')
    return stored.astype(dtype)


def _window(volume: np.ndarray) -> tuple[float, float]:
    """Display window (centre, width) covering the 1st-99th percentile."""
    low, high = np.percentile(volume, [1.0, 99.0])
    return float(low + high) / 2.0, max(float(high - low), 1.0)


def _random_file_names(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct random hex names ending in .dcm, unrelated to slice order."""
    values = rng.choice(16**8, size=n, replace=False)
    return [f'{int(v):08X}.dcm' for v in values]


def _common_dataset(patient: PatientHeader, sop_class_uid: str, modality: str) -> Dataset:
    """Patient, study and equipment attributes shared by all written files."""
    ds = Dataset()
    ds.SpecificCharacterSet = 'ISO_IR 100'
    ds.SOPClassUID = sop_class_uid
    ds.Modality = modality
    for keyword in ('StudyDate', 'SeriesDate', 'ContentDate', 'InstanceCreationDate'):
        setattr(ds, keyword, patient.study_date)
    for keyword in ('StudyTime', 'SeriesTime', 'ContentTime', 'InstanceCreationTime'):
        setattr(ds, keyword, patient.study_time)
    ds.AccessionNumber = patient.accession
    ds.InstitutionName = patient.institution
    ds.ReferringPhysicianName = ''
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.StudyID = '1'
    return ds


def _mr_dataset(patient: PatientHeader, extra_tags: Mapping[str, Any] | None) -> Dataset:
    """MR-specific acquisition attributes on top of the common ones."""
    ds = _common_dataset(patient, MRImageStorage, 'MR')
    ds.ImageType = ['ORIGINAL', 'PRIMARY', 'M', 'ND']
    ds.AcquisitionDate = patient.study_date
    ds.AcquisitionTime = patient.study_time
    ds.PositionReferenceIndicator = ''
    for keyword, value in {**DEFAULT_MR_TAGS, **(extra_tags or {})}.items():
        setattr(ds, keyword, value)
    return ds


def _referenced_frame(series: WrittenSeries, reference_series: bool,
                      reference_images: bool) -> Dataset:
    """ReferencedFrameOfReferenceSequence item pointing at the study/series/images."""
    frame = Dataset()
    frame.FrameOfReferenceUID = series.frame_of_reference_uid
    if not reference_series:
        return frame
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = series.series_uid
    if reference_images:
        ref_series.ContourImageSequence = DicomSequence(
            [_image_reference(series, k) for k in range(len(series.sop_instance_uids))])
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_SOP_CLASS_UID
    study.ReferencedSOPInstanceUID = series.study_uid
    study.RTReferencedSeriesSequence = DicomSequence([ref_series])
    frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def _image_reference(series: WrittenSeries, k: int) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = series.sop_class_uid
    item.ReferencedSOPInstanceUID = series.sop_instance_uids[k]
    return item


def _roi_contour(number: int, name: str, contours: Sequence[np.ndarray], series: WrittenSeries,
                 reference_images: bool, strict_planes: bool) -> Dataset:
    """ROIContourSequence item holding every contour of one ROI."""
    item = Dataset()
    item.ROIDisplayColor = _roi_colour(name)
    item.ReferencedROINumber = number
    contour_items = []
    for index, points in enumerate(contours, start=1):
        points = np.asarray(points, dtype=float)
        if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
            raise ValueError(f'ROI {name!r} contour {index}: need N x 3 points with N >= 3, '
                             f'got shape {points.shape}')
        contour = Dataset()
        k = _slice_of_contour(points, series, name, index, strict_planes)
        if reference_images and k is not None:
            contour.ContourImageSequence = DicomSequence([_image_reference(series, k)])
        contour.ContourGeometricType = 'CLOSED_PLANAR'
        contour.NumberOfContourPoints = len(points)
        contour.ContourNumber = index
        contour.ContourData = ds_strings(points, 6)
        contour_items.append(contour)
    if contour_items:
        item.ContourSequence = DicomSequence(contour_items)
    return item


def _slice_of_contour(points: np.ndarray, series: WrittenSeries, name: str, index: int,
                      strict: bool) -> int | None:
    """Index k of the slice whose plane contains the contour, or None."""
    normal = series.slice_normal
    heights = points @ normal
    slice_heights = series.slice_positions @ normal
    k = int(np.argmin(np.abs(slice_heights - heights.mean())))
    planar = np.ptp(heights) <= _PLANE_TOLERANCE_MM
    on_slice = np.all(np.abs(heights - slice_heights[k]) <= _PLANE_TOLERANCE_MM)
    if planar and on_slice:
        return k
    if strict:
        raise ValueError(f'ROI {name!r} contour {index} is not on a slice plane of series '
                         f'(height {heights.mean():.4f} mm, spread {np.ptp(heights):.4f} mm, '
                         f'nearest slice at {slice_heights[k]:.4f} mm)')
    return None


def _guess_roi_type(name: str) -> str:
    lowered = name.lower()
    if lowered.startswith('gtv'):
        return 'GTV'
    if lowered in ('external', 'body', 'skin'):
        return 'EXTERNAL'
    return 'ORGAN'


def _roi_colour(name: str) -> list[int]:
    """A fixed display colour per ROI name (deterministic, no hashing salt)."""
    value = sum((i + 1) * ord(c) for i, c in enumerate(name))
    return [(value * 37) % 256, (value * 91) % 256, (value * 53) % 256]


def _save(ds: Dataset, path: Path, sop_class_uid: str) -> None:
    """Write a synthetic file (see :func:`save_part10`)."""
    save_part10(ds, path, sop_class_uid, 'MMNPC_SYNTH_1')


