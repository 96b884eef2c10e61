"""Round-trip tests of data_prep.dicom_writer with pydicom and SimpleITK."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RTStructureSetStorage

from data_prep.dicom_writer import (
    PatientHeader,
    WrittenSeries,
    ellipse_contour,
    write_mr_series,
    write_rtstruct,
)
from data_prep.types import Volume

SPACING = (0.5, 0.7, 3.0)  # mm (i, j, k): deliberately anisotropic
ORIGIN = (10.0, -20.0, 30.1)


def _rotation_x(angle_deg: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


DIRECTIONS = {
    'identity': np.eye(3),
    'reversed_slices': np.diag([1.0, 1.0, -1.0]),
    'flipped_rows': np.diag([1.0, -1.0, 1.0]),
    'oblique': _rotation_x(20.0) @ np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]]) @ np.diag([1, 1, -1.0]),
}


def _read_sitk(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _values_at_our_voxels(image: sitk.Image, spacing, origin, direction) -> tuple[np.ndarray, np.ndarray]:
    """(our integer indices (i, j, k) of every SimpleITK voxel, its value)."""
    array = sitk.GetArrayFromImage(image)  # [k, j, i] in SimpleITK's own order
    kk, jj, ii = np.indices(array.shape)
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
    theirs = Volume(array, image.GetSpacing(), image.GetOrigin(),
                    np.array(image.GetDirection()).reshape(3, 3))
    ours = Volume(array, spacing, origin, direction).lps_to_index(theirs.index_to_lps(ijk))
    return ours, array.ravel()


def _write(tmp_path: Path, volume: np.ndarray, seed: int = 0, **kwargs) -> WrittenSeries:
    kwargs.setdefault('spacing', SPACING)
    kwargs.setdefault('origin', ORIGIN)
    kwargs.setdefault('description', 'T1_TSE_TRA')
    kwargs.setdefault('patient', PatientHeader())
    return write_mr_series(tmp_path / 'series', volume, rng=np.random.default_rng(seed), **kwargs)


@pytest.mark.parametrize('name', list(DIRECTIONS))
def test_series_round_trips_through_simpleitk(tmp_path: Path, name: str) -> None:
    direction = DIRECTIONS[name]
    volume = np.random.default_rng(1).integers(0, 1000, size=(5, 6, 7)).astype(float)
    _write(tmp_path, volume, direction=direction)
    image = _read_sitk(tmp_path / 'series')
    assert image.GetSize() == (7, 6, 5)
    assert np.allclose(sorted(image.GetSpacing()), sorted(SPACING))
    ours, values = _values_at_our_voxels(image, SPACING, ORIGIN, direction)
    index = np.rint(ours).astype(int)
    assert np.allclose(ours, index, atol=1e-4), 'SimpleITK voxels must fall on our voxels'
    assert np.array_equal(values, volume[index[:, 2], index[:, 1], index[:, 0]])


def test_identity_geometry_matches_exactly(tmp_path: Path) -> None:
    volume = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    _write(tmp_path, volume)
    image = _read_sitk(tmp_path / 'series')
    assert np.allclose(image.GetSpacing(), SPACING)
    assert np.allclose(image.GetOrigin(), ORIGIN)
    assert np.allclose(np.array(image.GetDirection()).reshape(3, 3), np.eye(3))
    assert np.array_equal(sitk.GetArrayFromImage(image), volume)


def test_header_geometry_uses_dicom_order(tmp_path: Path) -> None:
    direction = DIRECTIONS['oblique']
    series = _write(tmp_path, np.zeros((3, 4, 5)), direction=direction)
    for k, path in enumerate(series.files):
        ds = pydicom.dcmread(path)
        assert [float(v) for v in ds.PixelSpacing] == [SPACING[1], SPACING[0]]  # [row, column]
        assert (ds.Rows, ds.Columns) == (4, 5)
        assert np.allclose([float(v) for v in ds.ImageOrientationPatient],
                           np.concatenate([direction[:, 0], direction[:, 1]]), atol=1e-9)
        expected = np.array(ORIGIN) + k * SPACING[2] * direction[:, 2]
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], expected, atol=1e-6)
        assert np.allclose(series.slice_positions[k], expected, atol=1e-6)
        assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == SPACING[2]


def test_rescale_and_signed_pixels(tmp_path: Path) -> None:
    slope, intercept = 0.25, -3.0
    volume = np.random.default_rng(2).uniform(-400.0, 400.0, size=(4, 5, 6))
    series = _write(tmp_path, volume, rescale=(slope, intercept), signed=True)
    ds = pydicom.dcmread(series.files[0])
    assert ds.PixelRepresentation == 1
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (slope, intercept)
    assert ds.pixel_array.dtype == np.int16
    stored = np.rint((volume[0] - intercept) / slope)
    assert np.array_equal(ds.pixel_array, stored)
    image = _read_sitk(tmp_path / 'series')
    assert np.abs(sitk.GetArrayFromImage(image) - volume).max() <= slope / 2 + 1e-9


def test_values_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='do not fit'):
        _write(tmp_path, np.full((2, 2, 2), -5.0))  # unsigned
    with pytest.raises(ValueError, match='do not fit'):
        _write(tmp_path, np.full((2, 2, 2), 70000.0), signed=True)
    with pytest.raises(ValueError, match='direction'):
        _write(tmp_path, np.zeros((2, 2, 2)), direction=np.diag([2.0, 1.0, 1.0]))


def test_order_is_not_given_away_by_instance_numbers_or_names(tmp_path: Path) -> None:
    series = _write(tmp_path, np.zeros((12, 3, 3)))
    numbers = [pydicom.dcmread(p).InstanceNumber for p in series.files]
    assert sorted(numbers) == list(range(1, 13))
    assert numbers != sorted(numbers) and numbers != sorted(numbers, reverse=True)
    names = [p.name for p in series.files]
    assert names != sorted(names) and len(set(names)) == 12


def test_headers_hold_planted_identifiers_and_file_meta(tmp_path: Path) -> None:
    patient = PatientHeader(name='PLANTED^NAME', patient_id='PLANTED-ID', birth_date='19551231',
                            accession='PLANTED-ACC', institution='Planted Clinic',
                            study_date='20190304')
    series = _write(tmp_path, np.zeros((2, 3, 3)), patient=patient, study_uid='1.2.3',
                    frame_of_reference_uid='1.2.4', series_number=7)
    ds = pydicom.dcmread(series.files[0])
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == MRImageStorage
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == series.sop_instance_uids[0]
    assert (ds.Modality, ds.SeriesDescription, ds.SeriesNumber) == ('MR', 'T1_TSE_TRA', 7)
    assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate) == ('PLANTED^NAME', 'PLANTED-ID', '19551231')
    assert (ds.AccessionNumber, ds.InstitutionName, ds.StudyDate) == ('PLANTED-ACC', 'Planted Clinic', '20190304')
    assert (ds.StudyInstanceUID, ds.FrameOfReferenceUID) == ('1.2.3', '1.2.4')
    assert float(ds.MagneticFieldStrength) > 0 and float(ds.RepetitionTime) > float(ds.EchoTime) > 0


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    volume = np.random.default_rng(3).integers(0, 500, size=(3, 4, 4)).astype(float)
    first = write_mr_series(tmp_path / 'a', volume, spacing=SPACING, origin=ORIGIN, description='x',
                            patient=PatientHeader(), rng=np.random.default_rng(5))
    second = write_mr_series(tmp_path / 'b', volume, spacing=SPACING, origin=ORIGIN, description='x',
                             patient=PatientHeader(), rng=np.random.default_rng(5))
    third = write_mr_series(tmp_path / 'c', volume, spacing=SPACING, origin=ORIGIN, description='x',
                            patient=PatientHeader(), rng=np.random.default_rng(6))
    assert [p.name for p in first.files] == [p.name for p in second.files]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first.files, second.files))
    assert not set(first.sop_instance_uids) & set(third.sop_instance_uids)


def test_ellipse_contour_lies_on_its_plane() -> None:
    points = ellipse_contour((1.0, 2.0, -7.5), (10.0, 4.0), n_points=40)
    assert points.shape == (40, 3)
    assert np.all(points[:, 2] == -7.5)
    assert np.allclose(((points[:, 0] - 1) / 10) ** 2 + ((points[:, 1] - 2) / 4) ** 2, 1.0)
    rotated = ellipse_contour((0, 0, 0), (10.0, 4.0), angle_rad=np.pi / 2)
    assert np.isclose(np.abs(rotated[:, 1]).max(), 10.0) and np.isclose(np.abs(rotated[:, 0]).max(), 4.0)


def _contours_by_roi(ds: pydicom.Dataset) -> dict[str, list[pydicom.Dataset]]:
    names = {roi.ROINumber: roi.ROIName for roi in ds.StructureSetROISequence}
    return {names[item.ReferencedROINumber]: list(getattr(item, 'ContourSequence', []))
            for item in ds.ROIContourSequence}


def test_rtstruct_references_the_slices_of_its_contours(tmp_path: Path) -> None:
    direction = DIRECTIONS['oblique']
    series = _write(tmp_path, np.zeros((5, 8, 8)), direction=direction)
    axes = (direction[:, 0], direction[:, 1])
    on_slice = {k: ellipse_contour(series.slice_positions[k] + 2.0 * direction[:, 0], (3.0, 2.0),
                                   n_points=16, plane_axes=axes) for k in (1, 3)}
    rois = {'GTV': [on_slice[3], on_slice[1]], 'Brainstem': [], 'External': [on_slice[1]]}
    path = tmp_path / 'rs' / 'RS.dcm'
    write_rtstruct(path, series, rois, patient=PatientHeader(patient_id='RT-PLANTED'),
                   rng=np.random.default_rng(0))
    ds = pydicom.dcmread(path)
    assert (ds.SOPClassUID, ds.Modality, ds.PatientID) == (RTStructureSetStorage, 'RTSTRUCT', 'RT-PLANTED')
    assert ds.StudyInstanceUID == series.study_uid
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == series.frame_of_reference_uid
    ref_series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert ref_series.SeriesInstanceUID == series.series_uid
    assert [i.ReferencedSOPInstanceUID for i in ref_series.ContourImageSequence] == series.sop_instance_uids
    contours = _contours_by_roi(ds)
    assert contours['Brainstem'] == []
    for contour, k in zip(contours['GTV'], (3, 1)):
        assert contour.ContourGeometricType == 'CLOSED_PLANAR'
        assert contour.NumberOfContourPoints == 16
        points = np.array([float(v) for v in contour.ContourData]).reshape(-1, 3)
        assert np.allclose(points, on_slice[k], atol=1e-6)
        image = contour.ContourImageSequence[0]
        assert image.ReferencedSOPClassUID == MRImageStorage
        assert image.ReferencedSOPInstanceUID == series.sop_instance_uids[k]
    types = {o.ReferencedROINumber: o.RTROIInterpretedType for o in ds.RTROIObservationsSequence}
    assert list(types.values()) == ['GTV', 'ORGAN', 'EXTERNAL']


def test_rtstruct_reference_flags_drop_references(tmp_path: Path) -> None:
    series = _write(tmp_path, np.zeros((3, 4, 4)))
    rois = {'GTVln': [ellipse_contour(series.slice_positions[2], (1.0, 1.0), 8)]}
    write_rtstruct(tmp_path / 'a.dcm', series, rois, patient=PatientHeader(), reference_images=False)
    write_rtstruct(tmp_path / 'b.dcm', series, rois, patient=PatientHeader(), reference_series=False)
    no_images = pydicom.dcmread(tmp_path / 'a.dcm')
    assert 'ContourImageSequence' not in _contours_by_roi(no_images)['GTVln'][0]
    ref_series = (no_images.ReferencedFrameOfReferenceSequence[0]
                  .RTReferencedStudySequence[0].RTReferencedSeriesSequence[0])
    assert ref_series.SeriesInstanceUID == series.series_uid and 'ContourImageSequence' not in ref_series
    no_series = pydicom.dcmread(tmp_path / 'b.dcm')
    assert 'RTReferencedStudySequence' not in no_series.ReferencedFrameOfReferenceSequence[0]
    assert 'ContourImageSequence' in _contours_by_roi(no_series)['GTVln'][0]


def test_rtstruct_refuses_contours_between_slices(tmp_path: Path) -> None:
    series = _write(tmp_path, np.zeros((3, 4, 4)))
    between = ellipse_contour(series.slice_positions[0] + [0, 0, SPACING[2] / 2], (1.0, 1.0), 8)
    with pytest.raises(ValueError, match='not on a slice plane'):
        write_rtstruct(tmp_path / 'x.dcm', series, {'GTV': [between]}, patient=PatientHeader())
    write_rtstruct(tmp_path / 'y.dcm', series, {'GTV': [between]}, patient=PatientHeader(),
                   strict_planes=False)
    assert 'ContourImageSequence' not in _contours_by_roi(pydicom.dcmread(tmp_path / 'y.dcm'))['GTV'][0]
