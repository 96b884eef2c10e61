"""Kaplan-Meier analysis of high vs low MSOM risk for DMFS and OS (lifelines).

Inputs are the classifier's ``patient_scores.csv`` (``patient_id``, ``split``,
``score``; other columns ignored) and the converter's ``clinical.csv``
(``dmfs_months``, ``dmfs_event``, ``os_months``, ``os_event``; empty = missing).

Cut-off rule (:func:`resolve_cutoff`): the value the user gives, else
``cutoff`` from the ``metrics.json`` next to ``patient_scores.csv`` (the Youden
cut-off stage 2 fitted on the *training* patients), else an error. A cut-off
is never fitted here, so the validation patients are never used to choose it.
A patient is ``high`` risk when ``score >= cutoff``.

Per endpoint and group: number of patients and events, median survival
(months, with the 95 % CI of lifelines' log(-log) Greenwood band), survival at
``HORIZON_MONTHS`` = 36 months with its 95 % CI; between groups: the log-rank
chi-square (1 degree of freedom) and p-value, and the Cox hazard ratio of high
vs low with 95 % CI and Wald p-value. A statistic that is undefined for the
data (an empty group, no events, follow-up ending before 36 months, median not
reached) is ``None`` and a note says why -- never a made-up number.
"""
from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError
from lifelines.statistics import logrank_test
from lifelines.utils import median_survival_times

from data_prep.clinical import read_text_table
from data_prep.types import DataPrepError

from ..utils.json_io import json_number, write_json

logger = logging.getLogger(__name__)

ENDPOINTS: dict[str, tuple[str, str]] = {
    'dmfs': ('dmfs_months', 'dmfs_event'),
    'os': ('os_months', 'os_event'),
}
ENDPOINT_TITLES: dict[str, str] = {
    'dmfs': 'Distant metastasis-free survival',
    'os': 'Overall survival',
}
GROUPS: tuple[str, ...] = ('high', 'low')
SPLITS: tuple[str, ...] = ('val', 'test', 'train', 'all')
HORIZON_MONTHS: float = 36.0
METRICS_FILE = 'metrics.json'
SCORE_COLUMNS: tuple[str, ...] = ('patient_id', 'split', 'score')


@dataclass
class EndpointAnalysis:
    """Everything computed for one endpoint.

    summary: the JSON-ready statistics (see :func:`analyse_endpoint`).
    fitters: group -> fitted KaplanMeierFitter (empty groups absent).
    curve: one row per (group, time) of the KM curve, see :func:`curve_points`.
    """

    summary: dict
    fitters: dict[str, KaplanMeierFitter] = field(default_factory=dict)
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)


# --------------------------------------------------------------------------
# inputs


def read_patient_scores(path: Path) -> pd.DataFrame:
    """``patient_id`` (str), ``split`` (str), ``score`` (float) of every scored patient.

    Raises DataPrepError naming the file (and patient) for a missing column, a
    repeated or empty patient id, or a score that is not a finite number.
    """
    table = read_text_table(Path(path))
    missing = [name for name in SCORE_COLUMNS if name not in table.columns]
    if missing:
        raise DataPrepError(f'{path}: missing columns {missing} (need {list(SCORE_COLUMNS)})')
    table = table[list(SCORE_COLUMNS)].copy()
    if (table['patient_id'] == '').any():
        raise DataPrepError(f'{path}: empty patient_id')
    repeated = sorted(table.loc[table['patient_id'].duplicated(), 'patient_id'].unique())
    if repeated:
        raise DataPrepError(f'{path}: patient_id appears more than once: {repeated}')
    scores = pd.to_numeric(table['score'], errors='coerce')
    bad = table.loc[~np.isfinite(scores), 'patient_id'].tolist()
    if bad:
        raise DataPrepError(f'{path}: score is not a finite number for patients {bad}')
    table['score'] = scores.astype(float)
    return table


def has_survival_columns(clinical_csv: Path) -> bool:
    """True when the clinical table has the time and event columns of every endpoint."""
    columns = set(read_text_table(Path(clinical_csv)).columns)
    return all(set(pair) <= columns for pair in ENDPOINTS.values())


