"""Compare models on the same patients: AUC with DeLong CI each, paired DeLong test against one.

Each model is a patient table (``patient_id, split, score, label``: the
``patient_scores.csv`` of ``tools/test.py``, ``tools/clinical_baseline.py``,
or the ``end_to_end_score`` column of ``tools/test_end_to_end.py``). Only the
patients of ``eval_split`` that every model scored are compared, so the AUCs
in one table are on one set of patients, and the paired test (DeLong,
DeLong & Clarke-Pearson 1988, for correlated ROC curves) is valid.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from .binary_stats import delong_auc_ci, delong_paired_test

COMPARISON_COLUMNS: tuple[str, ...] = (
    'model', 'n_patients', 'n_positive', 'auc', 'auc_ci_low', 'auc_ci_high',
    'difference_vs_reference', 'difference_ci_low', 'difference_ci_high', 'p_value', 'note')
UNSCORED_NOTE = ('no evaluated patient has this score (e.g. the detector found nothing): '
                 'left out of the comparison')


def common_patients(tables: Mapping[str, pd.DataFrame], eval_split: str) -> pd.DataFrame:
    """patient_id, label and one score column per model, for the ``eval_split`` patients
    every model scored.

    Raises:
        ValueError: a patient's label differs between tables (they are not the
            same cohort), or no patient is common to all models.
    """
    merged = None
    for name, table in tables.items():
        part = table.loc[table['split'] == eval_split, ['patient_id', 'label', 'score']]
        part = part.dropna(subset=['score']).rename(columns={'score': name,
                                                             'label': f'label:{name}'})
        part['patient_id'] = part['patient_id'].astype(str)
        merged = part if merged is None else merged.merge(part, on='patient_id', how='inner')
    label_columns = [c for c in merged.columns if c.startswith('label:')]
    disagree = merged[merged[label_columns].nunique(axis=1) > 1]
    if len(disagree):
        raise ValueError(f'patients with different labels across the models: '
                         f'{sorted(disagree["patient_id"])}')
    if merged.empty:
        raise ValueError(f'no {eval_split} patient is scored by every model: {list(tables)}')
    merged['label'] = merged[label_columns[0]].astype(int)
    return merged.drop(columns=label_columns).sort_values('patient_id', ignore_index=True)


def _scores_some(table: pd.DataFrame, eval_split: str) -> bool:
    return bool(table.loc[table['split'] == eval_split, 'score'].notna().any())


def compare_models(tables: Mapping[str, pd.DataFrame], reference: str, eval_split: str = 'test',
                   level: float = 0.95) -> pd.DataFrame:
    """One row per model (columns :data:`COMPARISON_COLUMNS`), the reference first.

    ``difference_vs_reference`` is AUC(reference) - AUC(model) with its DeLong
    ``level`` interval and two-sided p-value; NaN on the reference's own row.
    A model that scored none of the evaluated patients (an end-to-end score
    whose detector found nothing) keeps a row of NaN with :data:`UNSCORED_NOTE`
    and does not shrink the common patients of the others.

    Raises:
        ValueError: the reference is not among ``tables`` or scored nobody;
            see also :func:`common_patients`.
    """
    if reference not in tables:
        raise ValueError(f'reference model {reference!r} not among {list(tables)}')
    unscored = [name for name, table in tables.items() if not _scores_some(table, eval_split)]
    if reference in unscored:
        raise ValueError(f'the reference model {reference!r} scored no {eval_split} patient')
    patients = common_patients({n: t for n, t in tables.items() if n not in unscored}, eval_split)
    labels = patients['label']
    rows = []
    for name in [reference] + [n for n in tables if n != reference]:
        if name in unscored:
            rows.append({'model': name, 'n_patients': 0, 'n_positive': 0, 'note': UNSCORED_NOTE,
                         **{c: float('nan') for c in COMPARISON_COLUMNS[3:-1]}})
            continue
        interval = delong_auc_ci(patients[name], labels, level)
        row = {'model': name, 'n_patients': int(len(patients)), 'n_positive': int(labels.sum()),
               'auc': interval.auc, 'auc_ci_low': interval.ci_low, 'auc_ci_high': interval.ci_high,
               'difference_vs_reference': float('nan'), 'difference_ci_low': float('nan'),
               'difference_ci_high': float('nan'), 'p_value': float('nan'), 'note': ''}
        if name != reference:
            test = delong_paired_test(patients[reference], patients[name], labels, level)
            row.update(difference_vs_reference=test.difference, difference_ci_low=test.ci_low,
                       difference_ci_high=test.ci_high, p_value=test.p_value)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
