"""Enhanced (multi-frame) MR files load and convert exactly like the classic series.

Each test writes a small classic series (one file per slice, ``write_mr_series``)
and packs the very same files into one multi-frame file
(``data_prep.testing.enhanced_mr``, or highdicom's Legacy Converted Enhanced MR
converter), then compares: the loaded volumes must be identical (pixels exactly,
spacing, origin, direction), and a whole patient converted from the enhanced
file must give byte-identical JPEGs and COCO files.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom import uid
from pydicom.sequence import Sequence as DicomSequence

from data_prep import convert
from data_prep.clinical import CLINICAL_COLUMNS
from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.discover import scan_patient
from data_prep.mr_volume import MrSeries, load_mr_series
from data_prep.options import PrepOptions
from data_prep.testing.enhanced_mr import (ENHANCED_MR, LEGACY_CONVERTED_ENHANCED_MR,
                                           write_enhanced_mr)
from data_prep.types import DataPrepError

PID = 'NPC_MF1'
SHAPE = (6, 12, 10)  # slices, rows, columns
SPACING = (1.5, 2.0, 4.0)  # mm (i, j, k)
ORIGIN = (-8.0, -11.0, -10.0)
OPTIONS = PrepOptions(output_size=64, sequences=('t2',))


def _rotation(a_deg: float, b_deg: float) -> np.ndarray:
    a, b = np.deg2rad(a_deg), np.deg2rad(b_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


AXIAL = np.eye(3)
OBLIQUE_REVERSED = _rotation(12, -7) @ np.diag([1.0, -1.0, -1.0])  # slices written going down


def _classic(root: Path, direction=AXIAL, rescale=None, seed=0):
    """A classic t2 series under ``root/PID/t2`` (values up to 4000: both bytes matter)."""
    rng = np.random.default_rng(seed)
    volume = rng.integers(0, 4000, SHAPE).astype(float)
    volume[2:4, 4:8, 3:7] += 3000  # the 'tumour'
    if rescale is not None:
        volume = np.round(volume) * rescale[0] + rescale[1]
    return write_mr_series(root / PID / 't2', volume, spacing=SPACING, origin=ORIGIN,
                           direction=direction, description='T2_TSE_TRA',
                           patient=PatientHeader(), rescale=rescale, rng=rng)


def _load(root: Path) -> MrSeries:
    """The patient's MR series as discovery finds it, loaded."""
    [series] = [s for s in scan_patient(root / PID, PID) if s.modality == 'MR']
    return load_mr_series(series)


def _assert_same(enhanced: MrSeries, classic: MrSeries) -> None:
    np.testing.assert_array_equal(enhanced.volume.array, classic.volume.array)
    assert enhanced.volume.array.dtype == classic.volume.array.dtype
    assert enhanced.volume.spacing == classic.volume.spacing
    assert enhanced.volume.origin == classic.volume.origin
    np.testing.assert_array_equal(enhanced.volume.direction, classic.volume.direction)
    assert enhanced.orientation == classic.orientation
    assert enhanced.slice_indices == classic.slice_indices


def _move_classic(written, root: Path) -> list[Path]:
    """Move the classic files out of the patient folder (kept as frame sources)."""
    kept = []
    for path in written.files:
        target = root / 'sources' / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        kept.append(path.rename(target))
    return kept


@pytest.mark.parametrize('case', ['axial, frames in slice order', 'oblique reversed, shuffled',
                                  'per-frame rescale, legacy converted, shuffled'])
