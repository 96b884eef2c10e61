"""Messy input, one test per case of the table 'When data is messy' of docs/data.md.

Every case runs the real pipeline (prepare_patient / convert_cohort) on tiny
synthetic DICOM (32 x 32 px, 6 slices, 64 px output) and checks what the tool
does: a DataPrepError naming the patient and the file, or a documented
fallback with a warning in the manifest. Clinical-table cases, the
``skip_bad_patients`` mode, interrupted runs and split leakage follow.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from data_prep import convert
from data_prep.clinical import CLINICAL_COLUMNS, load_clinical
from data_prep.coco_writer import slice_annotations
from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.options import PrepOptions
from data_prep.patient import prepare_patient
from data_prep.types import DataPrepError

PID = 'NPC001'
SHAPE = (6, 32, 32)  # slices, rows, columns
SPACING = (2.0, 2.0, 4.0)  # mm (i, j, k)
ORIGIN = (-31.0, -31.0, -10.0)  # LPS mm of voxel (0, 0, 0)
DESCRIPTIONS = {'t1': 'T1_TSE_TRA', 't2': 'T2_TSE_TRA', 'cet1': 'T1_TSE_TRA_POST_GD'}
GTV_SLICES = (2, 3, 4)
OPTIONS = PrepOptions(output_size=64)
T2_ONLY = PrepOptions(output_size=64, sequences=('t2',))


def slice_contour(k: int, centre_ij: tuple[float, float], semi_mm: tuple[float, float],
                  direction: np.ndarray, n: int = 24) -> np.ndarray:
    """Ellipse (N x 3 LPS mm) on slice k of the test grid around pixel ``centre_ij``."""
    offset = np.asarray(SPACING) * (*centre_ij, k)
    centre = np.asarray(ORIGIN) + direction @ offset
    return ellipse_contour(centre, semi_mm, n, plane_axes=(direction[:, 0], direction[:, 1]))


def default_rois(direction: np.ndarray) -> dict[str, list[np.ndarray]]:
    return {'GTVnx': [slice_contour(k, (16, 14), (8.0, 6.0), direction) for k in GTV_SLICES],
            'GTVnd_L': [slice_contour(1, (6, 24), (4.0, 4.0), direction)],
            'Brainstem': [slice_contour(0, (16, 26), (4.0, 3.0), direction)]}


def write_patient(root: Path, *, sequences=('t1', 't2', 'cet1'), seed: int = 0,
                  direction: np.ndarray | None = None, rois=None, skip_slices=(),
                  header: PatientHeader | None = None, **series_kwargs) -> dict:
    """One tiny patient: an MR series per sequence in ``root/<seq>/`` + ``root/RS_<seq>.dcm``.

    skip_slices: slice indices whose files are deleted after writing (missing slices).
    series_kwargs go to write_mr_series (rescale, signed, ...). Returns sequence -> series.
    """
    rng = np.random.default_rng(seed)
    direction = np.eye(3) if direction is None else direction
    header = header or PatientHeader()
    volume = rng.integers(100, 400, SHAPE).astype(float)
    volume[2:5, 10:18, 10:22] += 500  # the 'tumour'
    written = {}
    for number, sequence in enumerate(sequences, start=1):
        series = write_mr_series(
            root / sequence, volume, spacing=SPACING, origin=ORIGIN, direction=direction,
            description=DESCRIPTIONS[sequence], patient=header, series_number=number,
            rng=rng, **series_kwargs)
        write_rtstruct(root / f'RS_{sequence}.dcm', series,
                       default_rois(direction) if rois is None else rois,
                       patient=header, rng=rng)
        for k in skip_slices:
            series.files[k].unlink()
        written[sequence] = series
    return written


def edit(path: Path, **values) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def name_of(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / PID


# --- DICOM files ---------------------------------------------------------------------------

@pytest.mark.parametrize('damage', ['truncated header', 'garbage after the preamble',
                                    'truncated pixel data', 'dangling link'])
def test_unreadable_or_truncated_dicom_file_is_an_error(root, damage):
    series = write_patient(root, sequences=('t2',))['t2']
    target = series.files[3]
    data = target.read_bytes()
    if damage == 'truncated header':
        target.write_bytes(data[:300])
    elif damage == 'garbage after the preamble':
        noise = np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes()
        target.write_bytes(data[:132] + noise)
    elif damage == 'truncated pixel data':
        target.write_bytes(data[:-40])
    else:
        target = root / 't2' / 'IM_lost.dcm'
        target.symlink_to(root / 'elsewhere' / 'IM_lost.dcm')
    with pytest.raises(DataPrepError, match=f'patient {PID}: .*{name_of(target, root)}'):
        prepare_patient(root, PID, T2_ONLY)


def test_non_dicom_files_are_ignored_quietly(root, caplog):
    write_patient(root, sequences=('t2',))
    clean = prepare_patient(root, PID, T2_ONLY)['t2']
    (root / 'notes.txt').write_text('contours checked\n')
    (root / 'empty').write_bytes(b'')
    (root / '.DS_Store').write_bytes(b'\x00\x00\x00\x01Bud1' + bytes(300))
    (root / 't2' / 'Thumbs.db').write_bytes(bytes(range(256)) * 3)
    (root / 'export' / 'report.pdf').parent.mkdir()
    (root / 'export' / 'report.pdf').write_bytes(b'%PDF-1.4\n' + bytes(500))
    shutil.copy(get_testdata_file('DICOMDIR'), root / 'DICOMDIR')
    with caplog.at_level(logging.DEBUG):
        messy = prepare_patient(root, PID, T2_ONLY)['t2']
    assert messy.info == clean.info and messy.info['warnings'] == []
    assert all(np.array_equal(a.image, b.image) for a, b in zip(messy.slices, clean.slices))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize('content', ['nothing', 'rtstruct and notes', 'ct only'])
def test_patient_folder_without_mr_series_is_an_error(root, tmp_path, content):
    root.mkdir()
    if content == 'rtstruct and notes':
        write_patient(tmp_path / 'other', sequences=('t2',))
        shutil.copy(tmp_path / 'other' / 'RS_t2.dcm', root / 'RS.dcm')
        (root / 'notes.txt').write_text('MR to follow\n')
    elif content == 'ct only':
        shutil.copy(get_testdata_file('CT_small.dcm'), root / 'ct.dcm')
    with pytest.raises(DataPrepError, match=f'patient {PID}: no MR image series in .*{PID}'):
        prepare_patient(root, PID, OPTIONS)


def test_sequence_missing_for_a_patient_is_an_error(root):
    write_patient(root, sequences=('t1', 't2'))
    with pytest.raises(DataPrepError, match=f"patient {PID}: no series matches cet1; MR series "
                                            r"found: 'T1_TSE_TRA' \(t1/, 6 files\)"):
        prepare_patient(root, PID, OPTIONS)


def test_two_candidate_series_for_one_sequence_is_an_error(root):
    """Only when the selection rule ties (no contours, both axial, as many slices, one
    SeriesNumber); otherwise data_prep.sequences chooses (tests/test_series_selection.py)."""
    write_patient(root, sequences=('t2',))
    write_mr_series(root / 't2_cor', np.zeros(SHAPE), spacing=(1, 1, 3), origin=(0, 0, 0),
                    description='T2_TSE_COR', patient=PatientHeader(),
                    rng=np.random.default_rng(9))
    with pytest.raises(DataPrepError, match=f'patient {PID}: 2 series match t2: ') as error:
        prepare_patient(root, PID, T2_ONLY, require_contours=False)
    assert "'T2_TSE_TRA' (t2/, 6 files)" in str(error.value)
    assert "'T2_TSE_COR' (t2_cor/, 6 files)" in str(error.value)


# --- series geometry -----------------------------------------------------------------------

def _tilted(degrees: float) -> list[float]:
    a = np.deg2rad(degrees)
    return [1.0, 0.0, 0.0, 0.0, float(np.cos(a)), float(np.sin(a))]


@pytest.mark.parametrize('change, message', [
    ({'ImageOrientationPatient': [1, 0, 0, 0, 0, -1]}, 'ImageOrientationPatient differs'),
    ({'ImageOrientationPatient': _tilted(5.0)}, 'ImageOrientationPatient differs'),
    ({'PixelSpacing': [2.2, 2.2]}, 'PixelSpacing differs'),
    ({'ImagePositionPatient': [-29.5, -31.0, 2.0]}, 'sheared stack'),  # gantry tilt
], ids=['mixed orientations', 'one oblique slice', 'other pixel size', 'sheared stack'])
def test_slices_of_one_series_that_do_not_form_one_grid_are_an_error(root, change, message):
    series = write_patient(root, sequences=('t2',))['t2']
    edit(series.files[3], **change)
    with pytest.raises(DataPrepError, match=f'patient {PID}: file '
                                            f'{name_of(series.files[3], root)}.*{message}'):
        prepare_patient(root, PID, T2_ONLY)


def test_oblique_series_is_resampled_to_axial_with_a_warning(root):
    a = np.deg2rad(10.0)
    direction = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    write_patient(root, sequences=('t2',), direction=direction)
    prepared = prepare_patient(root, PID, T2_ONLY)['t2']
    assert prepared.info['warnings'] == ['t2: oblique series (10.0 degrees off the patient axes): '
                                         'resampled to the axial grid']
    assert any('GTV' in s.masks for s in prepared.slices)
    assert any('GTVln' in s.masks for s in prepared.slices)


def test_duplicated_slice_position_is_an_error(root):
    series = write_patient(root, sequences=('t2',))['t2']
    edit(series.files[4], ImagePositionPatient=[float(v) for v in series.slice_positions[3]])
    with pytest.raises(DataPrepError, match=f'patient {PID}: files .*have the same slice '
                                            'position') as error:
        prepare_patient(root, PID, T2_ONLY)
    for k in (3, 4):
        assert name_of(series.files[k], root) in str(error.value)


def test_identical_copy_of_a_slice_is_ignored_with_a_warning(root):
    series = write_patient(root, sequences=('t2',))['t2']
    clean = prepare_patient(root, PID, T2_ONLY)['t2']
    shutil.copy(series.files[2], root / 't2' / 'copy_of_slice.dcm')
    prepared = prepare_patient(root, PID, T2_ONLY)['t2']
    assert len(prepared.info['warnings']) == 1
    assert 't2/copy_of_slice.dcm are copies of one image' in prepared.info['warnings'][0]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(prepared.slices, clean.slices))


def test_one_missing_slice_is_interpolated_with_a_warning_and_masks_follow(root):
    """Slice 3 (inside the GTV) is missing and has no contour: image and mask are
    interpolated from slices 2 and 4, so the GTV has no hole in z."""
    rois = default_rois(np.eye(3))
    rois['GTVnx'] = [c for k, c in zip(GTV_SLICES, rois['GTVnx']) if k != 3]
    series = write_patient(root, sequences=('t2',), rois=rois, skip_slices=(3,))['t2']
    prepared = prepare_patient(root, PID, T2_ONLY)['t2']
    (warning,) = prepared.info['warnings']
    assert warning.startswith('t2: 1 missing slice(s) filled by linear interpolation (gap of '
                              '8.000 mm, median 4.000 mm, between files')
    assert name_of(series.files[2], root) in warning and name_of(series.files[4], root) in warning
    assert prepared.info['n_source_slices'] == 6 and len(prepared.slices) == 21
    z_gtv = [s.z_mm for s in prepared.slices if 'GTV' in s.masks]
    z2, z4 = ORIGIN[2] + 2 * SPACING[2], ORIGIN[2] + 4 * SPACING[2]
    assert min(z_gtv) <= z2 and max(z_gtv) >= z4
    assert len(z_gtv) == round(max(z_gtv) - min(z_gtv)) + 1  # no hole


@pytest.mark.parametrize('problem', ['irregular gap', 'two consecutive missing slices'])
def test_irregular_slice_gaps_are_an_error(root, problem):
    skip = (2, 3) if problem == 'two consecutive missing slices' else ()
    series = write_patient(root, sequences=('t2',), skip_slices=skip)['t2']
    if problem == 'irregular gap':
        edit(series.files[5], ImagePositionPatient=[-31.0, -31.0, 8.0])  # 2 mm, not 4 mm
        message = 'irregular slice gap of 2.000 mm'
        names = series.files[4:6]
    else:
        message = '2 consecutive slices missing'
        names = (series.files[1], series.files[4])
    with pytest.raises(DataPrepError, match=f'patient {PID}: {message}') as error:
        prepare_patient(root, PID, T2_ONLY)
    assert all(name_of(path, root) in str(error.value) for path in names)


@pytest.mark.parametrize('variant', ['rescale slope/intercept', 'signed 16-bit'])
def test_rescaled_and_signed_pixels_give_the_same_slices(tmp_path, variant):
    """The output maps intensity percentiles to grey levels, so an exact linear
    rescale, or a shift into negative signed values, gives the same slices."""
    plain = prepare_patient(_pixels_patient(tmp_path / 'plain', {}), PID, T2_ONLY)['t2']
    kwargs = ({'rescale': (2.5, -100.0)} if variant == 'rescale slope/intercept'
              else {'signed': True, 'shift': -3000.0})
    other = prepare_patient(_pixels_patient(tmp_path / 'other', kwargs), PID, T2_ONLY)['t2']
    assert len(other.slices) == len(plain.slices)
    differences = np.array([np.abs(a.image.astype(int) - b.image.astype(int)).max()
                            for a, b in zip(other.slices, plain.slices)])
    assert differences.max() <= 1 and (differences == 0).mean() > 0.5
    assert all(a.masks.keys() == b.masks.keys() for a, b in zip(other.slices, plain.slices))


def _pixels_patient(root: Path, kwargs: dict) -> Path:
    """Values 5 m - 100 (exact with slope 2.5, intercept -100), optionally shifted."""
    shift = kwargs.pop('shift', 0.0)
    volume = np.random.default_rng(4).integers(30, 200, SHAPE) * 5.0 - 100.0 + shift
    series = write_mr_series(root / 't2', volume, spacing=SPACING, origin=ORIGIN,
                             description='T2_TSE_TRA', patient=PatientHeader(),
                             rng=np.random.default_rng(5), **kwargs)
    if 'signed' in kwargs:
        assert pydicom.dcmread(series.files[0]).pixel_array.min() < 0
    if 'rescale' in kwargs:
        assert float(pydicom.dcmread(series.files[0]).RescaleSlope) == 2.5
    write_rtstruct(root / 'RS.dcm', series, default_rois(np.eye(3)), patient=PatientHeader(),
                   rng=np.random.default_rng(6))
    return root


# --- RTSTRUCT ------------------------------------------------------------------------------

@pytest.mark.parametrize('reference', ['another frame of reference', 'another series'])
def test_rtstruct_referring_elsewhere_is_an_error(root, tmp_path, reference):
    write_patient(root, sequences=('t2',))
    path = root / 'RS_t2.dcm'
    if reference == 'another frame of reference':
        ds = pydicom.dcmread(path)
        ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = '1.2.3.4.5'
        for roi in ds.StructureSetROISequence:
            roi.ReferencedFrameOfReferenceUID = '1.2.3.4.5'
        ds.save_as(path)
        message = 'RTSTRUCT RS_t2.dcm refers to the t2 series but to another frame of reference'
    else:
        other = write_patient(tmp_path / 'planning_ct', sequences=('t2',), seed=7)['t2']
        write_rtstruct(path, other, default_rois(np.eye(3)), patient=PatientHeader(),
                       rng=np.random.default_rng(8))
        message = ("no RTSTRUCT refers to the t2 series 'T2_TSE_TRA' .*RTSTRUCTs referring to "
                   'other series or frames of reference: RS_t2.dcm')
    with pytest.raises(DataPrepError, match=f'patient {PID}: {message}'):
        prepare_patient(root, PID, T2_ONLY)


def test_rtstruct_without_gtv_or_gtvln_roi_is_an_error(root):
    contour = slice_contour(2, (16, 16), (9.0, 9.0), np.eye(3))
    write_patient(root, sequences=('t2',), rois={'PTV70': [contour], 'Brainstem': [contour]})
    with pytest.raises(DataPrepError, match=f'patient {PID}: RTSTRUCT RS_t2.dcm has no GTV/GTVln '
                                            r"ROI \(ROIs: \['Brainstem', 'PTV70'\]\); add aliases"):
        prepare_patient(root, PID, T2_ONLY)


def test_contour_partly_outside_the_image_is_clipped_with_a_warning(root):
    rois = default_rois(np.eye(3))
    rois['GTVnd_L'] = [slice_contour(1, (1, 24), (6.0, 4.0), np.eye(3))]  # x from -37 mm
    write_patient(root, sequences=('t2',), rois=rois)
    prepared = prepare_patient(root, PID, T2_ONLY)['t2']
    assert prepared.info['warnings'] == [
        f"patient {PID}, RTSTRUCT RS_t2.dcm, ROI 'GTVnd_L': 1 contour(s) extend outside the "
        'image (slices [1]); the outside part is dropped']
    assert any('GTVln' in s.masks for s in prepared.slices)


def test_contour_entirely_outside_the_image_is_an_error(root):
    rois = default_rois(np.eye(3))
    rois['GTVnd_L'] = [slice_contour(1, (-12, 24), (4.0, 4.0), np.eye(3))]
    write_patient(root, sequences=('t2',), rois=rois)
    with pytest.raises(DataPrepError, match=f"patient {PID}, RTSTRUCT RS_t2.dcm, ROI 'GTVnd_L': "
                                            'a contour on slice 1 lies entirely outside'):
        prepare_patient(root, PID, T2_ONLY)


def test_open_and_degenerate_contours_are_skipped_with_a_warning(root):
    write_patient(root, sequences=('t2',))
    clean = prepare_patient(root, PID, T2_ONLY)['t2']
    path = root / 'RS_t2.dcm'
    ds = pydicom.dcmread(path)
    z = ORIGIN[2] + 3 * SPACING[2]
    for kind, points in (('POINT', [[0, 0, z]]), ('CLOSED_PLANAR', [[0, 0, z], [4, 0, z]]),
                         ('OPEN_PLANAR', [[0, 0, z], [4, 0, z], [4, 4, z]]),
                         ('CLOSED_PLANAR', [[0, 0, z], [2, 2, z], [4, 4, z]])):  # collinear
        item = Dataset()
        item.ContourGeometricType = kind
        item.NumberOfContourPoints = len(points)
        item.ContourData = [float(v) for v in np.ravel(points)]
        ds.ROIContourSequence[0].ContourSequence.append(item)  # ROI 1 = GTVnx
    ds.save_as(path)
    prepared = prepare_patient(root, PID, T2_ONLY)['t2']
    prefix = "t2 RTSTRUCT RS_t2.dcm: ROI 'GTVnx': skipped 1 contour(s) with "
    assert sorted(prepared.info['warnings']) == [
        prefix + reason for reason in ('OPEN_PLANAR geometric type', 'POINT geometric type',
                                       'fewer than 3 points', 'zero area')]
    for a, b in zip(prepared.slices, clean.slices):
        assert a.masks.keys() == b.masks.keys()
        assert all(np.array_equal(a.masks[c], b.masks[c]) for c in a.masks)


def test_inner_contour_of_the_same_roi_is_a_hole(root):
    rois = default_rois(np.eye(3))
    rois['GTVnx'].append(slice_contour(3, (16, 14), (3.0, 3.0), np.eye(3)))  # hole on slice 3
    write_patient(root, sequences=('t2',), rois=rois)
    slices = prepare_patient(root, PID, T2_ONLY)['t2'].slices
    z3 = ORIGIN[2] + 3 * SPACING[2]
    on_hole = next(s for s in slices if s.z_mm == pytest.approx(z3))
    mask = on_hole.masks['GTV']
    centre_u = round((ORIGIN[0] + 16 * SPACING[0] - on_hole.origin_mm[0]) / on_hole.spacing_mm[0])
    centre_v = round((ORIGIN[1] + 14 * SPACING[1] - on_hole.origin_mm[1]) / on_hole.spacing_mm[1])
    assert not mask[centre_v, centre_u] and mask[centre_v, centre_u + 6]
    (annotation,) = [a for a in slice_annotations(on_hole.masks, mask.shape)
                     if a['category_id'] == 1]
    assert isinstance(annotation['segmentation'], dict)  # RLE: a polygon cannot hold a hole
    assert annotation['area'] == mask.sum()


# --- clinical.csv --------------------------------------------------------------------------

def fake_cohort(tmp_path: Path, rows: dict[str, dict] | None = None,
                folders=('NPC001', 'NPC002', 'NPC003')) -> Path:
    """Empty patient folders + clinical.csv (clinical checks run before any DICOM is read)."""
    cohort = tmp_path / 'cohort'
    for pid in folders:
        (cohort / pid).mkdir(parents=True)
    rows = rows if rows is not None else {pid: {} for pid in folders}
    good = {'age': '50', 'msom': '0', 'dmfs_months': '30', 'dmfs_event': '0',
            'os_months': '30', 'os_event': '0'}
    table = pd.DataFrame([{'patient_id': pid, **good, **row} for pid, row in rows.items()])
    table.reindex(columns=CLINICAL_COLUMNS).to_csv(cohort / 'clinical.csv', index=False)
    return cohort


def _drop_column(cohort: Path) -> None:
    table = pd.read_csv(cohort / 'clinical.csv', dtype=str)
    table.drop(columns=['os_months']).to_csv(cohort / 'clinical.csv', index=False)


@pytest.mark.parametrize('case, message', [
    ('clinical.csv missing', r'clinical.csv: file not found'),
    ('required column missing', r"clinical.csv: missing required columns \['os_months'\]"),
    ('duplicate patient_id', r"patient_id 'NPC002' appears more than once \(lines 3, 4\)"),
    ('folder without a row', r"image folders without a row in clinical.csv: \['NPC003'\]"),
    ('row without a folder', r"rows in clinical.csv without an image folder: \['NPC009'\]"),
    ('non-numeric value', r"column 'age', row 2 \(line 3, patient NPC002\): '5O' is not a number"),
    ('event without time', r'row 2 \(line 3, patient NPC002\): dmfs_event is given but '
                           'dmfs_months is empty'),
])
def test_bad_clinical_table_is_refused_before_anything_is_written(tmp_path, case, message):
    rows = {'NPC001': {}, 'NPC002': {}, 'NPC003': {}}
    if case == 'duplicate patient_id':
        rows = {'NPC001': {}, 'NPC002': {}, 'NPC002 ': {}, 'NPC003': {}}  # stripped: a repeat
    elif case == 'folder without a row':
        del rows['NPC003']
    elif case == 'row without a folder':
        rows['NPC009'] = {}
    elif case == 'non-numeric value':
        rows['NPC002'] = {'age': '5O'}
    elif case == 'event without time':
        rows['NPC002'] = {'dmfs_event': '1', 'dmfs_months': ''}
    cohort = fake_cohort(tmp_path, rows)
    if case == 'clinical.csv missing':
        (cohort / 'clinical.csv').unlink()
    elif case == 'required column missing':
        _drop_column(cohort)
    out = tmp_path / 'out'
    with pytest.raises(DataPrepError, match=message):
        convert.convert_cohort(cohort, out, progress=False)
    assert not out.exists() and not convert.staging_dir(out).exists()


@pytest.mark.parametrize('row, problem', [
    ({'dmfs_event': '1', 'dmfs_months': ''}, 'dmfs_event is given but dmfs_months is empty'),
    ({'os_event': '', 'os_months': '30'}, 'os_months is given but os_event is empty'),
    ({'dmfs_months': '-2'}, r'dmfs_months is negative \(-2\)'),
    ({'dmfs_months': '40', 'os_months': '30'}, r'dmfs_months \(40\) is longer than os_months'),
    ({'msom': '1', 'dmfs_event': '0'}, 'msom is 1 but dmfs_event is 0'),
    ({'msom_site': 'liver'}, 'msom_site is given but msom is 0'),
    ({'dmfs_event': '2'}, "'2' must be 0 or 1"),
])
def test_inconsistent_outcome_columns_name_the_row(tmp_path, row, problem):
    cohort = fake_cohort(tmp_path, {'NPC001': {}, 'NPC002': row})
    table, bad = load_clinical(cohort / 'clinical.csv')
    assert list(table['patient_id']) == ['NPC001'] and list(bad) == ['NPC002']
    assert 'clinical.csv' in bad['NPC002'] and 'patient NPC002' in bad['NPC002']
    assert re.search(problem, bad['NPC002']), bad['NPC002']


def test_consistent_outcomes_with_missing_survival_are_accepted(tmp_path):
    cohort = fake_cohort(tmp_path, {
        'NPC001': {'msom': '1', 'msom_site': 'bone', 'dmfs_months': '12', 'dmfs_event': '1',
                   'os_months': '12', 'os_event': '1'},
        'NPC002': {'msom': '', 'dmfs_months': '', 'dmfs_event': '', 'os_months': '',
                   'os_event': ''}})
    table, bad = load_clinical(cohort / 'clinical.csv')
    assert bad == {} and list(table['patient_id']) == ['NPC001', 'NPC002']


# --- skip_bad_patients, interrupted runs, split leakage ------------------------------------

def real_cohort(tmp_path: Path, n: int = 3, rows: dict[str, dict] | None = None) -> Path:
    """``n`` tiny real patients (t2 only) + a consistent clinical.csv."""
    cohort = tmp_path / 'cohort'
    pids = [f'NPC{i:03d}' for i in range(1, n + 1)]
    for seed, pid in enumerate(pids):
        write_patient(cohort / pid, sequences=('t2',), seed=seed)
    table = pd.DataFrame([{'patient_id': pid, 'age': str(40 + i), 'msom': str(i % 2),
                           **(rows or {}).get(pid, {})} for i, pid in enumerate(pids)])
    table.reindex(columns=CLINICAL_COLUMNS).to_csv(cohort / 'clinical.csv', index=False)
    return cohort


def run(cohort: Path, out: Path, **kwargs) -> dict:
    kwargs.setdefault('options', T2_ONLY)
    kwargs.setdefault('val_fraction', 0.34)
    return convert.convert_cohort(cohort, out, progress=False, **kwargs)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_bad_patient_stops_the_run_unless_skipped(tmp_path, caplog):
    cohort = real_cohort(tmp_path, 4)
    broken = next((cohort / 'NPC002' / 't2').iterdir())
    broken.write_bytes(broken.read_bytes()[:300])
    out = tmp_path / 'out'
    with pytest.raises(DataPrepError, match=f'patient NPC002: .*t2/{broken.name}'):
        run(cohort, out)
    assert not out.exists() and convert.staging_dir(out).is_dir()

    with caplog.at_level(logging.WARNING, logger='data_prep.convert'):
        summary = run(cohort, out, skip_bad_patients=True)
    assert (summary['converted_patients'], summary['reused_patients']) == (2, 1)  # resumed
    assert list(summary['skipped']) == ['NPC002'] and broken.name in summary['skipped']['NPC002']
    assert f'skipping patient NPC002: patient NPC002: ' in caplog.text
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['skipped'] == summary['skipped']
    assert sorted(manifest['patients']) == ['NPC001', 'NPC003', 'NPC004']
    assert manifest['parameters']['skip_bad_patients'] is True
    clinical = pd.read_csv(out / 'clinical.csv', dtype=str)
    assert list(clinical['patient_id']) == ['NPC001', 'NPC003', 'NPC004']
    images = [p.name for p in (out / 't2' / 'images').iterdir()]
    assert images and not [name for name in images if name.startswith('NPC002')]


def test_parallel_workers_skip_bad_patients_too(tmp_path):
    cohort = real_cohort(tmp_path, 3)
    broken = next((cohort / 'NPC003' / 't2').iterdir())
    broken.write_bytes(broken.read_bytes()[:-40])  # cut pixel data
    with pytest.raises(DataPrepError, match=f'patient NPC003: .*t2/{broken.name}'):
        run(cohort, tmp_path / 'out', workers=2)
    summary = run(cohort, tmp_path / 'out', workers=2, skip_bad_patients=True)
    assert list(summary['skipped']) == ['NPC003'] and summary['patients'] == {'train': 1,
                                                                               'val': 1}


def test_skip_mode_leaves_out_bad_clinical_rows_and_unmatched_patients(tmp_path):
    cohort = real_cohort(tmp_path, 4, rows={'NPC003': {'hgb': 'pending'}})  # ('n/a' = missing)
    shutil.rmtree(cohort / 'NPC004')  # a row without images
    write_patient(cohort / 'NPC005', sequences=('t2',), seed=5)  # images without a row
    split_file = tmp_path / 'split.csv'  # may list skipped patients
    split_file.write_text('patient_id,split\nNPC001,train\nNPC002,val\nNPC003,val\nNPC004,val\n')
    out = tmp_path / 'out'
    summary = run(cohort, out, skip_bad_patients=True, split_file=split_file)
    assert summary['patients'] == {'train': 1, 'val': 1}
    reasons = summary['skipped']
    assert list(reasons) == ['NPC003', 'NPC004', 'NPC005']
    assert "column 'hgb'" in reasons['NPC003'] and 'clinical.csv' in reasons['NPC003']
    assert 'has no image folder' in reasons['NPC004']
    assert 'NPC005 has no row in clinical.csv' in reasons['NPC005']
    assert json.loads((out / 'manifest.json').read_text())['skipped'] == reasons


def test_interrupted_conversion_resumes_without_redoing_finished_patients(tmp_path, monkeypatch):
    cohort = real_cohort(tmp_path, 3)
    calls, interrupt = [], {'NPC002'}

    def interrupted_at_npc002(patient_dir, pid, options, *, require_contours=True):
        calls.append(pid)
        if pid in interrupt:
            interrupt.remove(pid)
            raise KeyboardInterrupt  # Ctrl-C after NPC001 finished
        return prepare_patient(patient_dir, pid, options, require_contours=require_contours)
    monkeypatch.setattr(convert, 'prepare_patient', interrupted_at_npc002)
    out = tmp_path / 'out'
    with pytest.raises(KeyboardInterrupt):
        run(cohort, out)
    assert not out.exists() and convert.staging_dir(out).is_dir()
    # a patient killed half-way leaves JPEGs without fragment.json: it is converted again
    half_done = convert.staging_dir(out) / '.work' / 'patients' / 'NPC003' / 't2'
    half_done.mkdir(parents=True)
    (half_done / 'NPC003_t2_0000.jpg').write_bytes(b'half a jpeg')

    calls.clear()
    summary = run(cohort, out)
    assert calls == ['NPC002', 'NPC003']
    assert (summary['converted_patients'], summary['reused_patients']) == (2, 1)
    assert not convert.staging_dir(out).exists()
    monkeypatch.undo()
    run(cohort, tmp_path / 'uninterrupted')
    assert tree_bytes(out) == tree_bytes(tmp_path / 'uninterrupted')


def test_interrupted_final_assembly_is_redone_without_converting_again(tmp_path, monkeypatch):
    cohort = real_cohort(tmp_path, 3)
    out = tmp_path / 'out'
    original = convert._check_split_integrity

    def crash(staging, sequence):
        raise KeyboardInterrupt
    monkeypatch.setattr(convert, '_check_split_integrity', crash)
    with pytest.raises(KeyboardInterrupt):
        run(cohort, out)
    assert not out.exists() and (convert.staging_dir(out) / 't2' / 'images').is_dir()
    monkeypatch.setattr(convert, '_check_split_integrity', original)
    calls = []

    def counting(patient_dir, pid, options, *, require_contours=True):
        calls.append(pid)
        return prepare_patient(patient_dir, pid, options, require_contours=require_contours)
    monkeypatch.setattr(convert, 'prepare_patient', counting)
    summary = run(cohort, out)
    assert calls == [] and summary['reused_patients'] == 3
    fresh = tmp_path / 'fresh'
    run(cohort, fresh)
    assert tree_bytes(out) == tree_bytes(fresh)


def test_split_file_putting_a_patient_in_both_splits_is_refused(tmp_path):
    cohort = fake_cohort(tmp_path)
    split_file = tmp_path / 'split.csv'
    split_file.write_text('patient_id,split\nNPC001,train\nNPC002,train\nNPC002,val\n'
                          'NPC003,val\n')
    out = tmp_path / 'out'
    with pytest.raises(DataPrepError, match=r"patients listed more than once: \['NPC002'\]"):
        convert.convert_cohort(cohort, out, split_file=split_file, progress=False)
    assert not out.exists() and not convert.staging_dir(out).exists()
