"""Series description -> sequence, user overrides, and RTSTRUCT -> sequence matching."""
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.discover import scan_patient
from data_prep.options import PrepOptions, load_options
from data_prep.sequences import assign_sequences, match_rtstructs
from data_prep.types import DataPrepError, SeriesInfo

PID = 'P007'


@pytest.mark.parametrize('description, sequence', [
    ('T1_CE_TRA', 'cet1'), ('Ax T1 +C', 'cet1'), ('T1 FS POST GD', 'cet1'), ('T1CE', 'cet1'),
    ('t1_tse_tra_fs_Gd', 'cet1'), ('T1+C', 'cet1'), ('sag T1 C+', 'cet1'), ('T1C', 'cet1'),
    ('VIBE post contrast', 'cet1'), ('T1 enhanced', 'cet1'), ('T1W gado', 'cet1'),
    ('T1_TSE_TRA', 't1'), ('Ax T1 FLAIR', 't1'), ('T1WI', 't1'), ('T1FS', 't1'),
    ('T1 pre contrast', 't1'), ('T1 non-contrast', 't1'), ('T1 sequence', 't1'),
    ('T2_TSE_TRA_FS', 't2'), ('Ax T2 FS', 't2'), ('T2WI', 't2'), ('T2 post Gd', 't2'),
    ('T2 spec', 't2'), ('sequence spec', None), ('DWI b1000', None), ('FAST LOCALIZER', None),
    ('', None), ('T10 map', None), ('ADC', None),
])
def test_default_sequence_patterns(description, sequence):
    assert PrepOptions().sequence_of(description) == sequence


def _info(description, folder, n=3, modality='MR'):
    files = tuple(Path('/cohort') / PID / folder / f'{i}.dcm' for i in range(n))
    return SeriesInfo(patient_id=PID, modality=modality, series_uid=f'1.2.{folder}',
                      frame_of_reference_uid='1.2.9', description=description, files=files,
                      sop_instance_uids=tuple(f'1.2.{folder}.{i}' for i in range(n)))


def test_assign_sequences_picks_one_series_each_and_ignores_others():
    series = [_info('T2_TSE_TRA', 's2'), _info('T1_CE_TRA', 's3'), _info('localizer', 's0'),
              _info('T1_TSE_TRA', 's1'), _info('DWI', 's4'), _info('RS', 'rs', 1, 'RTSTRUCT')]
    assigned = assign_sequences(series, PrepOptions())
    assert {k: v.description for k, v in assigned.items()} == {
        't1': 'T1_TSE_TRA', 't2': 'T2_TSE_TRA', 'cet1': 'T1_CE_TRA'}


def test_missing_sequence_raises_listing_the_series_found():
    series = [_info('T2_TSE_TRA', 's2'), _info('T1_TSE_TRA', 's1')]
    with pytest.raises(DataPrepError, match=r"P007: no series matches cet1; MR series found: "
                                            r"'T2_TSE_TRA' \(s2/, 3 files\), 'T1_TSE_TRA'"):
        assign_sequences(series, PrepOptions())


def test_two_candidates_raise_naming_both():
    series = [_info('T2_TSE_TRA', 'a'), _info('T2_TSE_COR', 'b'), _info('T1', 'c'),
              _info('T1+C', 'd')]
    with pytest.raises(DataPrepError, match=r"2 series match t2: 'T2_TSE_TRA' \(a/.*"
                                            r"'T2_TSE_COR' \(b/"):
        assign_sequences(series, PrepOptions())


def test_user_mapping_file_overrides_and_resolves_ambiguity(tmp_path):
    mapping = tmp_path / 'mapping.json'
    mapping.write_text(json.dumps({'sequence_patterns': {
        't2': ['^t2.*tra'], 'cet1': ['^se_post$'], 't1': ['^se_pre$']}}))
    series = [_info('T2_TSE_TRA', 'a'), _info('T2_TSE_COR', 'b'), _info('SE_PRE', 'c'),
              _info('SE_POST', 'd')]
    assigned = assign_sequences(series, load_options(mapping))
    assert {k: v.files[0].parent.name for k, v in assigned.items()} == {
        't1': 'c', 't2': 'a', 'cet1': 'd'}


def test_only_the_wanted_sequences_are_required():
    options = PrepOptions(sequences=('t2',))
    assert list(assign_sequences([_info('T2', 'a')], options)) == ['t2']


@pytest.mark.parametrize('content, message', [
    ('{not json', 'cannot read JSON'), ('[1, 2]', 'expected a JSON object'),
    ('{"sequence_pattern": {}}', 'unknown keys'),
    ('{"sequence_patterns": {"t1": "t1"}}', 'lists of strings'),
    ('{"sequence_patterns": {"t1": ["t1("]}}', 'bad regex'),
    ('{"roi_aliases": {"CTV": ["ctv"]}}', 'unknown classes'),
])
def test_bad_mapping_files_raise(tmp_path, content, message):
    mapping = tmp_path / 'm.json'
    mapping.write_text(content)
    with pytest.raises(DataPrepError, match=message):
        load_options(mapping)


# ---- RTSTRUCT matching on written DICOM ------------------------------------------------


