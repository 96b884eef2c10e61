"""Pooling the folds' per-patient results: fold AUCs (mean +- SD), pooled AUC per repeat."""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import pandas as pd

from ...utils.json_io import json_number
from ..binary_stats import AUC_CI_METHOD, delong_auc_ci
from .folds import fold_split_of

SCORE_COLUMNS: tuple[str, ...] = ('repeat', 'fold', 'patient_id', 'split', 'label', 'score')
DET_AP_KEYS: tuple[str, ...] = ('GTV_AP50', 'GTVln_AP50', 'mAP50')
POOLING_NOTE = (
    'The pooled AUC ranks the test patients of all folds of one repeat together, although each '
    'fold has its own model (own weights, own score scale): pooling across folds mixes models '
    'and assumes their scores are comparable. The mean +- SD of the fold AUCs does not; report '
    'both.')


def fold_rows(fold: Mapping[str, Any], scores: pd.DataFrame,
              end_to_end: Optional[pd.DataFrame] = None) -> tuple[pd.DataFrame, list[str]]:
    """One fold's rows: repeat, fold, patient_id, split, label, score[, end_to_end_score].

    Args:
        scores: the classifier's ``patient_scores.csv`` (tools/test.py):
            patient_id, split, score, label.
        end_to_end: tools/test_end_to_end.py's ``patient_scores.csv``
            (patient_id, split, label, end_to_end_score, ...), if it was run.

    Returns:
        (rows, notes): the notes name test patients without a score.

    Raises:
        ValueError: a row whose split disagrees with the fold, or labels
            that disagree between the two tables.
    """
    split_of = fold_split_of(fold)
    table = scores.loc[:, ['patient_id', 'split', 'label', 'score']].copy()
    table['patient_id'] = table['patient_id'].astype(str)
    wrong = sorted(f'{p} ({s}, fold says {split_of.get(p)})'
                   for p, s in zip(table['patient_id'], table['split']) if split_of.get(p) != s)
    if wrong:
        raise ValueError(f'repeat {fold["repeat"]} fold {fold["fold"]}: patient scores whose '
                         f'split disagrees with the fold: {wrong}')
    if end_to_end is not None:
        e2e = end_to_end.loc[:, ['patient_id', 'split', 'label', 'end_to_end_score']].copy()
        e2e['patient_id'] = e2e['patient_id'].astype(str)
        e2e = e2e.rename(columns={'label': 'e2e_label', 'split': 'e2e_split'})
        table = table.merge(e2e, on='patient_id', how='outer')
        table['split'] = table['split'].fillna(table['e2e_split'])
        disagree = table[table['label'].notna() & table['e2e_label'].notna()
                         & (table['label'] != table['e2e_label'])]
        if len(disagree):
            raise ValueError(f'labels differ between the classifier and end-to-end tables for '
                             f'{sorted(disagree["patient_id"])}')
        table['label'] = table['label'].fillna(table['e2e_label'])
        table = table.drop(columns=['e2e_label', 'e2e_split'])
    table['label'] = table['label'].astype(int)
    table.insert(0, 'fold', fold['fold'])
    table.insert(0, 'repeat', fold['repeat'])
    notes = []
    for column in ('score', 'end_to_end_score'):
        if column not in table:
            continue
        scored = set(table.loc[table[column].notna() & (table['split'] == 'test'), 'patient_id'])
        unscored = sorted(set(fold['test']) - scored)
        if unscored:
            notes.append(f'repeat {fold["repeat"]} fold {fold["fold"]}: test patients without '
                         f'{column} (left out of the {column} AUCs): {unscored}')
    order = {'train': 0, 'val': 1, 'test': 2}
    table = table.sort_values(['split', 'patient_id'], key=lambda c: c.map(order)
                              if c.name == 'split' else c, ignore_index=True)
    return table, notes


_number = json_number  # a JSON number: None for NaN / None