def read_survival_table(path: Path) -> pd.DataFrame:
    """``patient_id`` + the endpoint columns as float (NaN = missing) [+ ``split``].

    Raises DataPrepError naming the file and patient for a missing column, a
    repeated patient id, a non-numeric or negative time, or an event other than 0/1.
    """
    table = read_text_table(Path(path))
    needed = ['patient_id'] + [c for pair in ENDPOINTS.values() for c in pair]
    missing = [name for name in needed if name not in table.columns]
    if missing:
        raise DataPrepError(f'{path}: missing survival columns {missing}')
    repeated = sorted(table.loc[table['patient_id'].duplicated(), 'patient_id'].unique())
    if repeated:
        raise DataPrepError(f'{path}: patient_id appears more than once: {repeated}')
    out = table[needed + (['split'] if 'split' in table.columns else [])].copy()
    for time_col, event_col in ENDPOINTS.values():
        for column in (time_col, event_col):
            values = pd.to_numeric(out[column], errors='coerce')  # '' -> NaN too
            bad = out.loc[values.isna() & (out[column] != ''), 'patient_id'].tolist()
            if bad:
                raise DataPrepError(f'{path}: column {column!r} is not a number for patients {bad}')
            out[column] = values.astype(float)
        negative = out.loc[out[time_col] < 0, 'patient_id'].tolist()
        if negative:
            raise DataPrepError(f'{path}: negative {time_col!r} for patients {negative}')
        not_binary = out.loc[out[event_col].notna() & ~out[event_col].isin([0.0, 1.0]),
                             'patient_id'].tolist()
        if not_binary:
            raise DataPrepError(f'{path}: {event_col!r} must be 0 or 1 for patients {not_binary}')
    return out


def resolve_cutoff(patient_scores_csv: Path, cutoff: float | None = None) -> tuple[float, str]:
    """(cut-off, where it came from) following the rule in the module docstring.

    Raises DataPrepError when no cut-off is given and ``metrics.json`` next to
    ``patient_scores_csv`` is missing or holds no finite ``cutoff``.
    """
    if cutoff is not None:
        if not math.isfinite(float(cutoff)):
            raise DataPrepError(f'cut-off must be a finite number, got {cutoff}')
        return float(cutoff), 'given by the user'
    metrics_path = Path(patient_scores_csv).parent / METRICS_FILE
    advice = ('pass --cutoff X, or run tools/test.py so that it saves the cut-off fitted on '
              'the training patients; a cut-off is never fitted on the validation patients')
    if not metrics_path.is_file():
        raise DataPrepError(f'no cut-off: {metrics_path} not found; {advice}')
    try:
        value = json.loads(metrics_path.read_text(encoding='utf-8')).get('cutoff')
    except (json.JSONDecodeError, AttributeError) as err:
        raise DataPrepError(f'{metrics_path}: not a JSON object ({err})') from err
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise DataPrepError(f'no cut-off: {metrics_path} has no finite "cutoff" '
                            f'(found {value!r}); {advice}')
    return float(value), f'{METRICS_FILE} (fitted on the training patients)'


def risk_groups(scores: pd.Series, cutoff: float) -> pd.Series:
    """'high' where ``score >= cutoff``, else 'low' (same index as ``scores``)."""
    return pd.Series(np.where(scores.to_numpy() >= cutoff, 'high', 'low'), index=scores.index)


def merge_scores_and_survival(scores: pd.DataFrame, survival: pd.DataFrame, split: str,
                              scores_path: Path, clinical_path: Path) -> pd.DataFrame:
    """The scored patients of ``split`` ('val', 'test', 'train' or 'all') with their survival columns.

    Raises DataPrepError for an unknown split, a scored patient without a
    clinical row, or a patient whose split differs between the two tables.
    """
    if split not in SPLITS:
        raise DataPrepError(f'split must be one of {list(SPLITS)}, got {split!r}')
    chosen = scores if split == 'all' else scores[scores['split'] == split]
    if chosen.empty:
        raise DataPrepError(f'{scores_path}: no patient of split {split!r}')
    absent = sorted(set(chosen['patient_id']) - set(survival['patient_id']))
    if absent:
        raise DataPrepError(f'{clinical_path}: no row for scored patients {absent}')
    merged = chosen.merge(survival, on='patient_id', how='left', suffixes=('', '_clinical'))
    if 'split_clinical' in merged.columns:
        differ = merged.loc[(merged['split_clinical'] != '')
                            & (merged['split_clinical'] != merged['split']), 'patient_id']
        if len(differ):
            raise DataPrepError(f'{scores_path} and {clinical_path} disagree on the split of '
                                f'patients {sorted(differ)}: were they made from one conversion?')
        merged = merged.drop(columns='split_clinical')
    return merged.sort_values('patient_id', kind='stable').reset_index(drop=True)


