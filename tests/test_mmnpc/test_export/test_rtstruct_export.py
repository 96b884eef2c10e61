"""write_detections_rtstruct on a small synthetic series: references, geometry, no PHI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from data_prep.dicom_writer import PatientHeader, write_mr_series
from data_prep.mr_volume import load_mr_series
from data_prep.options import PrepOptions
from data_prep.rasterize import contours_to_mask
from data_prep.resample import resample_to_slices
from data_prep.rtstruct import read_references, read_structure_set
from data_prep.types import DataPrepError, SeriesInfo, Volume
from mmnpc.export import masks_to_contours_mm, write_detections_rtstruct

PATIENT = 'NPC042'
PLANTED = PatientHeader(name='SECRET^PERSON', patient_id='MRN98765', birth_date='19591231',
                        accession='ACC777', institution='Hidden General',
                        study_date='20180304', study_time='071523')
AI_ALIASES = PrepOptions(roi_aliases={'GTV': ['AI_GTV'], 'GTVln': ['AI_GTVln']})
OUTPUT_SIZE = 64  # px: a small stand-in for the 512 px slices


def _write_series(folder: Path, direction: np.ndarray | None = None, seed: int = 3):
    """6 slices of 20 x 24 px, 2 x 2 mm, 3 mm apart; returns (WrittenSeries, MrSeries)."""
    rng = np.random.default_rng(seed)
    volume = rng.uniform(50, 400, size=(6, 20, 24))
    written = write_mr_series(folder, volume, spacing=(2.0, 2.0, 3.0), origin=(-20.0, -30.0, 10.0),
                              direction=direction, description='T1 post', patient=PLANTED, rng=rng)
    info = SeriesInfo(patient_id=PATIENT, modality='MR', series_uid=written.series_uid,
                      frame_of_reference_uid=written.frame_of_reference_uid, description='T1',
                      files=tuple(written.files),
                      sop_instance_uids=tuple(written.sop_instance_uids))
    return written, load_mr_series(info)


def _canonical_slices(mr):
    """The converter's canonical axial slices of the series (geometry as predict.py gets it)."""
    return resample_to_slices(mr.volume, {}, PrepOptions(output_size=OUTPUT_SIZE))


def _disk(centre_px: tuple[int, int], radius_px: float) -> np.ndarray:
    yy, xx = np.mgrid[:OUTPUT_SIZE, :OUTPUT_SIZE]
    return np.hypot(xx - centre_px[0], yy - centre_px[1]) <= radius_px


def _slice_grid(prepared) -> Volume:
    return Volume(array=np.zeros((1, OUTPUT_SIZE, OUTPUT_SIZE), np.float32),
                  spacing=(*prepared.spacing_mm, 1.0), origin=(*prepared.origin_mm, prepared.z_mm))


@pytest.fixture
def exported(tmp_path):
    """An axial series and an RTSTRUCT with a GTV on one slice and two GTVln on another."""
    written, mr = _write_series(tmp_path / 'mr')
    slices = _canonical_slices(mr)
    gtv_slice, ln_slice = slices[4], slices[9]
    gtv_mask = _disk((30, 28), 6)
    ln_mask = _disk((12, 40), 3) | _disk((50, 45), 2.5)
    rois = {
        'GTV': masks_to_contours_mm(gtv_mask, gtv_slice.origin_mm, gtv_slice.spacing_mm,
                                    gtv_slice.z_mm),
        'GTVln': masks_to_contours_mm(ln_mask, ln_slice.origin_mm, ln_slice.spacing_mm,
                                      ln_slice.z_mm),
    }
    out = write_detections_rtstruct(tmp_path / 'out' / 'ai_rtstruct.dcm', written.files, rois,
                                    patient_id=PATIENT, rng=np.random.default_rng(0))
    masks = {'GTV': (gtv_slice, gtv_mask), 'GTVln': (ln_slice, ln_mask)}
    return out, written, mr, masks


def test_references_the_input_series(exported):
    out, written, _, _ = exported
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == pydicom.uid.RTStructureSetStorage
    assert ds.StudyInstanceUID == written.study_uid
    assert ds.SeriesInstanceUID not in (written.series_uid, written.study_uid)
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == written.frame_of_reference_uid
    ref_series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert ref_series.SeriesInstanceUID == written.series_uid
    assert all(roi.ReferencedFrameOfReferenceUID == written.frame_of_reference_uid
               for roi in ds.StructureSetROISequence)
    references = read_references(out, PATIENT)
    assert references.sop_instance_uids <= set(written.sop_instance_uids)
    assert references.series_uids == {written.series_uid}


def test_each_contour_references_the_nearest_slice(exported):
    out, written, mr, _ = exported
    ds = pydicom.dcmread(out)
    for roi_contour in ds.ROIContourSequence:
        for contour in roi_contour.ContourSequence:
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            # canonical z = 10 + m mm, input slices at z = 10, 13, 16, ... mm
            k = int(np.round(mr.volume.lps_to_index(points.mean(axis=0))[0, 2]))
            (image,) = contour.ContourImageSequence
            assert image.ReferencedSOPInstanceUID == written.sop_instance_uids[k]
            assert image.ReferencedSOPClassUID == pydicom.uid.MRImageStorage
    gtv_points = np.asarray(ds.ROIContourSequence[0].ContourSequence[0].ContourData, float)
    assert gtv_points[2] == pytest.approx(14.0)  # slice 4 of the 1 mm stack; nearest input: 13 mm


