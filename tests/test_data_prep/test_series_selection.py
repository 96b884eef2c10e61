"""Several candidate series for one sequence: the documented rule, overrides, manifest."""
import dataclasses

import numpy as np
import pytest

from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.discover import scan_patient
from data_prep.options import PrepOptions, load_options, load_series_overrides, parse_sequences
from data_prep.patient import prepare_patient
from data_prep.sequences import SELECTION_RULE, choose_series, orientation_label
from data_prep.types import DataPrepError

PID = 'NPC_101'
FRAME = '1.2.826.0.1.3680043.8.498.101'
X, Y, Z = np.eye(3)
AXIAL = np.eye(3)
CORONAL = np.column_stack([X, -Z, Y])


def tilted(degrees):
    """Axial rotated about x by ``degrees``."""
    a = np.deg2rad(degrees)
    return np.column_stack([X, [0, np.cos(a), np.sin(a)], [0, -np.sin(a), np.cos(a)]])


def write(root, folder, description, *, direction=AXIAL, n=6, number=1, seed=0):
    return write_mr_series(root / folder, np.full((n, 16, 16), 200.0), spacing=(2.0, 2.0, 3.0),
                           origin=(-16.0, -16.0, -9.0), direction=direction,
                           description=description, patient=PatientHeader(),
                           frame_of_reference_uid=FRAME, series_number=number,
                           rng=np.random.default_rng([seed, number]))


