"""``check`` (dry run): per patient what was found, what would be used, and what is wrong,
without stopping at a bad patient and without writing anything."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_prep.check import check_cohort
from data_prep.clinical import CLINICAL_COLUMNS
from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.options import PrepOptions

REPO = Path(__file__).resolve().parents[2]
X, Y, Z = np.eye(3)
DESCRIPTIONS = {'t1': 'T1_TSE_TRA', 't2': 'T2_TSE_TRA', 'cet1': 'T1_CE_TRA'}


def write_patient(root, index, *, rtstruct_on='cet1', extra_cet1=False):
    """t1, t2, cet1 (axial, one frame of reference) + an RTSTRUCT with a GTV and a node
    drawn on ``rtstruct_on`` (None: no RTSTRUCT); ``extra_cet1``: a coronal CE-T1 too."""
    frame = f'1.2.826.0.1.3680043.8.498.{500 + index}'
    uids = [frame]
    written = {}
    series = [(s, d, np.eye(3), 6) for s, d in DESCRIPTIONS.items()]
    if extra_cet1:
        series.append(('cet1_cor', 'T1_CE_COR', np.column_stack([X, -Z, Y]), 16))
    for number, (folder, description, direction, n) in enumerate(series, start=1):
        written[folder] = write_mr_series(
            root / folder, np.full((n, 16, 16), 150.0), spacing=(2.0, 2.0, 3.0),
            origin=(-16.0, -16.0, -9.0), direction=direction, description=description,
            patient=PatientHeader(), frame_of_reference_uid=frame, series_number=number,
            rng=np.random.default_rng([index, number]))
        uids += [written[folder].series_uid, *written[folder].sop_instance_uids]
    if rtstruct_on:
        gtv = ellipse_contour((0.0, 0.0, 0.0), (6.0, 4.0), 24)
        node = ellipse_contour((-8.0, 8.0, 3.0), (2.5, 2.5), 16)
        write_rtstruct(root / 'RS' / 'rs.dcm', written[rtstruct_on],
                       {'GTV_P': [gtv], 'GTVnd_L': [node], 'Cord': [node]},
                       patient=PatientHeader(), rng=np.random.default_rng(index))
    return uids


@pytest.fixture(scope='module')
def cohort(tmp_path_factory):
    """NPC001 good; NPC002 two CE-T1 candidates, contours on T2; NPC003 no RTSTRUCT;
    NPC004 good images but msom '2' in clinical.csv."""
    root = tmp_path_factory.mktemp('check') / 'cohort'
    uids = write_patient(root / 'NPC001', 1)
    uids += write_patient(root / 'NPC002', 2, rtstruct_on='t2', extra_cet1=True)
    uids += write_patient(root / 'NPC003', 3, rtstruct_on=None)
    uids += write_patient(root / 'NPC004', 4)
    rows = [{'patient_id': f'NPC00{i}', 'age': '50', 'msom': '2' if i == 4 else '0'}
            for i in range(1, 5)]
    pd.DataFrame(rows).reindex(columns=CLINICAL_COLUMNS).to_csv(root / 'clinical.csv',
                                                                 index=False)
    return root, uids


def listing(root):
    return sorted((p.relative_to(root).as_posix(), p.stat().st_mtime_ns)
                  for p in root.rglob('*'))


def test_every_patient_is_checked_and_the_problems_are_named(cohort):
    root, _ = cohort
    checks = check_cohort(root, PrepOptions())
    assert [(c.patient_id, c.would_convert) for c in checks] == [
        ('NPC001', True), ('NPC002', True), ('NPC003', False), ('NPC004', False)]
    good = checks[0]
    assert [(s.description, s.folder, s.n_files, s.orientation, s.frame_of_reference,
             s.assigned) for s in good.series] == [
        ('T1_CE_TRA', 'cet1', 6, 'axial', 1, 'cet1'), ('T1_TSE_TRA', 't1', 6, 'axial', 1, 't1'),
        ('T2_TSE_TRA', 't2', 6, 'axial', 1, 't2')]
    assert [(r.file, r.frame_of_reference, r.drawn_on) for r in good.rtstructs] == [
        ('RS/rs.dcm', 1, 'cet1')]
    assert {s.sequence: (s.contours, s.rtstruct) for s in good.sequences} == {
        't1': ('propagated from cet1', 'RS/rs.dcm'), 't2': ('propagated from cet1', 'RS/rs.dcm'),
        'cet1': ('own RTSTRUCT', 'RS/rs.dcm')}
    assert good.sequences[0].classes == {'GTV': ['GTV_P'], 'GTVln': ['GTVnd_L']}
    assert good.clinical_problems == [] and good.problems == []


def test_two_candidates_are_resolved_and_shown(cohort):
    root, _ = cohort
    two = check_cohort(root, PrepOptions())[1]
    cet1 = next(s for s in two.sequences if s.sequence == 'cet1')
    assert cet1.selection == {'chosen': {'description': 'T1_CE_TRA', 'folder': 'cet1'},
                              'rejected': [{'description': 'T1_CE_COR', 'folder': 'cet1_cor'}],
                              'reason': 'closest to axial'}
    assert cet1.contours == 'propagated from t2'
    notes = {s.description: (s.orientation, s.assigned, s.note) for s in two.series}
    assert notes['T1_CE_TRA'] == ('axial', 'cet1', 'closest to axial')
    assert notes['T1_CE_COR'] == ('coronal', None, 'passed over for cet1')


def test_missing_contours_and_bad_clinical_rows_are_reported_per_patient(cohort):
    root, _ = cohort
    checks = check_cohort(root, PrepOptions())
    none = checks[2]
    assert {s.contours for s in none.sequences} == {'missing'}
    assert len(none.problems) == 3
    assert all('patient NPC003: no RTSTRUCT refers to the' in p for p in none.problems)
    bad = checks[3]
    assert len(bad.clinical_problems) == 1 and 'msom' in bad.clinical_problems[0]
    assert bad.problems == bad.clinical_problems
    assert {s.contours for s in bad.sequences} == {'own RTSTRUCT', 'propagated from cet1'}


def test_a_subset_of_sequences_and_an_unreadable_table(cohort, tmp_path):
    root, _ = cohort
    checks = check_cohort(root, PrepOptions(sequences=('cet1',)))
    assert [s.sequence for c in checks for s in c.sequences] == ['cet1'] * 4
    t1 = next(s for s in checks[0].series if s.description == 'T1_TSE_TRA')
    assert (t1.assigned, t1.note) == ('t1', 'only candidate, not converted')
    lonely = tmp_path / 'no_table'
    lonely.mkdir()
    (lonely / 'NPC001').symlink_to(root / 'NPC001', target_is_directory=True)
    [check] = check_cohort(lonely, PrepOptions())
    assert not check.would_convert and check.sequences[0].contours == 'propagated from cet1'
    assert check.problems == [f'clinical table: {lonely / "clinical.csv"}: file not found']


def run_cli(*args):
    return subprocess.run([sys.executable, '-m', 'data_prep', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_a_table_writes_json_and_exits_1_when_a_patient_would_fail(cohort, tmp_path):
    root, uids = cohort
    before = listing(root)
    out = tmp_path / 'check.json'
    result = run_cli('check', root, '--json', out)
    assert result.returncode == 1, result.stderr
    text = result.stdout
    assert 'NPC001: would convert' in text and 'NPC003: WOULD NOT CONVERT' in text
    assert "'T1_CE_COR'" in text and 'passed over for cet1' in text
    assert "[closest to axial; over 'T1_CE_COR']" in text
    assert 'contours: propagated from cet1 RS/rs.dcm; classes: GTV: GTV_P; GTVln: GTVnd_L' \
        in text
    assert '2 of 4 patients would convert; not: NPC003, NPC004' in text
    records = json.loads(out.read_text())
    assert records['would_convert'] == 2
    assert [p['would_convert'] for p in records['patients']] == [True, True, False, False]
    assert listing(root) == before  # nothing written into the cohort
    for uid in uids:
        assert uid not in text and uid not in out.read_text()


def test_cli_exits_0_when_every_patient_would_convert(cohort, tmp_path):
    root, _ = cohort
    overrides = tmp_path / 'o.csv'
    overrides.write_text('patient_id,sequence,series\nNPC002,cet1,cet1_cor\n')
    small = tmp_path / 'small'
    small.mkdir()
    for name in ('NPC001', 'NPC002'):
        (small / name).symlink_to(root / name, target_is_directory=True)
    table = pd.read_csv(root / 'clinical.csv', dtype=str)
    table[table['patient_id'].isin(['NPC001', 'NPC002'])].to_csv(small / 'clinical.csv',
                                                                  index=False)
    result = run_cli('check', small, '--sequences', 'cet1', '--series-overrides', overrides)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '2 of 2 patients would convert' in result.stdout
    assert "[series override; over 'T1_CE_TRA']" in result.stdout
