"""Cut-off rule, patient selection and the undefined-statistics cases of run_km."""
from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from data_prep.types import DataPrepError
from mmnpc.survival import has_survival_columns, resolve_cutoff, run_km

from .conftest import HIGH, LOW, write_cohort


# ---------------------------------------------------------------- cut-off rule

def test_cutoff_from_metrics_json(cohort):
    scores, _ = cohort
    value, source = resolve_cutoff(scores)
    assert value == 0.5 and 'training' in source


def test_user_cutoff_overrides_metrics_json(cohort, tmp_path):
    scores, clinical = cohort
    assert resolve_cutoff(scores, 0.2) == (0.2, 'given by the user')
    report = run_km(scores, clinical, tmp_path / 'out', cutoff=0.2)
    # L2 (0.20) and everything above is high now; L1/L5/L6 (0.10/0.05/0.15) stay low
    assert (report['n_high'], report['n_low']) == (15, 3)
    assert report['cutoff'] == 0.2


def test_score_equal_to_cutoff_is_high(cohort, tmp_path):
    scores, clinical = cohort
    report = run_km(scores, clinical, tmp_path / 'out')
    assert report['n_high'] == len(HIGH)  # includes H8 with score == cutoff


def test_stored_risk_group_column_is_not_trusted(cohort, tmp_path):
    scores, clinical = cohort  # the fixture writes risk_group = 'ignored'
    report = run_km(scores, clinical, tmp_path / 'out')
    assert report['n_high'] + report['n_low'] == len(HIGH) + len(LOW)