def endpoint_table(merged: pd.DataFrame, endpoint: str,
                   clinical_path: Path | str = 'clinical table') -> tuple[pd.DataFrame, list[str]]:
    """(``patient_id``, ``time``, ``event``, ``group``) of the patients usable for ``endpoint``,
    and the ids of those excluded because their time or event is missing.

    Raises DataPrepError naming the patients whose event is 1 but time is missing
    (an event must have a time; dropping them would bias the curve).
    """
    time_col, event_col = ENDPOINTS[endpoint]
    no_time = merged[time_col].isna()
    event_without_time = merged.loc[no_time & (merged[event_col] == 1), 'patient_id'].tolist()
    if event_without_time:
        raise DataPrepError(f'{clinical_path}: {event_col} = 1 but {time_col} is empty for '
                            f'patients {event_without_time}')
    usable = ~no_time & merged[event_col].notna()
    excluded = merged.loc[~usable, 'patient_id'].tolist()
    table = pd.DataFrame({'patient_id': merged.loc[usable, 'patient_id'],
                          'time': merged.loc[usable, time_col].astype(float),
                          'event': merged.loc[usable, event_col].astype(int),
                          'group': merged.loc[usable, 'risk_group']}).reset_index(drop=True)
    return table, excluded


# --------------------------------------------------------------------------
# statistics


def analyse_endpoint(table: pd.DataFrame,
                     horizon_months: float = HORIZON_MONTHS) -> EndpointAnalysis:
    """KM fits, log-rank test and Cox hazard ratio of high vs low for one endpoint.

    table: ``time`` (months), ``event`` (0/1), ``group`` ('high'/'low') per patient.
    summary keys: ``n``, ``events``, ``groups`` (group -> n, events, median_months,
    median_ci95, survival_at_horizon, survival_at_horizon_ci95, follow_up_max_months),
    ``logrank`` (chi2, df, p_value), ``hazard_ratio`` (value, ci95, p_value,
    comparison), ``notes`` (why a value is None).
    """
    notes: list[str] = []
    fitters, groups = {}, {}
    for group in GROUPS:
        rows = table[table['group'] == group]
        if rows.empty:
            notes.append(f'group {group} has no patients: its curve and statistics are undefined')
            groups[group] = _empty_group()
            continue
        kmf = KaplanMeierFitter(label=group).fit(rows['time'], rows['event'])
        fitters[group] = kmf
        groups[group] = _group_summary(kmf, rows, group, horizon_months, notes)
    summary = {
        'n': int(len(table)),
        'events': int(table['event'].sum()),
        'groups': groups,
        'logrank': _logrank(table, notes),
        'hazard_ratio': _cox_hazard_ratio(table, notes),
        'notes': notes,
    }
    return EndpointAnalysis(summary=summary, fitters=fitters, curve=curve_points(fitters))


