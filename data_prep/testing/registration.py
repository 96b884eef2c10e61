"""Builders for the registration tests: rigid matrices, moved volumes, REG objects, CT series.

Everything is determined by the arguments (and the ``rng`` passed in), so tests
are reproducible. Matrices follow ``data_prep.registration``: 4 x 4, acting on
column vectors of LPS mm, moving frame -> fixed frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage

from data_prep.dicom_writer import (
    PatientHeader,
    WrittenSeries,
    ds_strings,
    save_part10,
    uid_from_rng,
    write_mr_series,
)
from data_prep.registration import SPATIAL_REGISTRATION_SOP_CLASS
from data_prep.resample import to_sitk
from data_prep.types import Volume

_MR_ONLY_KEYWORDS = ('ScanningSequence', 'SequenceVariant', 'ScanOptions', 'MRAcquisitionType',
                     'SequenceName', 'RepetitionTime', 'EchoTime', 'EchoTrainLength',
                     'NumberOfAverages', 'FlipAngle', 'MagneticFieldStrength', 'ImagingFrequency',
                     'ImagedNucleus', 'PixelBandwidth', 'PercentSampling',
                     'PercentPhaseFieldOfView', 'ReceiveCoilName', 'TransmitCoilName',
                     'InPlanePhaseEncodingDirection', 'SpacingBetweenSlices')


def rigid_matrix(angles_deg: Sequence[float], translation_mm: Sequence[float],
                 center_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """4 x 4 rotation about x, then y, then z (degrees, about ``center_mm``) + translation."""
    ax, ay, az = np.radians(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rotation = rz @ ry @ rx
    center = np.asarray(center_mm, dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = center - rotation @ center + np.asarray(translation_mm, dtype=float)
    return matrix


def moved_volume(fixed: Volume, moving_to_fixed: np.ndarray, grid: Volume) -> Volume:
    """``fixed``'s content seen from another frame: a Volume on ``grid`` (its array is
    ignored) whose voxel at moving-frame point p holds ``fixed`` at ``M @ p``.

    Linear interpolation, 0 outside ``fixed``.
    """
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in moving_to_fixed[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in moving_to_fixed[:3, 3]))
    reference = to_sitk(np.zeros(grid.array.shape, np.float32), grid)
    out = sitk.Resample(to_sitk(fixed.array.astype(np.float32), fixed), reference, transform,
                        sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return Volume(array=sitk.GetArrayFromImage(out), spacing=grid.spacing, origin=grid.origin,
                  direction=np.array(grid.direction, dtype=float))


def spatial_registration_dataset(
    registered_frame_uid: str,
    items: Sequence[tuple[str, np.ndarray | Sequence[np.ndarray]]],
    *,
    matrix_type: str = 'RIGID',
    patient: PatientHeader | None = None,
    rng: np.random.Generator | None = None,
) -> Dataset:
    """A Spatial Registration (REG) dataset registering each item's frame to
    ``registered_frame_uid`` (the object's own FrameOfReferenceUID).

    items: (FrameOfReferenceUID, matrix) or (uid, [M1, M2, ...]) for a
    MatrixSequence of several matrices (M1 applied first). Matrices are written
    row-major with 10 decimals.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    patient = patient or PatientHeader()
    ds = Dataset()
    ds.SpecificCharacterSet = 'ISO_IR 100'
    ds.SOPClassUID, ds.Modality = SPATIAL_REGISTRATION_SOP_CLASS, 'REG'
    ds.PatientName, ds.PatientID = patient.name, patient.patient_id
    ds.PatientBirthDate, ds.PatientSex = patient.birth_date, patient.sex
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = patient.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = patient.study_time
    ds.StudyInstanceUID = uid_from_rng(rng)
    ds.SeriesInstanceUID = uid_from_rng(rng)
    ds.SOPInstanceUID = uid_from_rng(rng)
    ds.SeriesNumber, ds.InstanceNumber = 900, 1
    ds.FrameOfReferenceUID = registered_frame_uid
    ds.PositionReferenceIndicator = ''
    ds.ContentLabel = 'REGISTRATION'
    ds.ContentDescription = ''
    ds.ContentCreatorName = ''
    entries = []
    for frame_uid, matrices in items:
        matrices = [matrices] if np.ndim(matrices) == 2 else list(matrices)
        steps = []
        for matrix in matrices:
            step = Dataset()
            step.FrameOfReferenceTransformationMatrixType = matrix_type
            step.FrameOfReferenceTransformationMatrix = ds_strings(matrix, 10)
            steps.append(step)
        registration = Dataset()
        registration.RegistrationTypeCodeSequence = DicomSequence([])
        registration.MatrixSequence = DicomSequence(steps)
        entry = Dataset()
        if frame_uid:
            entry.FrameOfReferenceUID = frame_uid
        entry.MatrixRegistrationSequence = DicomSequence([registration])
        entries.append(entry)
    ds.RegistrationSequence = DicomSequence(entries)
    return ds


def write_spatial_registration(path: Path, ds: Dataset) -> Path:
    """Save a dataset from ``spatial_registration_dataset`` as a Part 10 file."""
    save_part10(ds, Path(path), SPATIAL_REGISTRATION_SOP_CLASS, 'MMNPC_SYNTH_1')
    return Path(path)


def write_ct_series(out_dir: Path, hu: np.ndarray, *, spacing: tuple[float, float, float],
                    origin: tuple[float, float, float], direction: np.ndarray | None = None,
                    frame_of_reference_uid: str | None = None,
                    rng: np.random.Generator | None = None) -> WrittenSeries:
    """Write ``hu`` (k, j, i) as single-frame CT Image Storage files: signed 16 bit,
    RescaleIntercept -1024, RescaleType HU. Geometry as ``write_mr_series``."""
    written = write_mr_series(out_dir, np.asarray(hu, dtype=float), spacing=spacing,
                              origin=origin, direction=direction, description='CT PLANNING',
                              patient=PatientHeader(), rescale=(1.0, -1024.0), signed=True,
                              frame_of_reference_uid=frame_of_reference_uid, rng=rng)
    for path in written.files:
        ds = pydicom.dcmread(path)
        for keyword in _MR_ONLY_KEYWORDS:
            if keyword in ds:
                delattr(ds, keyword)
        ds.SOPClassUID, ds.Modality = CTImageStorage, 'CT'
        ds.ImageType = ['ORIGINAL', 'PRIMARY', 'AXIAL']
        ds.RescaleType = 'HU'
        ds.KVP = 120.0
        save_part10(ds, path, CTImageStorage, 'MMNPC_SYNTH_1')
    written.sop_class_uid = CTImageStorage
    return written