def test_enhanced_file_loads_to_the_classic_volume(tmp_path, case):
    direction = OBLIQUE_REVERSED if 'oblique' in case else AXIAL
    rescale = (0.5, -20.0) if 'rescale' in case else None
    written = _classic(tmp_path, direction, rescale)
    if rescale:  # one slice with its own rescale: the frames cannot share one
        ds = pydicom.dcmread(written.files[2])
        ds.RescaleSlope, ds.RescaleIntercept = '2.5', '7'
        ds.save_as(written.files[2])
    classic = _load(tmp_path)
    sources = _move_classic(written, tmp_path)
    order = (np.random.default_rng(1).permutation(len(sources)) if 'shuffled' in case
             else np.arange(len(sources)))
    sop_class = LEGACY_CONVERTED_ENHANCED_MR if 'legacy' in case else ENHANCED_MR
    enhanced_file = write_enhanced_mr(tmp_path / PID / 't2' / 'enhanced.dcm',
                                      [sources[k] for k in order], sop_class_uid=sop_class,
                                      rng=np.random.default_rng(2))
    ds = pydicom.dcmread(enhanced_file.path)
    assert ds.NumberOfFrames == SHAPE[0] and 'ImagePositionPatient' not in ds
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert 'PixelValueTransformationSequence' not in shared  # none, or not the same for all
    per_frame = ds.PerFrameFunctionalGroupsSequence[0]
    assert ('PixelValueTransformationSequence' in per_frame) is bool(rescale)
    enhanced = _load(tmp_path)
    _assert_same(enhanced, classic)
    assert enhanced.warnings == classic.warnings
    assert ('oblique series' in ' '.join(enhanced.warnings)) is ('oblique' in case)
    # slice k comes from the frame made of the file classic slice k came from
    assert [enhanced_file.sources[n - 1].name for n in enhanced.frame_numbers] == [
        p.name for p in classic.files]
    assert set(enhanced.sop_instance_uids) == {enhanced_file.sop_instance_uid}
    assert enhanced.files == (enhanced_file.path,) * SHAPE[0]


def test_highdicom_legacy_converted_file_loads_to_the_classic_volume(tmp_path):
    from highdicom.legacy import LegacyConvertedEnhancedMRImage

    written = _classic(tmp_path, OBLIQUE_REVERSED, rescale=(2.0, -100.0))
    classic = _load(tmp_path)
    sources = _move_classic(written, tmp_path)
    shuffled = [pydicom.dcmread(sources[k]) for k in np.random.default_rng(3).permutation(6)]
    converted = LegacyConvertedEnhancedMRImage(
        shuffled, series_instance_uid=pydicom.uid.generate_uid(),
        series_number=2, sop_instance_uid=pydicom.uid.generate_uid(), instance_number=1)
    converted.save_as(tmp_path / PID / 't2' / 'legacy.dcm')
    assert converted.SOPClassUID == LEGACY_CONVERTED_ENHANCED_MR and converted.NumberOfFrames == 6
    enhanced = _load(tmp_path)
    _assert_same(enhanced, classic)
    assert enhanced.warnings == classic.warnings


def test_compressed_multi_frame_pixel_data_is_decoded(tmp_path):
    written = _classic(tmp_path)
    classic = _load(tmp_path)
    sources = _move_classic(written, tmp_path)
    path = write_enhanced_mr(tmp_path / PID / 't2' / 'enhanced.dcm', sources[::-1],
                             rng=np.random.default_rng(2)).path
    ds = pydicom.dcmread(path)
    ds.compress(uid.RLELossless)
    ds.save_as(path)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == uid.RLELossless
    _assert_same(_load(tmp_path), classic)


def test_a_series_of_several_enhanced_files_is_stacked_with_the_usual_checks(tmp_path):
    written = _classic(tmp_path)
    classic = _load(tmp_path)
    sources = _move_classic(written, tmp_path)
    rng = np.random.default_rng(4)
    first = write_enhanced_mr(tmp_path / PID / 't2' / 'even.dcm', sources[0::2], rng=rng)
    write_enhanced_mr(tmp_path / PID / 't2' / 'odd.dcm', sources[1::2],
                      series_uid=first.series_uid, rng=rng)
    copy = tmp_path / PID / 't2' / 'copy_of_odd.dcm'
    copy.write_bytes((tmp_path / PID / 't2' / 'odd.dcm').read_bytes())
    loaded = _load(tmp_path)
    _assert_same(loaded, classic)
    assert loaded.warnings == ['files t2/copy_of_odd.dcm and t2/odd.dcm are copies of one '
                               'image; the copy is ignored']
    # a second file with frames at the same positions: the classic duplicate error
    copy.unlink()
    write_enhanced_mr(tmp_path / PID / 't2' / 'again.dcm', sources[1:3],
                      series_uid=first.series_uid, rng=rng)
    with pytest.raises(DataPrepError, match=f'patient {PID}: files t2/(again|even|odd).dcm '
                                            'frame \\d and t2/(again|even|odd).dcm frame \\d '
                                            'have the same slice position'):
        _load(tmp_path)


