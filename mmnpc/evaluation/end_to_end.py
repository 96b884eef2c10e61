"""End-to-end evaluation: the score a user deploys, on a converted cohort.

``tools/test.py`` scores slices chosen from the ground-truth contours. A new
patient has no contours: ``tools/predict.py`` lets the detector choose the
slices. This module gives every patient of a converted cohort the score
prediction would give it -- the same function
(:func:`mmnpc.inference.predict_patient.detect_and_score`) on the patient's
slices in z order, read from the converter's JPEGs, which is exactly what
prediction feeds the models after its JPEG round trip -- and, beside it, the
contour-based score of the same model, so the two can be compared on the same
patients.

Protocol (docs/evaluation.md, "End-to-end evaluation"):

* the **deployment cut-off** is Youden's J on the *training* patients'
  end-to-end scores, never on the evaluated ones;
* AUC with DeLong CI of both scores on the evaluated split, and the paired
  DeLong test of their difference on the patients that have both;
* detection coverage: the share of patients whose tumour the detector found
  (at least one detected slice is a contoured tumour slice) and the
  per-patient slice recall / precision against the contours;
* a patient in whom the detector finds nothing gets no end-to-end score (as
  in prediction); such patients are counted and left out of the end-to-end
  AUC, with a note;
* beside it, the **intention-to-treat** score (``itt_*``) leaves nobody out:
  a patient without an end-to-end score gets a stated fallback score
  (:func:`intention_to_treat_scores`): the patient's score from a fallback
  model when one is given (e.g. the clinical-only model's, ``tools/
  test_end_to_end.py --fallback-scores``), else the MSOM prevalence of the
  training patients (the score of a model that knows nothing about the
  patient). Its cut-off is Youden's J on the training patients' ITT scores.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import pandas as pd

from ..datasets.slice_selection import (evenly_spaced, select_regions, select_slices,
                                        tumour_area_by_image)
from ..models.bag_pooling import patient_score_of, unit_patient_score
from ..utils.json_io import json_number
from .binary_stats import delong_paired_test
from .msom_report import MsomEvaluation, evaluate_patient_table

FALLBACK_PREVALENCE = 'training-patient MSOM prevalence'

ROW_COLUMNS: tuple[str, ...] = (
    'patient_id', 'split', 'label', 'contour_score', 'end_to_end_score', 'n_slices',
    'n_slices_looked_at', 'n_slices_detected', 'n_slices_scored', 'n_tumour_slices',
    'n_tumour_slices_detected', 'slice_recall', 'slice_precision', 'tumour_found')


def read_grey(path: Path) -> np.ndarray:
    """A converter JPEG as uint8 (H, W); raises naming the file when unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise FileNotFoundError(f'cannot read slice image {path}')
    return image


def slices_by_patient(coco: dict) -> Dict[str, List[dict]]:
    """patient_id -> every image entry of the patient, in z order (``slice_index``)."""
    by_patient: Dict[str, List[dict]] = defaultdict(list)
    for image in coco.get('images', []):
        by_patient[image['patient_id']].append(image)
    return {p: sorted(images, key=lambda im: im['slice_index'])
            for p, images in sorted(by_patient.items())}


def contour_units(coco: dict, dataset_cfg: Mapping, source: str
                  ) -> Dict[str, List[Tuple[int, Optional[list]]]]:
    """patient_id -> (COCO image id, region box or None) of every sample the
    classifier's test dataset would score: its slices (``MsomSliceDataset``), or
    its contoured lesion sections with their boxes (``MsomRegionDataset``)."""
    units: Dict[str, List[Tuple[int, Optional[list]]]] = defaultdict(list)
    if dataset_cfg.get('type', '').split('.')[-1] == 'MsomRegionDataset':
        regions = select_regions(coco, tuple(dataset_cfg.get('region_classes', ('GTV', 'GTVln'))),
                                 dataset_cfg.get('regions_per_structure'), source)
        for region in regions:
            units[region['patient_id']].append((region['id'], region['region_box']))
        return dict(units)
    chosen = select_slices(coco, dataset_cfg.get('slice_selection', 'tumour'),
                           tuple(dataset_cfg.get('tumour_classes', ('GTV', 'GTVln'))), source)
    for image in evenly_spaced(chosen, dataset_cfg.get('max_slices_per_patient')):
        units[image['patient_id']].append((image['id'], None))
    return dict(units)