def _write_session(tmp_path, frame='1.2.826.0.1.3680043.8.498.77'):
    """Three MR series sharing one frame of reference, as in one MR session."""
    rng = np.random.default_rng(0)
    written = {}
    for n, (sequence, description) in enumerate([('t1', 'T1'), ('t2', 'T2'), ('cet1', 'T1 +C')]):
        written[sequence] = write_mr_series(
            tmp_path / PID / sequence, np.zeros((4, 8, 8)), spacing=(2.0, 2.0, 3.0),
            origin=(0.0, 0.0, 0.0), description=description, patient=PatientHeader(),
            frame_of_reference_uid=frame, series_number=n + 1, rng=rng)
    return written


def _rtstruct(tmp_path, name, series, seed, **kwargs):
    write_rtstruct(tmp_path / PID / 'rs' / name, series,
                   {'GTV': [ellipse_contour((7.0, 7.0, 3.0), (3.0, 3.0), 8)]},
                   patient=PatientHeader(), rng=np.random.default_rng(seed), **kwargs)


def _scan(tmp_path):
    found = scan_patient(tmp_path / PID, PID)
    mr = assign_sequences(found, PrepOptions())
    return mr, [s for s in found if s.modality == 'RTSTRUCT']


@pytest.mark.parametrize('reference_series', [True, False])  # False: via image references
def test_each_rtstruct_matches_its_series(tmp_path, reference_series):
    written = _write_session(tmp_path)
    for n, sequence in enumerate(written):
        _rtstruct(tmp_path, f'{sequence}.dcm', written[sequence], n,
                  reference_series=reference_series)
    matched = match_rtstructs(*_scan(tmp_path))
    assert {k: v.name for k, v in matched.items()} == {s: f'{s}.dcm' for s in written}


def test_frame_of_reference_alone_matches_only_when_unambiguous(tmp_path):
    written = _write_session(tmp_path)
    _rtstruct(tmp_path, 't2.dcm', written['t2'], 1, reference_series=False,
              reference_images=False)
    mr, rtstructs = _scan(tmp_path)
    with pytest.raises(DataPrepError, match='no RTSTRUCT refers to the t1 series'):
        match_rtstructs(mr, rtstructs)  # all three share the frame of reference
    only_t2 = {'t2': mr['t2']}
    assert match_rtstructs(only_t2, rtstructs)['t2'].name == 't2.dcm'


def test_rtstruct_with_another_frame_of_reference_raises(tmp_path):
    written = _write_session(tmp_path)
    for n, sequence in enumerate(written):
        _rtstruct(tmp_path, f'{sequence}.dcm', written[sequence], n)
    path = tmp_path / PID / 'rs' / 'cet1.dcm'
    ds = pydicom.dcmread(path)
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = '1.2.3.4'
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = '1.2.3.4'
    ds.save_as(path)
    with pytest.raises(DataPrepError, match='rs/cet1.dcm refers to the cet1 series but to '
                                            'another frame of reference'):
        match_rtstructs(*_scan(tmp_path))


def test_two_rtstructs_for_one_sequence_raise(tmp_path):
    written = _write_session(tmp_path)
    for n, sequence in enumerate(written):
        _rtstruct(tmp_path, f'{sequence}.dcm', written[sequence], n)
    _rtstruct(tmp_path, 't2_v2.dcm', written['t2'], 9)
    with pytest.raises(DataPrepError, match=r'several RTSTRUCTs refer to the t2 series .*'
                                            r'rs/t2.dcm, rs/t2_v2.dcm'):
        match_rtstructs(*_scan(tmp_path))


def test_missing_rtstruct_names_the_unmatched_ones(tmp_path):
    written = _write_session(tmp_path)
    _rtstruct(tmp_path, 't1.dcm', written['t1'], 0)
    _rtstruct(tmp_path, 't2.dcm', written['t2'], 1)
    ct = write_mr_series(tmp_path / 'elsewhere', np.zeros((2, 4, 4)), spacing=(1, 1, 3),
                         origin=(0, 0, 0), description='CT-like', patient=PatientHeader(),
                         rng=np.random.default_rng(5))
    _rtstruct(tmp_path, 'plan_ct.dcm', ct, 2)  # refers to a series that is not here
    with pytest.raises(DataPrepError, match=r"no RTSTRUCT refers to the cet1 series 'T1 \+C'.*"
                                            r'other series or frames of reference: rs/plan_ct.dcm'):
        match_rtstructs(*_scan(tmp_path))


def test_rtstructs_of_sequences_not_converted_are_matched_second(tmp_path):
    """own_rtstructs: first the converted sequences (the frame-of-reference-only rule as
    before), then the others, which may lend their contours (contour propagation)."""
    from data_prep.sequences import own_rtstructs, read_rtstruct_files

    written = _write_session(tmp_path)
    _rtstruct(tmp_path, 'on_t1.dcm', written['t1'], 0)
    _rtstruct(tmp_path, 'frame_only.dcm', written['t2'], 1, reference_series=False,
              reference_images=False)
    mr, rtstructs = _scan(tmp_path)
    files = read_rtstruct_files(rtstructs, PID)
    own, unmatched = own_rtstructs({'t2': mr['t2']}, files, PID,
                                   others={'t1': mr['t1'], 'cet1': mr['cet1']})
    assert {k: v.name for k, v in own.items()} == {'t2': 'frame_only.dcm', 't1': 'on_t1.dcm'}
    assert unmatched == []
    own, unmatched = own_rtstructs({'cet1': mr['cet1']}, files, PID)
    assert own == {'cet1': tmp_path / PID / 'rs' / 'frame_only.dcm'}
    assert unmatched == ['rs/on_t1.dcm']
