"""Patient-level train/val/test split: stratified by MSOM, seeded, or read from a file.

All slices of a patient go to one split, so no patient's images leak from
training into validation or into the held-out test set. The default split is
stratified by ``msom`` (0 / 1 / missing as three groups) with scikit-learn's
``train_test_split``: with a ``test_fraction`` the test patients are drawn
first (TRIPOD: a held-out set that model development never sees), then the
rest is split into train and val. A split file (CSV ``patient_id,split``)
given by the user overrides it. 'train' and 'val' always exist; 'test' only
when it has patients, so a two-way split is exactly what it was before.
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

SPLITS: tuple[str, ...] = ('train', 'val', 'test')
REQUIRED_SPLITS: tuple[str, ...] = ('train', 'val')  # always present; 'test' is optional
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


def stratified_split(clinical: pd.DataFrame, val_fraction: float, seed: int,
                     test_fraction: float = 0.0) -> dict[str, str]:
    """Assign each patient to 'train', 'val' or 'test', stratified by ``msom``.

    clinical: table with ``patient_id`` and ``msom`` (text, '' = missing).
    val_fraction: share of the WHOLE cohort in 'val', in (0, 1).
    test_fraction: share of the whole cohort in 'test', in [0, 1); 0 = no test split.
    With n patients the test size is ``ceil(test_fraction * n)`` and the val
    size ``ceil(val_fraction * n)`` (as in scikit-learn), train gets the rest;
    the two fractions must leave at least one train patient. The test patients
    are drawn first, then val from the others, each draw stratified by
    ``msom_groups`` of the patients it draws from. Without a test split the
    result is the plain train/val split. The same table, fractions and seed
    always give the same split. When a draw has too few places to put every
    group on both sides, it falls back to an unstratified draw and logs a
    warning. Returns patient_id -> split, sorted by patient_id.
    """
    check_fractions(val_fraction, test_fraction)
    table = clinical.sort_values('patient_id', kind='stable')
    patients = list(table['patient_id'])
    names = 'train, val and test' if test_fraction > 0 else 'train and val'
    minimum = 3 if test_fraction > 0 else 2
    if len(patients) < minimum:
        raise DataPrepError(f'need at least {minimum} patients to split into {names}, '
                            f'got {len(patients)}')
    n_val = math.ceil(val_fraction * len(patients))
    n_test = math.ceil(test_fraction * len(patients))
    if n_val + n_test >= len(patients):
        raise DataPrepError(
            f'val_fraction={val_fraction} and test_fraction={test_fraction} leave no train '
            f'patient among {len(patients)} (val {n_val}, test {n_test})')
    if test_fraction == 0:
        train, val = _draw(patients, msom_groups(table), val_fraction, seed,
                           f'val_fraction={val_fraction}')
        return _as_mapping(train=train, val=val)
    rest, test = _draw(patients, msom_groups(table), n_test, seed,
                       f'test_fraction={test_fraction}')
    rest_table = table.loc[table['patient_id'].isin(rest)]
    train, val = _draw(list(rest_table['patient_id']), msom_groups(rest_table), n_val, seed,
                       f'val_fraction={val_fraction}')
    return _as_mapping(train=train, val=val, test=test)


def check_fractions(val_fraction: float, test_fraction: float = 0.0) -> None:
    """Refuse split fractions outside val in (0, 1), test in [0, 1), val + test < 1."""
    if not 0.0 < val_fraction < 1.0:
        raise DataPrepError(f'val_fraction must be between 0 and 1 (exclusive), got {val_fraction}')
    if not 0.0 <= test_fraction < 1.0:
        raise DataPrepError(f'test_fraction must be in [0, 1), got {test_fraction}')
    if val_fraction + test_fraction >= 1.0:
        raise DataPrepError(f'val_fraction + test_fraction must be below 1 (some patients must '
                            f'stay in train), got {val_fraction} + {test_fraction}')


def _draw(patients: list[str], labels: list[str], size: float | int, seed: int,
          parameter: str) -> tuple[list[str], list[str]]:
    """(kept, drawn): ``size`` patients (a share or a count) drawn stratified by ``labels``.

    Falls back to an unstratified draw, with a warning naming ``parameter``
    ('val_fraction=0.25'), when there are fewer places on either side than groups.
    """
    try:
        return train_test_split(patients, test_size=size, random_state=seed, stratify=labels)
    except ValueError as err:  # fewer drawn (or kept) places than groups
        logger.warning('cannot stratify %d patients by msom with %s (%s); '
                       'splitting without stratification', len(patients), parameter, err)
        return train_test_split(patients, test_size=size, random_state=seed)


def _as_mapping(**patients_of: list[str]) -> dict[str, str]:
    """patient_id -> split name, sorted by patient_id."""
    return dict(sorted((patient, name) for name, patients in patients_of.items()
                       for patient in patients))


def read_split_file(path: Path, patients: list[str], *,
                    ignored: Collection[str] = ()) -> dict[str, str]:
    """Read a user split (CSV with columns ``patient_id,split``) for ``patients``.

    Refuses (DataPrepError) a file that lists a patient twice (so no patient
    can be in two splits), uses a split name other than 'train'/'val'/'test', omits
    a cohort patient or names a patient not in the cohort. Rows of ``ignored``
    patients (skipped ones) are accepted and dropped. An empty 'train' or 'val'
    is logged as a warning; no 'test' patient simply means no test split.
    Returns patient_id -> split, sorted by patient_id.
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
    for name in REQUIRED_SPLITS:
        if name not in splits.values():
            logger.warning('%s: the %s split is empty', path, name)
    return splits


def splits_in_use(splits: Mapping[str, str]) -> tuple[str, ...]:
    """'train' and 'val' always, and 'test' when some patient is in it (``SPLITS`` order)."""
    used = set(splits.values())
    return tuple(name for name in SPLITS if name in REQUIRED_SPLITS or name in used)


def patients_by_split(splits: Mapping[str, str]) -> dict[str, list[str]]:
    """split -> sorted patient ids, for every name in ``splits_in_use(splits)``."""
    return {name: sorted(p for p, s in splits.items() if s == name)
            for name in splits_in_use(splits)}