def sample_patients(coco: dict, labels: Mapping[str, float], n: int, seed: int) -> dict:
    """``coco`` restricted to ``n`` of its patients, drawn stratified by label
    with ``seed`` (images and their annotations; everything else kept).

    For the training patients of a large cohort, whose end-to-end scores only
    fit the deployment cut-off: ``n`` at least the number of patients returns
    ``coco`` unchanged. Raises ValueError when ``n`` < 2.
    """
    from sklearn.model_selection import train_test_split
    patients = sorted({image['patient_id'] for image in coco.get('images', [])})
    if n < 2:
        raise ValueError(f'a sample of {n} patients cannot fit a cut-off; give at least 2')
    if n >= len(patients):
        return coco
    y = [int(labels[p]) for p in patients]
    stratify = y if min(sum(y), len(y) - sum(y)) >= 2 else None
    kept, _ = train_test_split(patients, train_size=n, stratify=stratify, random_state=seed)
    kept = set(kept)
    images = [im for im in coco['images'] if im['patient_id'] in kept]
    ids = {im['id'] for im in images}
    return {**coco, 'images': images,
            'annotations': [a for a in coco.get('annotations', []) if a['image_id'] in ids]}


@dataclass
class CohortInputs:
    """One split of a converted cohort: its COCO dict, file and image folder."""

    split: str
    coco: dict
    source: str
    image_dir: Path
    tumour_classes: Sequence[str] = ('GTV', 'GTVln')
    tumour_ids: set = field(init=False)

    def __post_init__(self) -> None:
        self.tumour_ids = set(tumour_area_by_image(self.coco, self.tumour_classes, self.source))


def sample_training_patients(cohorts: Sequence[CohortInputs], labels: Mapping[str, float],
                             n: int, seed: int, train_split: str = 'train'
                             ) -> Tuple[List[CohortInputs], str]:
    """``cohorts`` with the ``train_split`` one cut to ``n`` patients
    (:func:`sample_patients`), and the note saying so for the report."""
    out, note = list(cohorts), ''
    for k, cohort in enumerate(out):
        if cohort.split != train_split:
            continue
        n_all = len({im['patient_id'] for im in cohort.coco['images']})
        out[k] = CohortInputs(cohort.split, sample_patients(cohort.coco, labels, n, seed),
                              cohort.source, cohort.image_dir, cohort.tumour_classes)
        n_kept = len({im['patient_id'] for im in out[k].coco['images']})
        note = (f'{train_split} patients scored: {n_kept} of {n_all} (drawn stratified by label, '
                f'seed {seed}); both cut-offs are fitted on them')
    return out, note


def score_patient(images: Sequence[dict], cohort: CohortInputs,
                  units: Sequence[Tuple[int, Optional[list]]],
                  score_fn: Callable, score_units_fn: Callable) -> dict:
    """One patient's row (see :data:`ROW_COLUMNS`, without id, split and label).

    ``score_fn(slices, spacing_mm=...) -> (found, looked, slice_scores)`` is
    :func:`~mmnpc.inference.predict_patient.detect_and_score` bound to the
    models; ``score_units_fn(slices, boxes, spacing_mm=...) -> probabilities``
    scores given slices, or the windows around given boxes for a region model
    (:func:`~mmnpc.inference.predict_patient.score_contour_units`; the
    contour-based score). ``units``: :func:`contour_units` of the patient.
    """
    slices = [read_grey(cohort.image_dir / image['file_name']) for image in images]
    spacing = images[0].get('spacing_mm') if images else None
    found, looked, slice_scores = score_fn(slices, spacing_mm=spacing)
    position = {image['id']: k for k, image in enumerate(images)}
    tumour = {position[i] for i in cohort.tumour_ids if i in position}
    detected = set(found)
    units = [(position[i], box) for i, box in units if i in position]
    contour_scores = score_units_fn([slices[k] for k, _ in units], [box for _, box in units],
                                    spacing_mm=spacing) if units else None
    hits = len(tumour & detected)
    return {
        'contour_score': (unit_patient_score([k for k, _ in units], contour_scores)
                          if units else math.nan),
        'end_to_end_score': patient_score_of(slice_scores) if slice_scores else math.nan,
        'n_slices': len(images), 'n_slices_looked_at': len(looked),
        'n_slices_detected': len(detected), 'n_slices_scored': len(slice_scores),
        'n_tumour_slices': len(tumour), 'n_tumour_slices_detected': hits,
        'slice_recall': hits / len(tumour) if tumour else math.nan,
        'slice_precision': hits / len(detected) if detected else math.nan,
        'tumour_found': bool(hits)}


