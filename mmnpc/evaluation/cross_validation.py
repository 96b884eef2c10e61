"""Repeated patient-level cross-validation for small cohorts (TRIPOD): the pure logic.

:func:`make_folds` assigns patients to folds (stratified by MSOM, seeded),
:func:`write_fold_root` turns one fold into a converter-like data root that the
ordinary tools read (``--data-root``), and :func:`fold_rows` /
:func:`summarize_cross_validation` pool the folds' per-patient results.
``tools/cross_validate.py`` runs the trainings and tests in between.

Protocol of one fold: the held-out fold is the ``test`` split, on which
nothing is chosen (weights, checkpoint, cut-off); the remaining patients are
split, stratified, into ``train`` (detector and classifier weights, clinical
encoder, cut-off) and ``val`` (checkpoint selection). Every fold gets its own
``clinical.csv`` whose ``split`` column says so, so the split guards of
stage 2 (``SplitGuardHook``, ``DetCheckpointGuardHook``) check each fold.

Everything here raises ``ValueError`` on bad input; it prints nothing.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split

from ..utils.json_io import json_number
from .binary_stats import AUC_CI_METHOD, delong_auc_ci

SPLITS: tuple[str, ...] = ('train', 'val', 'test')
CLINICAL_FILE = 'clinical.csv'
SPLIT_COLUMN = 'split'
FOLD_COLUMNS: tuple[str, ...] = ('repeat', 'fold', 'patient_id', 'split')
SCORE_COLUMNS: tuple[str, ...] = ('repeat', 'fold', 'patient_id', 'split', 'label', 'score')
DET_AP_KEYS: tuple[str, ...] = ('GTV_AP50', 'GTVln_AP50', 'mAP50')
POOLING_NOTE = (
    'The pooled AUC ranks the test patients of all folds of one repeat together, although each '
    'fold has its own model (own weights, own score scale): pooling across folds mixes models '
    'and assumes their scores are comparable. The mean +- SD of the fold AUCs does not; report '
    'both.')


# ---------------------------------------------------------------- fold assignment

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


# ---------------------------------------------------------------- the converted cohort

def sequences_of(data_root: Path) -> list[str]:
    """The sequence folders of a converter output (those holding images/ and annotations/)."""
    data_root = Path(data_root)
    found = sorted(d.name for d in data_root.iterdir()
                   if d.is_dir() and (d / 'images').is_dir() and (d / 'annotations').is_dir())
    if not found:
        raise ValueError(f'{data_root}: no <sequence>/images + <sequence>/annotations folder '
                         '(expected the converter output)')
    return found


def read_table(path: Path) -> pd.DataFrame:
    """A CSV as stripped text cells ('' = empty), columns in file order."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'{path}: file not found')
    table = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False,
                        encoding='utf-8-sig')
    return table.apply(lambda column: column.str.strip())


def cohort_labels(data_root: Path) -> dict[str, int]:
    """patient_id -> MSOM 0/1 of every patient with images in the annotation files of ``data_root``.

    Raises:
        ValueError: such a patient has no row in clinical.csv, or an MSOM
            that is missing or not 0/1 (the classifier refuses them too).
    """
    data_root = Path(data_root)
    patients: set[str] = set()
    for sequence in sequences_of(data_root):
        for coco, _ in _source_cocos(data_root / sequence):
            patients.update(str(image['patient_id']) for image in coco['images'])
    table = read_table(data_root / CLINICAL_FILE)
    for column in ('patient_id', 'msom'):
        if column not in table:
            raise ValueError(f'{data_root / CLINICAL_FILE}: no {column} column')
    msom = dict(zip(table['patient_id'], table['msom']))
    no_row = sorted(patients - set(msom))
    if no_row:
        raise ValueError(f'{data_root / CLINICAL_FILE}: no row for patients {no_row}')
    bad = sorted(f'{p} ({msom[p]!r})' for p in patients
                 if msom[p] not in ('0', '1', '0.0', '1.0'))
    if bad:
        raise ValueError(f'{data_root / CLINICAL_FILE}: msom must be 0 or 1 for every patient '
                         f'in the cross-validation: {", ".join(bad)}')
    return {p: int(float(msom[p])) for p in sorted(patients)}


def _source_cocos(sequence_dir: Path) -> list[tuple[dict, Path]]:
    """The sequence's COCO files (train, val, test order); every image must name its patient."""
    found = []
    for split in SPLITS:
        path = sequence_dir / 'annotations' / f'{split}.json'
        if not path.is_file():
            continue
        coco = json.loads(path.read_text(encoding='utf-8'))
        unnamed = [image.get('file_name') for image in coco.get('images', [])
                   if 'patient_id' not in image]
        if unnamed:
            raise ValueError(f'{path}: images without patient_id, e.g. {unnamed[0]}')
        found.append((coco, path))
    if not found:
        raise ValueError(f'{sequence_dir / "annotations"}: no train/val/test.json')
    return found