def test_contours_rasterise_back_to_the_masks(exported):
    out, _, _, masks = exported
    structure = read_structure_set(out, PATIENT, AI_ALIASES)
    assert structure.roi_names() == {'GTV': ['AI_GTV'], 'GTVln': ['AI_GTVln']}
    for cls, (prepared, mask) in masks.items():
        (contours,) = structure.rois[cls].values()
        back = contours_to_mask(contours, _slice_grid(prepared))[0]
        assert np.array_equal(back, mask), cls
    assert len(structure.rois['GTVln']['AI_GTVln']) == 2


def test_ai_rois_are_not_taken_for_manual_contours(exported):
    out = exported[0]
    with pytest.raises(DataPrepError, match='no GTV/GTVln ROI'):
        read_structure_set(out, PATIENT, PrepOptions())


def test_marked_as_ai_output_with_class_colours(exported):
    ds = pydicom.dcmread(exported[0])
    assert ds.Manufacturer == 'mmnpc'
    assert 'NOT FOR CLINICAL USE' in ds.SeriesDescription
    assert ds.ApprovalStatus == 'UNAPPROVED'
    names = [roi.ROIName for roi in ds.StructureSetROISequence]
    assert names == ['AI_GTV', 'AI_GTVln']
    assert {roi.ROIGenerationAlgorithm for roi in ds.StructureSetROISequence} == {'AUTOMATIC'}
    colours = [list(item.ROIDisplayColor) for item in ds.ROIContourSequence]
    assert colours == [[255, 0, 0], [255, 255, 0]]
    assert {o.RTROIInterpretedType for o in ds.RTROIObservationsSequence} == {'GTV'}


def test_nothing_identifying_is_copied(exported):
    out = exported[0]
    raw = out.read_bytes()
    for value in (PLANTED.name, 'SECRET', PLANTED.patient_id, PLANTED.birth_date,
                  PLANTED.accession, PLANTED.institution, PLANTED.study_date, PLANTED.study_time):
        assert value.encode() not in raw, value
    ds = pydicom.dcmread(out)
    assert (str(ds.PatientName), ds.PatientID) == (PATIENT, PATIENT)
    assert ds.PatientBirthDate == '' and ds.StudyDate == '' and ds.AccessionNumber == ''


def test_datasets_and_files_give_the_same_references(tmp_path, exported):
    _, written, _, _ = exported
    points = np.array([[0.0, 0.0, 16.2], [5.0, 0.0, 16.2], [5.0, 5.0, 16.2]])
    datasets = [pydicom.dcmread(f) for f in reversed(written.files)]
    out = write_detections_rtstruct(tmp_path / 'b.dcm', datasets, {'GTV': [points]},
                                    patient_id=PATIENT, roi_prefix='', rng=np.random.default_rng(0))
    ds = pydicom.dcmread(out)
    assert ds.StructureSetROISequence[0].ROIName == 'GTV'
    image = ds.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0]
    assert image.ReferencedSOPInstanceUID == written.sop_instance_uids[2]  # z 16 mm


def test_oblique_series_references_nearest_along_its_normal(tmp_path):
    angle = np.deg2rad(25.0)  # rows tilt towards +z: slices are oblique
    direction = np.array([[1.0, 0.0, 0.0],
                          [0.0, np.cos(angle), -np.sin(angle)],
                          [0.0, np.sin(angle), np.cos(angle)]])
    written, mr = _write_series(tmp_path / 'mr', direction)
    slices = _canonical_slices(mr)
    rois = {'GTV': []}
    for prepared in slices[::3]:
        rois['GTV'] += masks_to_contours_mm(_disk((32, 32), 3), prepared.origin_mm,
                                            prepared.spacing_mm, prepared.z_mm)
    out = write_detections_rtstruct(tmp_path / 'obl.dcm', written.files, rois, patient_id=PATIENT)
    ds = pydicom.dcmread(out)
    referenced = []
    for contour in ds.ROIContourSequence[0].ContourSequence:
        centroid = np.asarray(contour.ContourData, float).reshape(-1, 3).mean(axis=0)
        k = int(np.clip(np.round(mr.volume.lps_to_index(centroid)[0, 2]), 0, 5))
        referenced.append(contour.ContourImageSequence[0].ReferencedSOPInstanceUID)
        assert referenced[-1] == mr.sop_instance_uids[k]
    assert len(set(referenced)) > 1


def test_mixed_series_and_unknown_class_are_refused(tmp_path):
    first, _ = _write_series(tmp_path / 'a')
    second, _ = _write_series(tmp_path / 'b', seed=4)
    points = np.array([[0.0, 0.0, 13.0], [5.0, 0.0, 13.0], [5.0, 5.0, 13.0]])
    with pytest.raises(DataPrepError, match=f'patient {PATIENT}: file {second.files[0].name}'):
        write_detections_rtstruct(tmp_path / 'x.dcm', [*first.files, second.files[0]],
                                  {'GTV': [points]}, patient_id=PATIENT)
    with pytest.raises(ValueError, match='unknown ROI classes'):
        write_detections_rtstruct(tmp_path / 'x.dcm', first.files, {'Parotid': [points]},
                                  patient_id=PATIENT)
    with pytest.raises(ValueError, match='N x 3'):
        write_detections_rtstruct(tmp_path / 'x.dcm', first.files, {'GTV': [points[:2]]},
                                  patient_id=PATIENT)
    assert not (tmp_path / 'x.dcm').exists()