def score_cohort(cohorts: Iterable[CohortInputs], dataset_cfg: Mapping,
                 labels: Mapping[str, float], score_fn_for: Callable[[str], Callable],
                 score_units_fn_for: Callable[[str], Callable],
                 progress: Optional[Callable[[Iterable], Iterable]] = None,
                 done: Optional[Mapping[Tuple[str, str], dict]] = None,
                 on_row: Optional[Callable[[dict], None]] = None) -> pd.DataFrame:
    """The per-patient table of every patient of ``cohorts`` (columns :data:`ROW_COLUMNS`).

    ``score_fn_for(patient_id)`` / ``score_units_fn_for(patient_id)`` return
    the scoring functions with that patient's clinical vector bound. Resume:
    ``done`` maps (split, patient_id) to a row scored earlier by the same models
    and settings, taken as it is (the caller vouches for that); ``on_row(row)``
    is called with every newly scored row, e.g. to store it.
    """
    rows, done = [], done or {}
    for cohort in cohorts:
        units = contour_units(cohort.coco, dataset_cfg, cohort.source)
        patients = slices_by_patient(cohort.coco).items()
        for patient_id, images in (progress(patients) if progress else patients):
            if (cohort.split, patient_id) in done:
                rows.append(dict(done[(cohort.split, patient_id)]))
                continue
            row = score_patient(images, cohort, units.get(patient_id, []),
                                score_fn_for(patient_id), score_units_fn_for(patient_id))
            row = {'patient_id': patient_id, 'split': cohort.split,
                   'label': int(labels[patient_id]), **row}
            if on_row is not None:
                on_row(row)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


@dataclass
class EndToEndEvaluation:
    """Result of :func:`evaluate_end_to_end`: flat ``report`` (NaN = undefined),
    the two :class:`MsomEvaluation` s and the notes."""

    report: dict
    contour: MsomEvaluation
    end_to_end: MsomEvaluation
    notes: list
    itt: Optional[MsomEvaluation] = None


def _score_table(rows: pd.DataFrame, column: str, splits: Sequence[str]) -> pd.DataFrame:
    table = rows.loc[rows['split'].isin(splits) & np.isfinite(rows[column].astype(float)),
                     ['patient_id', 'split', column, 'label', 'n_slices_scored']]
    return table.rename(columns={column: 'score', 'n_slices_scored': 'n_slices'})


def intention_to_treat_scores(rows: pd.DataFrame, fallback: Optional[Mapping[str, float]] = None,
                              train_split: str = 'train') -> Tuple[pd.Series, pd.Series, str]:
    """(ITT score per row, bool "fallback used" per row, the fallback's name).

    The end-to-end score where there is one; otherwise ``fallback[patient_id]``
    when a fallback mapping is given (a patient missing from it is an error
    naming them), else the share of MSOM among the ``train_split`` patients
    (labels only: no evaluated patient's outcome enters any score).
    """
    score = rows['end_to_end_score'].astype(float)
    missing = ~np.isfinite(score)
    if fallback is None:
        train = rows.loc[rows['split'] == train_split, 'label']
        if not len(train):
            raise ValueError(f'no {train_split!r} patients to take the fallback prevalence from')
        values = pd.Series(float(train.mean()), index=rows.index)
        name = FALLBACK_PREVALENCE
    else:
        absent = sorted(set(rows.loc[missing, 'patient_id']) - set(fallback))
        if absent:
            raise ValueError(f'no fallback score for patients {absent} (nothing was detected '
                             'in them)')
        values = rows['patient_id'].map(lambda p: fallback.get(p, math.nan)).astype(float)
        bad = sorted(rows.loc[missing & ~np.isfinite(values), 'patient_id'])
        if bad:
            raise ValueError(f'the fallback score of patients {bad} is not a number')
        name = 'fallback model score'
    return score.where(~missing, values), missing, name