def test_a_missing_frame_is_interpolated_and_named_like_a_missing_file(tmp_path):
    written = _classic(tmp_path)
    sources = _move_classic(written, tmp_path)
    write_enhanced_mr(tmp_path / PID / 't2' / 'enhanced.dcm',
                      [sources[k] for k in (5, 0, 1, 3, 4)], rng=np.random.default_rng(2))
    loaded = _load(tmp_path)
    assert loaded.slice_indices == (0, 1, 3, 4, 5) and loaded.filled_slices == {2: (1, 3, 0.5)}
    (warning,) = loaded.warnings
    assert warning == ('1 missing slice(s) filled by linear interpolation (gap of 8.000 mm, '
                       'median 4.000 mm, between files t2/enhanced.dcm frame 3 and '
                       't2/enhanced.dcm frame 4)')
    volume = np.stack([pydicom.dcmread(sources[k]).pixel_array for k in range(6)]).astype(float)
    np.testing.assert_array_equal(loaded.volume.array[[0, 1, 3, 4, 5]], volume[[0, 1, 3, 4, 5]])


def _frame_item(ds, n: int, macro: str):
    return ds.PerFrameFunctionalGroupsSequence[n - 1][macro][0]


def test_two_orientations_in_one_file_are_an_error_naming_patient_and_file(tmp_path):
    sources = _move_classic(_classic(tmp_path), tmp_path)
    path = write_enhanced_mr(tmp_path / PID / 't2' / 'enhanced.dcm', sources,
                             per_frame=('PlanePositionSequence', 'PlaneOrientationSequence'),
                             rng=np.random.default_rng(2)).path
    ds = pydicom.dcmread(path)
    for n in (4, 5, 6):  # a coronal stack after the axial one
        _frame_item(ds, n, 'PlaneOrientationSequence').ImageOrientationPatient = [1, 0, 0, 0, 0,
                                                                                  -1]
    ds.save_as(path)
    with pytest.raises(DataPrepError, match=f'patient {PID}: multi-frame file t2/enhanced.dcm '
                                            'holds frames of 2 orientations'):
        _load(tmp_path)


