"""Patient-level train/val split: stratified by MSOM, seeded, or read from a file.

All slices of a patient go to one split, so no patient's images leak from
training into validation. The default split is stratified by ``msom``
(0 / 1 / missing as three groups) with scikit-learn's ``train_test_split``;
a split file (CSV ``patient_id,split``) given by the user overrides it.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from data_prep.clinical import read_text_table
from data_prep.types import DataPrepError

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ('train', 'val')
_POOLED = 'msom=rare'  # groups too small to stratify on their own


def msom_groups(clinical: pd.DataFrame) -> list[str]:
    """Stratification label per row: 'msom=0', 'msom=1' or 'msom=missing'.

    Groups with a single patient cannot be stratified by scikit-learn; they are
    pooled into one group, and a pooled group of one joins the largest group.
    """
    labels = [_msom_label(value) for value in clinical['msom']]
    counts = Counter(labels)
    labels = [_POOLED if counts[label] < 2 else label for label in labels]
    if labels.count(_POOLED) == 1:
        largest = Counter(labels).most_common(1)[0][0]
        labels = [largest if label == _POOLED else label for label in labels]
    return labels


def _msom_label(value: object) -> str:
    """'msom=<value>' for a number (text or float), 'msom=missing' for '' / NaN."""
    text = str(value).strip()
    number = float(text) if text else math.nan  # validated upstream: numbers or empty
    return 'msom=missing' if math.isnan(number) else f'msom={number:g}'


def stratified_split(clinical: pd.DataFrame, val_fraction: float, seed: int) -> dict[str, str]:
    """Assign each patient to 'train' or 'val', stratified by ``msom``.

    clinical: table with ``patient_id`` and ``msom`` (text, '' = missing).
    val_fraction: share of patients in 'val', in (0, 1); the val size is
    ``ceil(val_fraction * n)`` as in scikit-learn. The same table, fraction
    and seed always give the same split. When there are too few patients to
    put every group into both splits, falls back to an unstratified split and
    logs a warning. Returns patient_id -> split, sorted by patient_id.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataPrepError(f'val_fraction must be between 0 and 1 (exclusive), got {val_fraction}')
    table = clinical.sort_values('patient_id', kind='stable')
    patients = list(table['patient_id'])
    if len(patients) < 2:
        raise DataPrepError(
            f'need at least 2 patients to split into train and val, got {len(patients)}')
    labels = msom_groups(table)
    try:
        train, val = train_test_split(patients, test_size=val_fraction, random_state=seed,
                                      stratify=labels)
    except ValueError as err:  # fewer val (or train) places than groups
        logger.warning('cannot stratify %d patients by msom with val_fraction=%s (%s); '
                       'splitting without stratification', len(patients), val_fraction, err)
        train, val = train_test_split(patients, test_size=val_fraction, random_state=seed)
    splits = {patient: 'train' for patient in train} | {patient: 'val' for patient in val}
    return dict(sorted(splits.items()))


def read_split_file(path: Path, patients: list[str], *,
                    ignored: Collection[str] = ()) -> dict[str, str]:
    """Read a user split (CSV with columns ``patient_id,split``) for ``patients``.

    Refuses (DataPrepError) a file that lists a patient twice (so no patient
    can be in both splits), uses a split name other than 'train'/'val', omits
    a cohort patient or names a patient not in the cohort. Rows of ``ignored``
    patients (skipped ones) are accepted and dropped. Returns patient_id ->
    split, sorted by patient_id.
    """
    table = read_text_table(path)
    missing_columns = [name for name in ('patient_id', 'split') if name not in table.columns]
    if missing_columns:
        raise DataPrepError(f'{path}: split file needs columns patient_id,split; '
                            f'missing {missing_columns}')
    repeated = sorted(table.loc[table['patient_id'].duplicated(), 'patient_id'].unique())
    if repeated:
        raise DataPrepError(f'{path}: patients listed more than once: {repeated}')
    bad_names = table.loc[~table['split'].isin(SPLITS)]
    if len(bad_names):
        listed = [f'{p}: {s!r}' for p, s in zip(bad_names['patient_id'], bad_names['split'])]
        raise DataPrepError(f'{path}: split must be one of {list(SPLITS)}; got {listed}')
    table = table.loc[~table['patient_id'].isin(set(ignored) - set(patients))]
    listed = set(table['patient_id'])
    problems = []
    if set(patients) - listed:
        problems.append(f'cohort patients not in the file: {sorted(set(patients) - listed)}')
    if listed - set(patients):
        problems.append(f'patients not in the cohort: {sorted(listed - set(patients))}')
    if problems:
        raise DataPrepError(f'{path}: ' + '; '.join(problems))
    splits = dict(sorted(zip(table['patient_id'], table['split'])))
    for name in SPLITS:
        if name not in splits.values():
            logger.warning('%s: the %s split is empty', path, name)
    return splits


def patients_by_split(splits: Mapping[str, str]) -> dict[str, list[str]]:
    """split -> sorted patient ids, for every name in ``SPLITS``."""
    return {name: sorted(p for p, s in splits.items() if s == name) for name in SPLITS}