def evaluate_end_to_end(rows: pd.DataFrame, eval_split: str = 'test', train_split: str = 'train',
                        level: float = 0.95, fallback: Optional[Mapping[str, float]] = None,
                        fallback_name: Optional[str] = None) -> EndToEndEvaluation:
    """Contour-based and end-to-end statistics of :func:`score_cohort`'s table.

    Report keys: ``contour_<key>`` and ``end_to_end_<key>`` for the keys of
    :func:`~mmnpc.evaluation.evaluate_patient_table` (the end-to-end
    ``cutoff`` is the **deployment cut-off**, Youden on the training
    patients' end-to-end scores); ``paired_*`` (DeLong test of end-to-end
    minus contour AUC on the evaluated patients with both scores);
    ``<split>_tumour_found_share``, ``<split>_n_no_detection``,
    ``<split>_slice_recall_mean``, ``<split>_slice_precision_mean`` for the
    training and evaluated splits; ``eval_split``; ``itt_<key>`` (the same keys
    for the intention-to-treat score, :func:`intention_to_treat_scores` with
    ``fallback``), ``itt_fallback`` (its name: ``fallback_name`` or the rule)
    and ``<split>_n_fallback``.
    """
    notes: List[str] = []
    splits = (train_split, eval_split)
    contour = evaluate_patient_table(_score_table(rows, 'contour_score', splits),
                                     level=level, train_split=train_split, eval_split=eval_split)
    e2e = evaluate_patient_table(_score_table(rows, 'end_to_end_score', splits),
                                 level=level, train_split=train_split, eval_split=eval_split,
                                 require_train=False)  # no detection in any training patient
    notes += [f'contour-based: {n}' for n in contour.notes]
    notes += [f'end-to-end: {n}' for n in e2e.notes]
    report: dict = {'eval_split': eval_split}
    report.update({f'contour_{k}': v for k, v in contour.report.items() if k != 'eval_split'})
    report.update({f'end_to_end_{k}': v for k, v in e2e.report.items() if k != 'eval_split'})
    report['end_to_end_cutoff_rule'] = f'youden_{train_split}_end_to_end (deployment cut-off)'
    itt_rows = rows.copy()
    itt_rows['itt_score'], used, rule = intention_to_treat_scores(rows, fallback, train_split)
    itt = evaluate_patient_table(_score_table(itt_rows, 'itt_score', splits), level=level,
                                 train_split=train_split, eval_split=eval_split)
    notes += [f'intention-to-treat: {n}' for n in itt.notes]
    report.update({f'itt_{k}': v for k, v in itt.report.items() if k != 'eval_split'})
    report['itt_fallback'] = fallback_name or rule
    for split in splits:
        report[f'{split}_n_fallback'] = int(used[rows['split'] == split].sum())
    for split in splits:
        patients = rows[rows['split'] == split]
        missing = int((~np.isfinite(patients['end_to_end_score'].astype(float))).sum())
        report[f'{split}_n_patients'] = int(len(patients))
        report[f'{split}_tumour_found_share'] = (float(patients['tumour_found'].mean())
                                                 if len(patients) else math.nan)
        report[f'{split}_n_no_detection'] = missing
        report[f'{split}_slice_recall_mean'] = float(patients['slice_recall'].mean())
        report[f'{split}_slice_precision_mean'] = float(patients['slice_precision'].mean())
        if missing:
            notes.append(f'{missing} of {len(patients)} {split} patients: nothing detected, so no '
                         'end-to-end score (as in prediction); left out of the end-to-end figures')
    both = rows[(rows['split'] == eval_split) & np.isfinite(rows['contour_score'].astype(float))
                & np.isfinite(rows['end_to_end_score'].astype(float))]
    paired = delong_paired_test(both['end_to_end_score'], both['contour_score'], both['label'],
                                level)
    report.update({'paired_n_patients': int(len(both)), 'paired_auc_difference': paired.difference,
                   'paired_ci_low': paired.ci_low, 'paired_ci_high': paired.ci_high,
                   'paired_z': paired.z, 'paired_p_value': paired.p_value,
                   'paired_test': 'DeLong (1988) for correlated ROC curves, end-to-end minus '
                                  'contour-based AUC, two-sided'})
    return EndToEndEvaluation(report, contour, e2e, notes, itt)


def deployment_record(evaluation: EndToEndEvaluation, **provenance) -> dict:
    """What ``tools/predict.py`` reads as ``deployment.json``: the deployment cut-off,
    its rule and provenance (checkpoints, detector settings)."""
    cutoff = evaluation.report['end_to_end_cutoff']
    return {'cutoff': json_number(cutoff),
            'cutoff_rule': evaluation.report['end_to_end_cutoff_rule'],
            'n_train_patients': evaluation.report['end_to_end_n_train_patients'],
            **provenance}