def contour_on(root, series, name='RS.dcm'):
    """A GTV on the slice plane through the middle of ``series``."""
    normal = series.slice_normal
    middle = series.slice_positions[len(series.slice_positions) // 2]
    centre = middle + series.direction[:, 0] * 12 + series.direction[:, 1] * 12
    contour = ellipse_contour(centre, (5.0, 4.0), 24,
                              plane_axes=(series.direction[:, 0], series.direction[:, 1]))
    assert abs((contour - middle) @ normal).max() < 1e-6
    write_rtstruct(root / name, series, {'GTV': [contour]}, patient=PatientHeader(),
                   rng=np.random.default_rng(len(name)))


def choose(root, options=None, referenced=frozenset()):
    series = scan_patient(root, PID)
    return choose_series('cet1', series, options or PrepOptions(), patient_id=PID,
                         referenced=referenced)


def test_the_rule_has_four_steps_in_order():
    assert SELECTION_RULE == ('referenced by the contours', 'closest to axial', 'most slices',
                              'later series number')


def test_step1_the_series_the_contours_refer_to_wins_over_an_axial_one(tmp_path):
    root = tmp_path / PID
    write(root, 'tra', 'T1_CE_TRA', number=5)
    cor = write(root, 'cor', 'T1_CE_COR', direction=CORONAL, n=16, number=6)
    contour_on(root, cor)
    prepared = prepare_patient(root, PID, PrepOptions(output_size=32, sequences=('cet1',)))
    assert prepared['cet1'].info['series_selection'] == {
        'chosen': {'description': 'T1_CE_COR', 'folder': 'cor'},
        'rejected': [{'description': 'T1_CE_TRA', 'folder': 'tra'}],
        'reason': 'referenced by the contours'}
    assert prepared['cet1'].info['series_description'] == 'T1_CE_COR'


def test_step2_the_one_closest_to_axial(tmp_path):
    root = tmp_path / PID
    write(root, 'cor', 'T1_CE_COR', direction=CORONAL, n=16, number=9)
    write(root, 'obl', 'T1_CE_OBL', direction=tilted(20), n=12, number=8)
    write(root, 'tra', 'T1_CE_TRA', direction=tilted(4), number=2)
    choice = choose(root)
    assert (choice.series.description, choice.reason) == ('T1_CE_TRA', 'closest to axial')
    assert [s.description for s in choice.rejected] == ['T1_CE_COR', 'T1_CE_OBL']
    labels = {s.description: orientation_label(s) for s in scan_patient(root, PID)}
    assert labels == {'T1_CE_COR': 'coronal', 'T1_CE_OBL': 'oblique', 'T1_CE_TRA': 'axial'}


def test_step3_most_slices_among_equally_axial_ones(tmp_path):
    """Half a degree of tilt counts as axial (AXIAL_TIE_DEG): slices decide."""
    root = tmp_path / PID
    write(root, 'a', 'T1_CE_TRA', n=6, number=7)
    write(root, 'b', 'T1_CE_TRA_FS', direction=tilted(0.5), n=9, number=3)
    choice = choose(root)
    assert (choice.series.description, choice.reason) == ('T1_CE_TRA_FS', 'most slices')


def test_step4_the_later_series_number_of_a_repeat(tmp_path):
    root = tmp_path / PID
    write(root, 'first', 'T1_CE_TRA', number=7)
    write(root, 'repeat', 'T1_CE_TRA', number=12, seed=1)
    write(root, 'old', 'T1_CE_TRA', number=3, seed=2)
    choice = choose(root)
    assert (choice.series.files[0].parent.name, choice.reason) == ('repeat',
                                                                   'later series number')
    assert len(choice.rejected) == 2


def test_a_tie_after_every_step_names_both_and_the_overrides_file(tmp_path):
    root = tmp_path / PID
    write(root, 'a', 'T1_CE_TRA', number=4)
    write(root, 'b', 'T1_CE_TRA', number=4, seed=1)
    with pytest.raises(DataPrepError, match=rf"patient {PID}: 2 series match cet1: 'T1_CE_TRA' "
                                            r"\(a/, 6 files\), 'T1_CE_TRA' \(b/, 6 files\);"
                                            '.*--series-overrides'):
        choose(root)


@pytest.fixture
def candidates(tmp_path):
    """Two cet1 candidates, the coronal one referenced by the contours."""
    root = tmp_path / PID
    tra = write(root, 'series/tra', 'T1_CE_TRA', number=5)
    cor = write(root, 'series/cor', 'T1_CE_COR', direction=CORONAL, number=6)
    return root, tra, cor


def overrides_file(tmp_path, series):
    path = tmp_path / 'overrides.csv'
    path.write_text(f'patient_id,sequence,series\nNPC_999,cet1,whatever\n{PID},cet1,{series}\n')
    return path


@pytest.mark.parametrize('named', ['T1_CE_TRA', '5', 'series/tra', 'series/tra/'])
def test_an_override_wins_over_the_rule(candidates, tmp_path, named):
    root, tra, cor = candidates
    options = load_options(None, series_overrides=overrides_file(tmp_path, named))
    choice = choose(root, options, referenced=frozenset({cor.series_uid}))
    assert (choice.series.series_uid, choice.reason) == (tra.series_uid, 'series override')
    assert choice.manifest_entry()['rejected'] == [{'description': 'T1_CE_COR',
                                                    'folder': 'series/cor'}]
    assert choose(root, referenced=frozenset({cor.series_uid})).series.series_uid == \
        cor.series_uid


def test_an_override_may_pick_a_series_no_pattern_matches(candidates, tmp_path):
    root, _, _ = candidates
    write(root, 'vibe', 'VIBE_3D', number=8)
    options = load_options(None, series_overrides=overrides_file(tmp_path, 'VIBE_3D'))
    assert choose(root, options).series.description == 'VIBE_3D'


def test_an_override_naming_no_series_is_an_error_naming_patient_and_file(candidates, tmp_path):
    root, _, _ = candidates
    path = overrides_file(tmp_path, 'T1_CE_SAG')
    options = load_options(None, series_overrides=path)
    with pytest.raises(DataPrepError, match=rf"patient {PID}: series overrides file {path} names "
                                            r"'T1_CE_SAG' for cet1, but no MR series"):
        choose(root, options)
    with pytest.raises(DataPrepError, match=f'series overrides file {path}'):
        prepare_patient(root, PID, dataclasses.replace(options, sequences=('cet1',)))


def test_an_override_matching_two_series_asks_for_the_folder(tmp_path):
    root = tmp_path / PID
    write(root, 'a', 'T1_CE_TRA', number=4)
    write(root, 'b', 'T1_CE_TRA', number=5, seed=1)
    options = load_options(None, series_overrides=overrides_file(tmp_path, 'T1_CE_TRA'))
    with pytest.raises(DataPrepError, match='matches 2 series.*name the folder'):
        choose(root, options)
    options = load_options(None, series_overrides=overrides_file(tmp_path, 'a'))
    assert choose(root, options).series.files[0].parent.name == 'a'


@pytest.mark.parametrize('text, message', [
    ('patient,sequence,series\nP1,cet1,x\n', r"missing columns \['patient_id'\]"),
    ('patient_id,sequence,series\nP1,dwi,x\n', "line 2: unknown sequence 'dwi'"),
    ('patient_id,sequence,series\n\nP1,cet1,\n', 'line 3: empty cell'),
    ('patient_id,sequence,series\nP1,cet1,a\nP1,CET1,b\n', 'line 3: patient P1 CET1 is given '
                                                           'twice'),
])
def test_bad_overrides_files_are_refused_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / 'o.csv'
    path.write_text(text)
    with pytest.raises(DataPrepError, match=f'series overrides file {path}.*{message}'):
        load_series_overrides(path)


def test_overrides_file_is_read_per_patient_and_sequence(tmp_path):
    path = tmp_path / 'o.csv'
    path.write_text('patient_id,sequence,series\nP1,cet1, T1 post \nP1,t2,4\nP2,T1,a/b\n')
    assert load_series_overrides(path) == {'P1': {'cet1': 'T1 post', 't2': '4'},
                                           'P2': {'t1': 'a/b'}}


@pytest.mark.parametrize('given, expected', [
    ('cet1', ('cet1',)), ('t2,cet1', ('t2', 'cet1')), (['cet1', 't1'], ('t1', 'cet1')),
    (['t2, t1', 'T2'], ('t1', 't2')),
])
def test_parse_sequences(given, expected):
    assert parse_sequences(given) == expected


@pytest.mark.parametrize('given', ['', 'dwi', 't1,flair', [','] ])
def test_parse_sequences_refuses_unknown_names(given):
    with pytest.raises(DataPrepError, match='non-empty subset'):
        parse_sequences(given)
