"""Fold assignment: which patients train, choose the checkpoint and test in each fold.

Pure functions of the patient list, labels and seeds (scikit-learn's
RepeatedStratifiedKFold, stratified by MSOM); nothing read or written.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split

SPLITS: tuple[str, ...] = ('train', 'val', 'test')
FOLD_COLUMNS: tuple[str, ...] = ('repeat', 'fold', 'patient_id', 'split')


def val_seed(seed: int, repeat: int, fold: int, k: int) -> int:
    """Seed of the validation draw of one fold: ``seed + repeat * k + fold``."""
    return seed + repeat * k + fold


def make_folds(patients: Sequence[str], labels: Sequence[int], k: int = 5, repeats: int = 1,
               seed: int = 0, val_fraction: float = 0.2) -> list[dict]:
    """Repeated stratified k-fold assignment of patients, with an inner validation split.

    Args:
        patients: patient ids (unique; their order does not matter).
        labels: MSOM 0/1 of each patient, aligned with ``patients``.
        k: folds per repeat (>= 2).
        repeats: how many times the whole k-fold split is redrawn.
        seed: ``random_state`` of scikit-learn's ``RepeatedStratifiedKFold``;
            the validation split of repeat r, fold f uses ``seed + r * k + f``.
        val_fraction: share of each fold's non-test patients drawn (stratified)
            as the ``val`` split, rounded up, at least 2 patients (one per class).

    Returns:
        ``k * repeats`` dicts ``{repeat, fold, test, val, train}`` (0-based
        repeat and fold; sorted patient lists), in repeat then fold order.
        Within a repeat every patient is in exactly one ``test``; in a fold
        no patient is in two splits. The same arguments give the same folds.

    Raises:
        ValueError: repeated patient ids, labels not 0/1, a class with fewer
            than ``k`` patients (a test fold would lack it), or too few
            patients left for a train and a val split with both classes.
    """
    patients = [str(p) for p in patients]
    if len(patients) != len(labels):
        raise ValueError(f'{len(patients)} patients but {len(labels)} labels')
    repeated = sorted({p for p in patients if patients.count(p) > 1})
    if repeated:
        raise ValueError(f'patients given more than once: {repeated}')
    bad = [f'{p} ({y!r})' for p, y in zip(patients, labels) if y not in (0, 1)]
    if bad:
        raise ValueError(f'labels must be 0 or 1: {", ".join(bad)}')
    if int(k) != k or k < 2:
        raise ValueError(f'k must be an integer >= 2, got {k}')
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f'repeats must be an integer >= 1, got {repeats}')
    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    order = sorted(range(len(patients)), key=lambda i: patients[i])  # input order is irrelevant
    ids = np.array([patients[i] for i in order])
    y = np.array([int(labels[i]) for i in order])
    counts = {c: int((y == c).sum()) for c in (0, 1)}
    if min(counts.values()) < k:
        raise ValueError(f'{counts[1]} patients with MSOM and {counts[0]} without: each class '
                         f'needs at least k = {k} patients so that every test fold holds both')
    splitter = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    folds = []
    for index, (rest, test) in enumerate(splitter.split(ids, y)):
        repeat, fold = divmod(index, k)
        n_val = max(2, math.ceil(val_fraction * len(rest)))
        rest_counts = np.bincount(y[rest], minlength=2)
        if len(rest) - n_val < 2 or rest_counts.min() < 2:
            raise ValueError(
                f'repeat {repeat} fold {fold}: {len(rest)} non-test patients '
                f'({rest_counts[1]} with MSOM) cannot give a train and a val split that both '
                'hold both classes; use fewer folds or a smaller val_fraction')
        train, val = train_test_split(rest, test_size=n_val, stratify=y[rest],
                                      random_state=val_seed(seed, repeat, fold, k))
        folds.append({'repeat': repeat, 'fold': fold, 'test': sorted(ids[test].tolist()),
                      'val': sorted(ids[val].tolist()), 'train': sorted(ids[train].tolist())})
        check_fold(folds[-1])
    return folds


def check_fold(fold: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` when a patient is in two splits of ``fold`` (or a split is empty)."""
    seen: dict[str, str] = {}
    for split in SPLITS:
        if not fold.get(split):
            raise ValueError(f'repeat {fold["repeat"]} fold {fold["fold"]}: empty {split} split')
        for patient in fold[split]:
            if patient in seen:
                raise ValueError(f'repeat {fold["repeat"]} fold {fold["fold"]}: patient '
                                 f'{patient} is in both {seen[patient]} and {split}')
            seen[patient] = split


def fold_split_of(fold: Mapping[str, Any]) -> dict[str, str]:
    """patient_id -> 'train' / 'val' / 'test' in ``fold``."""
    check_fold(fold)
    return {p: split for split in SPLITS for p in fold[split]}


def folds_table(folds: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The fold assignment, a row per repeat, fold and patient: repeat, fold, patient_id, split."""
    rows = [{'repeat': f['repeat'], 'fold': f['fold'], 'patient_id': p, 'split': s}
            for f in folds for p, s in sorted(fold_split_of(f).items())]
    return pd.DataFrame(rows, columns=list(FOLD_COLUMNS))


def fold_name(fold: Mapping[str, Any]) -> str:
    """The fold's folder name: ``repeat<R>_fold<F>``."""
    return f'repeat{fold["repeat"]}_fold{fold["fold"]}'


def check_training_patients(recorded: Optional[Sequence[str]], fold: Mapping[str, Any],
                            what: str = 'checkpoint') -> None:
    """Raise ``ValueError`` unless ``recorded`` (a checkpoint's ``meta['train_patient_ids']``)
    is exactly the fold's training patients."""
    if recorded is None:
        raise ValueError(f'{what} records no training patients (meta["train_patient_ids"])')
    outside = sorted(set(recorded) - set(fold['train']))
    if outside:
        raise ValueError(f'{what} was trained on patients outside the training split of '
                         f'repeat {fold["repeat"]} fold {fold["fold"]}: {outside}')
    missing = sorted(set(fold['train']) - set(recorded))
    if missing:
        raise ValueError(f'{what} was not trained on training patients {missing} of repeat '
                         f'{fold["repeat"]} fold {fold["fold"]}')