@pytest.mark.parametrize('metrics', [None, {'auc': 0.7}, {'cutoff': None}, {'cutoff': 'x'}])
def test_no_cutoff_is_refused(tmp_path, metrics):
    scores, clinical = write_cohort(tmp_path, cutoff=None)
    if metrics is not None:
        (scores.parent / 'metrics.json').write_text(json.dumps(metrics))
    with pytest.raises(DataPrepError, match='--cutoff'):
        run_km(scores, clinical, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------- selection

def test_split_selects_patients(tmp_path):
    scores, clinical = write_cohort(tmp_path)
    table = pd.read_csv(scores)
    table.loc[table['patient_id'].isin(['H1', 'L1']), 'split'] = 'train'
    table.to_csv(scores, index=False)
    clinical_table = pd.read_csv(clinical)
    clinical_table['split'] = table['split']
    clinical_table.to_csv(clinical, index=False)
    assert run_km(scores, clinical, tmp_path / 'v', split='val')['n_patients'] == 16
    assert run_km(scores, clinical, tmp_path / 't', split='train')['n_patients'] == 2
    assert run_km(scores, clinical, tmp_path / 'a', split='all')['n_patients'] == 18


def test_split_disagreement_is_refused(cohort, tmp_path):
    scores, clinical = cohort
    table = pd.read_csv(clinical)
    table.loc[0, 'split'] = 'train'
    table.to_csv(clinical, index=False)
    with pytest.raises(DataPrepError, match='H1'):
        run_km(scores, clinical, tmp_path / 'out')


def test_scored_patient_without_clinical_row(cohort, tmp_path):
    scores, clinical = cohort
    pd.read_csv(clinical).iloc[1:].to_csv(clinical, index=False)
    with pytest.raises(DataPrepError, match=r"\['H1'\]"):
        run_km(scores, clinical, tmp_path / 'out')


def test_missing_time_or_event_is_excluded_and_logged(cohort, tmp_path, caplog):
    scores, clinical = cohort
    table = pd.read_csv(clinical, dtype=str, keep_default_na=False)
    table.loc[table['patient_id'] == 'H2', 'dmfs_months'] = ''
    table.loc[table['patient_id'] == 'H2', 'dmfs_event'] = '0'  # censored without time
    table.loc[table['patient_id'] == 'L3', 'dmfs_event'] = ''
    table.to_csv(clinical, index=False)
    with caplog.at_level(logging.WARNING, logger='mmnpc.survival.km_analysis'):
        report = run_km(scores, clinical, tmp_path / 'out')
    dmfs = report['endpoints']['dmfs']
    assert dmfs['n_excluded_missing'] == 2 and dmfs['excluded_patient_ids'] == ['H2', 'L3']
    assert dmfs['n'] == 16 and report['endpoints']['os']['n'] == 18
    assert any('dmfs: 2 patient(s)' in r.getMessage() for r in caplog.records)


def test_event_without_time_is_an_error(cohort, tmp_path):
    scores, clinical = cohort
    table = pd.read_csv(clinical, dtype=str, keep_default_na=False)
    table.loc[table['patient_id'] == 'H4', 'os_months'] = ''
    table.to_csv(clinical, index=False)
    with pytest.raises(DataPrepError, match=r"os_event = 1 .*\['H4'\]"):
        run_km(scores, clinical, tmp_path / 'out')


def test_bad_event_value_is_an_error(cohort, tmp_path):
    scores, clinical = cohort
    table = pd.read_csv(clinical)
    table.loc[2, 'dmfs_event'] = 2
    table.to_csv(clinical, index=False)
    with pytest.raises(DataPrepError, match="dmfs_event.*0 or 1.*H3"):
        run_km(scores, clinical, tmp_path / 'out')


def test_has_survival_columns(cohort, tmp_path):
    _, clinical = cohort
    assert has_survival_columns(clinical)
    pd.read_csv(clinical).drop(columns='os_event').to_csv(tmp_path / 'c.csv', index=False)
    assert not has_survival_columns(tmp_path / 'c.csv')


# ---------------------------------------------------------------- undefined statistics

def _reread(tmp_path):
    """survival.json parsed strictly: NaN/Infinity would raise."""
    def refuse(token):
        raise AssertionError(f'non-finite number {token} in survival.json')
    return json.loads((tmp_path / 'out' / 'survival.json').read_text(), parse_constant=refuse)


def test_empty_high_group_gives_nulls_not_numbers(real_plots, cohort, tmp_path):
    scores, clinical = cohort
    report = run_km(scores, clinical, tmp_path / 'out', cutoff=2.0)
    assert _reread(tmp_path) == report
    dmfs = report['endpoints']['dmfs']
    assert dmfs['groups']['high']['n'] == 0
    assert dmfs['groups']['high']['survival_at_horizon'] is None
    assert dmfs['logrank']['p_value'] is None and dmfs['hazard_ratio']['value'] is None
    assert any('group high has no patients' in n for n in dmfs['notes'])
    assert dmfs['groups']['low']['survival_at_horizon'] is not None
    assert (tmp_path / 'out' / 'km_dmfs.png').exists()  # the low curve alone


def test_group_without_events(tmp_path):
    low_no_events = [(pid, score, months, 0) for pid, score, months, _ in LOW]
    scores, clinical = write_cohort(tmp_path, HIGH + low_no_events)
    dmfs = run_km(scores, clinical, tmp_path / 'out')['endpoints']['dmfs']
    assert dmfs['hazard_ratio']['value'] is None
    assert any('no events in group low' in n for n in dmfs['notes'])
    assert dmfs['logrank']['p_value'] is not None  # still defined
    assert dmfs['groups']['low']['survival_at_horizon'] == 1.0
    _reread(tmp_path)


def test_no_events_at_all(tmp_path):
    rows = [(pid, score, months, 0) for pid, score, months, _ in HIGH + LOW]
    scores, clinical = write_cohort(tmp_path, rows)
    dmfs = run_km(scores, clinical, tmp_path / 'out')['endpoints']['dmfs']
    assert dmfs['logrank'] == {'chi2': None, 'df': 1, 'p_value': None}
    assert dmfs['hazard_ratio']['value'] is None
    _reread(tmp_path)


def test_follow_up_shorter_than_three_years(tmp_path):
    short_high = [(pid, score, min(months, 30), event) for pid, score, months, event in HIGH]
    short_high[-1] = ('H8', 0.5, 30, 0)  # last observation censored: S(30) > 0
    scores, clinical = write_cohort(tmp_path, short_high + LOW)
    dmfs = run_km(scores, clinical, tmp_path / 'out')['endpoints']['dmfs']
    assert dmfs['groups']['high']['survival_at_horizon'] is None
    assert dmfs['groups']['high']['survival_at_horizon_ci95'] == [None, None]
    assert any('follow-up ends at 30 months' in n for n in dmfs['notes'])


def test_endpoint_without_any_data(cohort, tmp_path):
    scores, clinical = cohort
    table = pd.read_csv(clinical)
    table['os_months'], table['os_event'] = float('nan'), float('nan')
    table.to_csv(clinical, index=False)
    report = run_km(scores, clinical, tmp_path / 'out')
    os_result = report['endpoints']['os']
    assert (os_result['n'], os_result['n_excluded_missing'], os_result['plots']) == (0, 18, [])
    assert os_result['logrank']['p_value'] is None and os_result['hazard_ratio']['value'] is None
    assert pd.read_csv(tmp_path / 'out' / 'km_os.csv').empty
    assert report['endpoints']['dmfs']['n'] == 18
    _reread(tmp_path)