def repartition_coco(sources: Sequence[tuple[dict, Path]], split_of: Mapping[str, str]
                     ) -> dict[str, dict]:
    """Re-partition the union of COCO files by patient: {'train': coco, 'val': coco, 'test': coco}.

    Image ids are renumbered 1..n and annotation ids 1..m within each output
    file (the converter numbers each file from 1, so source ids collide
    across files); every annotation keeps its image. Images keep the source
    order (train, val, test file, then file order) and all their keys.

    Raises:
        ValueError: a file name appears twice, an annotation points to no
            image, the files disagree on categories, or an image's patient
            is not in ``split_of``.
    """
    categories = sources[0][0].get('categories', [])
    extra = {key: value for key, value in sources[0][0].items()
             if key not in ('images', 'annotations', 'categories')}
    out = {split: {**extra, 'images': [], 'annotations': [], 'categories': categories}
           for split in SPLITS}
    seen_files: dict[str, Path] = {}
    for coco, path in sources:
        if coco.get('categories', []) != categories:
            raise ValueError(f'{path}: categories differ from {sources[0][1]}')
        by_image: dict[Any, list[dict]] = {}
        for annotation in coco.get('annotations', []):
            by_image.setdefault(annotation['image_id'], []).append(annotation)
        image_ids = {image['id'] for image in coco.get('images', [])}
        orphans = sorted(set(by_image) - image_ids, key=str)
        if orphans:
            raise ValueError(f'{path}: annotations of image ids {orphans[:5]} without an image')
        for image in coco.get('images', []):
            if image['file_name'] in seen_files:
                raise ValueError(f'{image["file_name"]} is in both {seen_files[image["file_name"]]}'
                                 f' and {path}')
            seen_files[image['file_name']] = path
            patient = str(image['patient_id'])
            if patient not in split_of:
                raise ValueError(f'{path}: patient {patient} is in no split of the fold')
            target = out[split_of[patient]]
            new_id = len(target['images']) + 1
            target['images'].append({**image, 'id': new_id})
            for annotation in by_image.get(image['id'], []):
                target['annotations'].append(
                    {**annotation, 'id': len(target['annotations']) + 1, 'image_id': new_id})
    return out


def write_fold_root(data_root: Path, fold: Mapping[str, Any], out_dir: Path) -> Path:
    """Write one fold as a converter-like data root; return ``out_dir``.

    ``out_dir/<seq>/images`` is a symlink to the source images folder (no
    copy); ``out_dir/<seq>/annotations/{train,val,test}.json`` hold the union
    of the source annotation files re-partitioned by the fold
    (:func:`repartition_coco`); ``out_dir/clinical.csv`` is the source table
    with its ``split`` column (added if absent) set to the fold's split --
    empty for a row without images. Rewriting a fold root is allowed and
    gives the same files.

    Raises:
        ValueError: a patient in two splits, an image patient missing from
            the fold, or a fold patient without images.
    """
    data_root, out_dir = Path(data_root).resolve(), Path(out_dir)
    split_of = fold_split_of(fold)
    with_images: set[str] = set()
    out_dir.mkdir(parents=True, exist_ok=True)
    for sequence in sequences_of(data_root):
        target = out_dir / sequence
        (target / 'annotations').mkdir(parents=True, exist_ok=True)
        link = target / 'images'
        if link.is_symlink() or link.exists():
            if not link.is_symlink():
                raise ValueError(f'{link} exists and is not a symlink')
            link.unlink()
        os.symlink(data_root / sequence / 'images', link, target_is_directory=True)
        cocos = repartition_coco(_source_cocos(data_root / sequence), split_of)
        for split, coco in cocos.items():
            (target / 'annotations' / f'{split}.json').write_text(json.dumps(coco),
                                                                   encoding='utf-8')
            with_images.update(str(image['patient_id']) for image in coco['images'])
            wrong = sorted({str(i['patient_id']) for i in coco['images']}
                           - set(fold[split]))
            if wrong:  # cannot happen after repartition_coco; the guard is the point
                raise ValueError(f'{target}/{split}.json holds patients of other splits: {wrong}')
    without = sorted(set(split_of) - with_images)
    if without:
        raise ValueError(f'fold patients without images in {data_root}: {without}')
    table = read_table(data_root / CLINICAL_FILE)
    if 'patient_id' not in table:
        raise ValueError(f'{data_root / CLINICAL_FILE}: no patient_id column')
    no_row = sorted(set(split_of) - set(table['patient_id']))
    if no_row:
        raise ValueError(f'{data_root / CLINICAL_FILE}: no row for fold patients {no_row}')
    table[SPLIT_COLUMN] = [split_of.get(p, '') for p in table['patient_id']]
    table.to_csv(out_dir / CLINICAL_FILE, index=False)
    return out_dir


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


# ---------------------------------------------------------------- pooling

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