@pytest.mark.parametrize('macro, keyword, values', [
    ('FrameContentSequence', 'TemporalPositionIndex', (1, 2)),
    ('MREchoSequence', 'EffectiveEchoTime', (10.0, 80.0)),
])
def test_several_contrasts_or_time_points_in_one_file_are_an_error(tmp_path, macro, keyword,
                                                                   values):
    sources = _move_classic(_classic(tmp_path), tmp_path)
    path = write_enhanced_mr(tmp_path / PID / 't2' / 'enhanced.dcm', sources + sources,
                             rng=np.random.default_rng(2)).path
    ds = pydicom.dcmread(path)
    for n in range(1, 13):
        group = ds.PerFrameFunctionalGroupsSequence[n - 1]
        if macro not in group:
            setattr(group, macro, DicomSequence([pydicom.Dataset()]))
        setattr(group[macro][0], keyword, values[(n - 1) // 6])
    ds.save_as(path)
    with pytest.raises(DataPrepError, match=f'patient {PID}: multi-frame file t2/enhanced.dcm '
                                            f'holds several stacks \\(2 values of {keyword}\\) '
                                            'in its 12 frames'):
        _load(tmp_path)


def test_two_stack_ids_form_one_volume_only_at_distinct_positions(tmp_path):
    """A multi-package acquisition (StackID 1 = even slices, 2 = odd ones) is one
    volume; the same StackIDs on two stacks at the same positions are refused."""
    written = _classic(tmp_path)
    classic = _load(tmp_path)
    sources = _move_classic(written, tmp_path)
    path = tmp_path / PID / 't2' / 'enhanced.dcm'
    for frames, stack_size in ((sources[0::2] + sources[1::2], 3), (sources + sources, 6)):
        write_enhanced_mr(path, frames, rng=np.random.default_rng(2))
        ds = pydicom.dcmread(path)
        for n, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
            group.FrameContentSequence[0].StackID = str(1 + n // stack_size)
        ds.save_as(path)
        if stack_size == 3:
            loaded = _load(tmp_path)
            _assert_same(loaded, classic)
            assert loaded.warnings == ['file t2/enhanced.dcm: frames of 2 stacks (StackID) in one '
                                       'orientation, each at its own position, stacked as one '
                                       'volume']
    with pytest.raises(DataPrepError, match=f'patient {PID}: multi-frame file t2/enhanced.dcm '
                                            'holds several stacks \\(2 values of StackID\\) in '
                                            'its 12 frames'):
        _load(tmp_path)


def test_missing_frame_geometry_is_an_error_naming_the_frame(tmp_path):
    sources = _move_classic(_classic(tmp_path), tmp_path)
    path = write_enhanced_mr(tmp_path / PID / 't2' / 'enhanced.dcm', sources,
                             rng=np.random.default_rng(2)).path
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
    ds.save_as(path)
    with pytest.raises(DataPrepError, match=f'patient {PID}: file t2/enhanced.dcm frame 3 has '
                                            'no ImagePositionPatient in a per-frame or shared '
                                            'PlanePositionSequence'):
        _load(tmp_path)


# --- a whole patient -------------------------------------------------------------------------

def _cohort(cohort: Path, enhanced: bool, reference_series: bool) -> None:
    """clinical.csv + one patient: t2 (classic or one enhanced file) + an RTSTRUCT on it.

    The enhanced patient's RTSTRUCT refers to the enhanced instance, each contour
    to its frame (ReferencedSOPInstanceUID + ReferencedFrameNumber), as a
    planning system would write it.
    """
    written = _classic(cohort, OBLIQUE_REVERSED)
    contours = [ellipse_contour(written.slice_positions[k] + 8.0 * written.direction[:, 0]
                                + 10.0 * written.direction[:, 1], (5.0, 4.0), 24,
                                plane_axes=(written.direction[:, 0], written.direction[:, 1]))
                for k in (2, 3)]
    reference = written
    if enhanced:
        sources = _move_classic(written, cohort.parent)
        order = np.random.default_rng(5).permutation(len(sources))
        file = write_enhanced_mr(cohort / PID / 't2' / 'enhanced.dcm',
                                 [sources[k] for k in order], rng=np.random.default_rng(6))
        frame_of = {f'1.2.3.{k}': int(np.flatnonzero(order == k)[0]) + 1
                    for k in range(len(sources))}  # slice k's marker -> its frame
        reference = dataclasses.replace(written, series_uid=file.series_uid,
                                        sop_instance_uids=list(frame_of),
                                        sop_class_uid=ENHANCED_MR)
    rtstruct = cohort / PID / 'RS_t2.dcm'
    write_rtstruct(rtstruct, reference, {'GTV': contours}, patient=PatientHeader(),
                   reference_series=reference_series, rng=np.random.default_rng(7))
    if enhanced:
        ds = pydicom.dcmread(rtstruct)
        images = [image for roi in ds.ROIContourSequence for contour in roi.ContourSequence
                  for image in contour.ContourImageSequence]
        for study in ds.ReferencedFrameOfReferenceSequence[0].get('RTReferencedStudySequence', []):
            images += list(study.RTReferencedSeriesSequence[0].ContourImageSequence)
        for image in images:
            image.ReferencedFrameNumber = frame_of[image.ReferencedSOPInstanceUID]
            image.ReferencedSOPInstanceUID = file.sop_instance_uid
        assert len(images) == 2 + 6 * reference_series
        ds.save_as(rtstruct)
    table = pd.DataFrame([{'patient_id': PID, 'age': '50', 'msom': '0'}])
    table.reindex(columns=CLINICAL_COLUMNS).to_csv(cohort / 'clinical.csv', index=False)


def _converted_bytes(cohort: Path, out: Path) -> dict[str, bytes]:
    """Every output file but the manifest (it records input file sizes)."""
    split_file = out.parent / 'split.csv'
    split_file.write_text(f'patient_id,split\n{PID},train\n')
    convert.convert_cohort(cohort, out, split_file=split_file, options=OPTIONS, progress=False)
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob('*'))
            if p.is_file() and p.name != 'manifest.json'}


@pytest.mark.parametrize('reference_series', [True, False],
                         ids=['rtstruct refers to the series', 'rtstruct refers to images only'])
def test_patient_from_an_enhanced_file_converts_to_identical_jpegs_and_coco(tmp_path,
                                                                         reference_series):
    _cohort(tmp_path / 'classic' / 'cohort', False, reference_series)
    _cohort(tmp_path / 'enhanced' / 'cohort', True, reference_series)
    expected = _converted_bytes(tmp_path / 'classic' / 'cohort', tmp_path / 'classic' / 'out')
    got = _converted_bytes(tmp_path / 'enhanced' / 'cohort', tmp_path / 'enhanced' / 'out')
    assert sum(name.endswith('.jpg') for name in expected) > 10
    assert b'"segmentation"' in expected['t2/annotations/train.json']
    assert got == expected
