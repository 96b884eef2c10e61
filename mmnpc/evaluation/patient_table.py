"""Slice scores -> one score per patient, and the high / low risk groups of a cut-off.

The classifier scores every slice of a patient; the patient's score is the
mean of those slice scores (the paper's aggregation). A region model
(``MsomRegionDataset``) scores several lesion windows of one slice: their mean
is the slice's score first (rows sharing ``slice_id``), so every slice weighs
the same whatever the number of lesions on it, and prediction
(``mmnpc.inference.predict_patient``) averages the same way. A model with
attention pooling gives each sample a logit and an attention score (columns
``logit`` and ``attention``); the patient's score is then the attention-pooled
one (:mod:`mmnpc.models.bag_pooling`, the rule prediction applies too).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..models.bag_pooling import pooled_score

SLICE_COLUMNS: tuple[str, ...] = ('patient_id', 'split', 'score', 'label')
PATIENT_COLUMNS: tuple[str, ...] = ('patient_id', 'split', 'score', 'label', 'risk_group',
                                     'n_slices')


def patient_scores(slice_table: pd.DataFrame) -> pd.DataFrame:
    """Mean slice score of every patient.

    Args:
        slice_table: one row per slice with ``patient_id`` (str), ``split``
            (e.g. 'train' / 'val'), ``score`` (probability of MSOM, float) and
            ``label`` (the patient's MSOM status, 0/1); optional ``slice_id``:
            rows of one patient sharing it (the regions of one slice) are
            averaged into one slice score first; optional ``logit`` and
            ``attention`` (both, every row): attention pooling. Other columns
            are ignored.

    Returns:
        One row per patient, sorted by split then patient id, with
        ``patient_id``, ``split``, ``score`` (mean of the slice scores),
        ``label`` (int) and ``n_slices`` (slices, not regions).

    Raises:
        ValueError: a column is missing, a score is not finite, or a patient's
            slices disagree on label or split (names the patient).
    """
    missing = [column for column in SLICE_COLUMNS if column not in slice_table]
    if missing:
        raise ValueError(f'slice table lacks columns {missing}')
    if 'attention' in slice_table and slice_table['attention'].notna().any():
        return _attention_pooled(slice_table)
    columns = list(SLICE_COLUMNS) + (['slice_id'] if 'slice_id' in slice_table else [])
    slices = slice_table.loc[:, columns].copy()
    slices['patient_id'] = slices['patient_id'].astype(str)
    slices['score'] = slices['score'].astype(np.float64)
    bad = slices.loc[~np.isfinite(slices['score']), 'patient_id'].unique()
    if len(bad):
        raise ValueError(f'non-finite slice scores for patients {sorted(bad)}')
    if 'slice_id' in slices:  # regions of one slice -> one slice score
        slices = slices.groupby(['patient_id', 'slice_id'], sort=True).agg(
            split=('split', 'first'), score=('score', 'mean'),
            label=('label', 'first')).reset_index()
    groups = slices.groupby('patient_id', sort=True)
    for column in ('label', 'split'):
        mixed = groups[column].nunique()
        mixed = mixed[mixed > 1]
        if len(mixed):
            raise ValueError(f'slices of patient {mixed.index[0]} carry different {column}s: '
                             f'{sorted(groups.get_group(mixed.index[0])[column].unique())}')
    table = groups.agg(split=('split', 'first'), score=('score', 'mean'),
                       label=('label', 'first'), n_slices=('score', 'size')).reset_index()
    table['label'] = table['label'].astype(np.int64)
    return table.sort_values(['split', 'patient_id'], ignore_index=True)


def _attention_pooled(slice_table: pd.DataFrame) -> pd.DataFrame:
    """patient_scores for samples with ``logit`` and ``attention`` (bag_pooling)."""
    if 'logit' not in slice_table or slice_table[['logit', 'attention']].isna().any().any():
        raise ValueError('attention pooling needs a logit and an attention score on every sample')
    rows = []
    for patient_id, group in slice_table.groupby(slice_table['patient_id'].astype(str), sort=True):
        for column in ('label', 'split'):
            if group[column].nunique() > 1:
                raise ValueError(f'slices of patient {patient_id} carry different {column}s: '
                                 f'{sorted(group[column].unique())}')
        try:
            score = pooled_score(group['score'], None, group['logit'], group['attention'])
        except ValueError as err:
            raise ValueError(f'patient {patient_id}: {err}') from err
        n_slices = group['slice_id'].nunique() if 'slice_id' in group else len(group)
        rows.append({'patient_id': patient_id, 'split': group['split'].iloc[0], 'score': score,
                     'label': int(group['label'].iloc[0]), 'n_slices': int(n_slices)})
    table = pd.DataFrame(rows, columns=['patient_id', 'split', 'score', 'label', 'n_slices'])
    table['label'] = table['label'].astype(np.int64)
    return table.sort_values(['split', 'patient_id'], ignore_index=True)


def assign_risk_groups(table: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """Copy of a patient table with ``risk_group``: 'high' if ``score >= cutoff`` else 'low'.

    A NaN ``cutoff`` (none could be chosen) leaves ``risk_group`` empty, so no
    patient is put in a group by accident. Columns come in
    :data:`PATIENT_COLUMNS` order.
    """
    table = table.copy()
    if math.isnan(cutoff):
        table['risk_group'] = ''
    else:
        table['risk_group'] = np.where(table['score'] >= cutoff, 'high', 'low')
    return table.loc[:, list(PATIENT_COLUMNS)]