def auc_record(scores, labels) -> dict:
    """AUC with its DeLong CI as JSON numbers (None when undefined), with the patient counts."""
    labels = np.asarray(labels, dtype=int)
    interval = delong_auc_ci(np.asarray(scores, dtype=float), labels)
    return {'auc': _number(interval.auc), 'auc_ci_low': _number(interval.ci_low),
            'auc_ci_high': _number(interval.ci_high), 'auc_se': _number(interval.se),
            'n_patients': int(labels.size), 'n_positive': int(labels.sum())}


def mean_sd(values: Sequence[Optional[float]]) -> dict:
    """Mean and sample SD (n - 1) of the defined values; None where undefined."""
    defined = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return {'mean': statistics.fmean(defined) if defined else None,
            'sd': statistics.stdev(defined) if len(defined) > 1 else None,
            'n': len(defined), 'n_undefined': len(values) - len(defined)}


def summarize_cross_validation(folds: Sequence[Mapping[str, Any]], table: pd.DataFrame,
                               det_metrics: Optional[Mapping[tuple, Mapping]] = None,
                               extra_fold_info: Optional[Mapping[tuple, Mapping]] = None
                               ) -> dict:
    """The cross-validation figures of the test patients (``split == 'test'`` rows of ``table``).

    Args:
        folds: the fold assignment (:func:`make_folds`).
        table: every fold's rows (:func:`fold_rows`, concatenated).
        det_metrics: (repeat, fold) -> the detector's test metrics.json.
        extra_fold_info: (repeat, fold) -> more keys for that fold's record.

    Returns:
        A JSON-ready dict: ``folds`` (per fold: patient counts, ``score`` AUC
        with DeLong CI, ``end_to_end_score`` AUC if present, detector test
        AP50s), ``fold_auc`` (mean and SD of the fold AUCs per score, over all
        folds of all repeats and per repeat), ``pooled`` (per repeat and score:
        the AUC with DeLong CI of all that repeat's test rows), ``pooling_note``,
        ``detector_ap50`` (mean and SD per key) and ``auc_ci_method``.
    """
    det_metrics = det_metrics or {}
    extra_fold_info = extra_fold_info or {}
    score_columns = [c for c in ('score', 'end_to_end_score') if c in table]
    test = table[table['split'] == 'test']
    records = []
    for fold in folds:
        key = (fold['repeat'], fold['fold'])
        rows = test[(test['repeat'] == fold['repeat']) & (test['fold'] == fold['fold'])]
        record = {'repeat': fold['repeat'], 'fold': fold['fold'],
                  'n_train': len(fold['train']), 'n_val': len(fold['val']),
                  'n_test': len(fold['test'])}
        for column in score_columns:
            scored = rows[rows[column].notna()]
            record[column] = auc_record(scored[column], scored['label'])
        metrics = det_metrics.get(key)
        record['detector_test'] = (None if metrics is None else
                                   {k: _number(metrics.get(k)) for k in DET_AP_KEYS})
        record.update(extra_fold_info.get(key, {}))
        records.append(record)
    repeats = sorted({f['repeat'] for f in folds})
    fold_auc, pooled = {}, []
    for column in score_columns:
        fold_auc[column] = {
            'all_folds': mean_sd([r[column]['auc'] for r in records]),
            'per_repeat': [{'repeat': rep, **mean_sd([r[column]['auc'] for r in records
                                                      if r['repeat'] == rep])}
                           for rep in repeats]}
    for rep in repeats:
        rows = test[test['repeat'] == rep]
        entry = {'repeat': rep}
        for column in score_columns:
            scored = rows[rows[column].notna()]
            entry[column] = auc_record(scored[column], scored['label'])
        pooled.append(entry)
    detector = {k: mean_sd([(r['detector_test'] or {}).get(k) for r in records])
                for k in DET_AP_KEYS} if det_metrics else None
    return {'auc_ci_method': AUC_CI_METHOD, 'auc_ci_level': 0.95, 'folds': records,
            'fold_auc': fold_auc, 'pooled': pooled, 'pooling_note': POOLING_NOTE,
            'detector_ap50': detector}