def curve_points(fitters: dict[str, KaplanMeierFitter]) -> pd.DataFrame:
    """The KM step points of every group: group, time_months, survival, ci_lower_95,
    ci_upper_95, at_risk (at the start of the time), events, censored."""
    columns = ['group', 'time_months', 'survival', 'ci_lower_95', 'ci_upper_95', 'at_risk',
               'events', 'censored']
    frames = []
    for group, kmf in fitters.items():
        band = kmf.confidence_interval_survival_function_
        frames.append(pd.DataFrame({
            'group': group,
            'time_months': kmf.survival_function_.index.to_numpy(dtype=float),
            'survival': kmf.survival_function_.iloc[:, 0].to_numpy(),
            'ci_lower_95': band.iloc[:, 0].to_numpy(),
            'ci_upper_95': band.iloc[:, 1].to_numpy(),
            'at_risk': kmf.event_table['at_risk'].to_numpy(dtype=int),
            'events': kmf.event_table['observed'].to_numpy(dtype=int),
            'censored': kmf.event_table['censored'].to_numpy(dtype=int),
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _empty_group() -> dict:
    return {'n': 0, 'events': 0, 'median_months': None, 'median_ci95': [None, None],
            'survival_at_horizon': None, 'survival_at_horizon_ci95': [None, None],
            'follow_up_max_months': None}


def _group_summary(kmf: KaplanMeierFitter, rows: pd.DataFrame, group: str,
                   horizon: float, notes: list[str]) -> dict:
    """n, events, median and survival at ``horizon`` months (with 95 % CIs) of one group."""
    last_time = float(rows['time'].max())
    survival = kmf.survival_function_.iloc[:, 0]
    band = kmf.confidence_interval_survival_function_
    at_horizon, ci = None, [None, None]
    if last_time >= horizon or survival.iloc[-1] == 0:
        at_horizon = _finite(survival.loc[:horizon].iloc[-1])
        ci = [_finite(v) for v in band.loc[:horizon].iloc[-1]]
        if at_horizon in (0.0, 1.0):
            notes.append(f'group {group}: survival at {horizon:g} months is {at_horizon:g}; '
                         'its Greenwood 95 % CI is degenerate')
    else:
        notes.append(f'group {group}: follow-up ends at {last_time:g} months, before '
                     f'{horizon:g} months, so survival at {horizon:g} months is undefined')
    median = _finite(kmf.median_survival_time_)
    median_ci = [_finite(v) for v in median_survival_times(kmf.confidence_interval_).iloc[0]]
    if median is None:
        notes.append(f'group {group}: median not reached (survival stays above 50 %)')
    elif median_ci[1] is None:
        notes.append(f'group {group}: upper 95 % bound of the median not reached')
    return {'n': int(len(rows)), 'events': int(rows['event'].sum()),
            'median_months': median, 'median_ci95': median_ci,
            'survival_at_horizon': at_horizon, 'survival_at_horizon_ci95': ci,
            'follow_up_max_months': last_time}


def _logrank(table: pd.DataFrame, notes: list[str]) -> dict:
    """Log-rank chi-square (1 df) and p-value of high vs low; None when undefined."""
    result = {'chi2': None, 'df': 1, 'p_value': None}
    high, low = (table[table['group'] == g] for g in GROUPS)
    if high.empty or low.empty:
        notes.append('log-rank test undefined: one risk group is empty')
        return result
    if table['event'].sum() == 0:
        notes.append('log-rank test undefined: no events in either group')
        return result
    test = logrank_test(high['time'], low['time'], high['event'], low['event'])
    result.update(chi2=_finite(test.test_statistic), p_value=_finite(test.p_value))
    return result


def _cox_hazard_ratio(table: pd.DataFrame, notes: list[str]) -> dict:
    """Cox PH hazard ratio of high vs low (Efron ties) with 95 % CI and Wald p-value."""
    result = {'value': None, 'ci95': [None, None], 'p_value': None, 'comparison': 'high vs low'}
    counts = table.groupby('group')['event'].agg(['size', 'sum']).reindex(GROUPS, fill_value=0)
    empty = [g for g in GROUPS if counts.loc[g, 'size'] == 0]
    eventless = [g for g in GROUPS if counts.loc[g, 'size'] > 0 and counts.loc[g, 'sum'] == 0]
    if empty or eventless:
        why = (f'group {empty[0]} is empty' if empty
               else f'no events in group {eventless[0]} (the estimate diverges)')
        notes.append(f'hazard ratio undefined: {why}')
        return result
    data = pd.DataFrame({'time': table['time'], 'event': table['event'],
                         'high': (table['group'] == 'high').astype(float)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            cox = CoxPHFitter().fit(data, duration_col='time', event_col='event')
        except ConvergenceError as err:
            notes.append(f'hazard ratio undefined: Cox model did not converge ({err})')
            return result
    for caught_warning in caught:  # convergence trouble goes to the notes, the rest on
        if 'Convergence' in caught_warning.category.__name__:
            notes.append(f'Cox model warning: {str(caught_warning.message).strip()}')
        else:
            warnings.warn(caught_warning.message, caught_warning.category, stacklevel=2)
    row = cox.summary.loc['high']
    result.update(value=_finite(row['exp(coef)']),
                  ci95=[_finite(row['exp(coef) lower 95%']), _finite(row['exp(coef) upper 95%'])],
                  p_value=_finite(row['p']))
    return result


_finite = json_number  # None when NaN or infinite


# --------------------------------------------------------------------------
# the whole analysis


def run_km(patient_scores_csv: Path, clinical_csv: Path, out_dir: Path,
           cutoff: float | None = None, split: str = 'val') -> dict:
    """Analyse DMFS and OS of high vs low risk patients; write the results to ``out_dir``.

    Writes ``survival.json`` (the returned dict), ``km_<endpoint>.csv`` (curve
    points, see :func:`curve_points`) and ``km_<endpoint>.png``/``.pdf`` (plots)
    for ``endpoint`` in ``ENDPOINTS``. ``cutoff`` None takes the training
    cut-off from ``metrics.json`` next to ``patient_scores_csv``; ``split``
    chooses the patients ('val', 'test', 'train' or 'all'). Patients without time or
    event for an endpoint are left out of that endpoint (count logged and
    listed in the JSON). Raises DataPrepError on bad input.
    """
    from .km_plot import plot_km

    patient_scores_csv, clinical_csv, out_dir = map(Path, (patient_scores_csv, clinical_csv,
                                                           out_dir))
    cutoff_value, source = resolve_cutoff(patient_scores_csv, cutoff)
    scores = read_patient_scores(patient_scores_csv)
    merged = merge_scores_and_survival(scores, read_survival_table(clinical_csv), split,
                                       patient_scores_csv, clinical_csv)
    merged['risk_group'] = risk_groups(merged['score'], cutoff_value)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {'cutoff': cutoff_value, 'cutoff_source': source, 'split': split,
              'risk_rule': 'high if score >= cutoff', 'horizon_months': HORIZON_MONTHS,
              'n_patients': int(len(merged)),
              'n_high': int((merged['risk_group'] == 'high').sum()),
              'n_low': int((merged['risk_group'] == 'low').sum()), 'endpoints': {}}
    for endpoint in ENDPOINTS:
        table, excluded = endpoint_table(merged, endpoint, clinical_csv)
        if excluded:
            logger.warning('%s: %d patient(s) without time or event left out: %s',
                           endpoint, len(excluded), excluded)
        analysis = analyse_endpoint(table, HORIZON_MONTHS)
        curve_file = out_dir / f'km_{endpoint}.csv'
        analysis.curve.to_csv(curve_file, index=False, float_format='%.6g')
        plots = []
        if analysis.fitters:
            plots = plot_km(analysis.fitters, out_dir / f'km_{endpoint}',
                            title=f'{ENDPOINT_TITLES[endpoint]} ({split} patients)',
                            legend_text=_legend_text(analysis.summary),
                            horizon_months=HORIZON_MONTHS)
        else:
            analysis.summary['notes'].append('no patient with time and event: nothing to plot')
        report['endpoints'][endpoint] = {
            **analysis.summary, 'n_excluded_missing': len(excluded),
            'excluded_patient_ids': excluded, 'curve_csv': curve_file.name,
            'plots': [p.name for p in plots]}
    write_json(out_dir / 'survival.json', report)
    return report


def _legend_text(summary: dict) -> str:
    """Log-rank p and hazard ratio for the plot ('n/a' when undefined)."""
    def fmt(value: float | None, spec: str = '.2f') -> str:
        return 'n/a' if value is None else format(value, spec)

    hr = summary['hazard_ratio']
    return (f'log-rank p = {fmt(summary["logrank"]["p_value"], ".3g")}\n'
            f'HR (high vs low) = {fmt(hr["value"])} '
            f'(95% CI {fmt(hr["ci95"][0])}-{fmt(hr["ci95"][1])})')
