"""Patient-level evaluation of the MSOM classifier and its files (metrics.json, CSV, ROC).

The protocol (docs/evaluation.md, "Evaluation"):

* a patient's score is the mean of its slice scores (:func:`patient_scores`);
* the cut-off is chosen on the *training* patients -- Youden's J on their ROC
  curve (``cutoff_rule='youden_train'``) -- or given (``'fixed'``), and applied
  unchanged to the validation patients;
* AUC with DeLong's 95% CI, precision, recall (sensitivity), specificity and
  accuracy are computed on the validation patients only;
* the same statistics at the median training-patient score
  (``median_cutoff_rule='median_train'``), the paper's second operating point;
* the training AUC is reported for reference (it is optimistic).

An undefined value is NaN here and null in metrics.json, with a note saying why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from .binary_stats import (AUC_CI_METHOD, binary_classification_report, delong_auc_ci,
                           has_both_classes, median_cutoff, youden_cutoff)
from .patient_table import assign_risk_groups
from ..utils.json_io import json_ready
from .roc_plot import plot_roc
from .summary import write_metrics_json

CONFUSION_KEYS: tuple[str, ...] = ('precision', 'recall', 'specificity', 'accuracy',
                                   'tp', 'fp', 'tn', 'fn')


@dataclass
class MsomEvaluation:
    """Result of :func:`evaluate_patient_table`.

    Attributes:
        report: flat dict of numbers (NaN when undefined) and the rule names
            ``auc_ci_method``, ``cutoff_rule``, ``median_cutoff_rule``,
            ``eval_split``; see :func:`evaluate_patient_table`.
        table: the patient table with ``risk_group`` at ``report['cutoff']``
            (columns ``patient_id, split, score, label, risk_group, n_slices``).
        notes: why a value is NaN, one sentence each.
    """

    report: dict
    table: pd.DataFrame
    notes: list = field(default_factory=list)

    def numbers(self) -> dict:
        """The numeric entries of ``report`` (what a metric may log)."""
        return {key: value for key, value in self.report.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)}


def evaluate_patient_table(table: pd.DataFrame, cutoff: Optional[float] = None,
                           level: float = 0.95, train_split: str = 'train',
                           eval_split: str = 'val', require_train: bool = True
                           ) -> MsomEvaluation:
    """Evaluate patient scores by the protocol of the module docstring.

    Args:
        table: one row per patient with ``patient_id``, ``split``, ``score``,
            ``label`` (as :func:`~mmnpc.evaluation.patient_scores` returns).
        cutoff: a fixed cut-off (e.g. from the training run's metrics.json);
            None chooses it by Youden's J on the ``train_split`` patients.
        level: confidence level of the AUC interval.
        train_split: split whose patients choose the cut-offs.
        eval_split: split whose patients are evaluated.
        require_train: without ``train_split`` patients and ``cutoff``, raise
            (default); False gives a NaN cut-off with a note instead (e.g. the
            end-to-end evaluation, where a training patient without any
            detection has no score).

    Returns:
        :class:`MsomEvaluation`; ``report`` keys: ``auc``, ``auc_ci_low``,
        ``auc_ci_high``, ``auc_se``, ``auc_ci_level``, ``auc_ci_method``,
        ``cutoff``, ``cutoff_rule``, ``precision``, ``recall``,
        ``specificity``, ``accuracy``, ``tp``, ``fp``, ``tn``, ``fn``, the
        same eight with prefix ``median_`` plus ``median_cutoff`` and
        ``median_cutoff_rule``, ``n_val_patients``, ``n_val_positive``,
        ``n_train_patients``, ``n_train_positive``, ``train_auc``,
        ``train_auc_ci_low``, ``train_auc_ci_high``, ``eval_split``.

    Raises:
        ValueError: a split other than ``train_split`` / ``eval_split``; no
            ``train_split`` patients and no ``cutoff`` (a cut-off is never
            invented from the evaluated patients); a non-finite ``cutoff``.
    """
    unknown = sorted(set(table['split']) - {train_split, eval_split})
    if unknown:
        raise ValueError(f'patients of unknown split(s) {unknown}; expected '
                         f'{train_split!r} (chooses the cut-off) and {eval_split!r} (evaluated)')
    train = table[table['split'] == train_split]
    evaluated = table[table['split'] == eval_split]
    notes: list[str] = []
    if not len(train) and cutoff is None and not require_train:
        cutoff, cutoff_rule = math.nan, f'youden_{train_split}'
        notes.append(f'no {train_split} patients: no cut-off, so no risk groups and no '
                     'cut-off statistics')
    else:
        cutoff, cutoff_rule = _choose_cutoff(train, cutoff, train_split, notes)
    if len(train):
        median, median_rule = median_cutoff(train['score']), f'median_{train_split}'
    else:
        median, median_rule = math.nan, f'median_{train_split}'
        notes.append(f'no {train_split} patients: the median cut-off is undefined')

    val_auc = delong_auc_ci(evaluated['score'], evaluated['label'], level)
    train_auc = delong_auc_ci(train['score'], train['label'], level)
    _note_undefined_auc(evaluated, eval_split, val_auc, notes)
    _note_undefined_auc(train, train_split, train_auc, notes)

    report: dict = {
        'auc': val_auc.auc, 'auc_ci_low': val_auc.ci_low, 'auc_ci_high': val_auc.ci_high,
        'auc_se': val_auc.se, 'auc_ci_level': level, 'auc_ci_method': AUC_CI_METHOD,
        'cutoff': cutoff, 'cutoff_rule': cutoff_rule}
    report.update(_stats_at(evaluated, cutoff, eval_split, 'the cut-off', notes))
    report['median_cutoff'] = median
    report['median_cutoff_rule'] = median_rule
    report.update({f'median_{key}': value for key, value in
                   _stats_at(evaluated, median, eval_split, 'the median cut-off', notes).items()})
    report.update({
        'n_val_patients': int(len(evaluated)), 'n_val_positive': int(evaluated['label'].sum()),
        'n_train_patients': int(len(train)), 'n_train_positive': int(train['label'].sum()),
        'train_auc': train_auc.auc, 'train_auc_ci_low': train_auc.ci_low,
        'train_auc_ci_high': train_auc.ci_high, 'eval_split': eval_split})
    return MsomEvaluation(report, assign_risk_groups(table, cutoff), notes)


def _choose_cutoff(train: pd.DataFrame, cutoff: Optional[float], train_split: str,
                   notes: list) -> tuple[float, str]:
    """(cut-off, rule): the given one, or Youden's on the training patients."""
    if cutoff is not None:
        if not math.isfinite(cutoff):
            raise ValueError(f'cutoff must be a finite score, got {cutoff}')
        return float(cutoff), 'fixed'
    rule = f'youden_{train_split}'
    if not len(train):
        raise ValueError(f'no {train_split!r} patients to choose the cut-off on (Youden); '
                         'evaluate with them, or pass a fixed cutoff (e.g. the `cutoff` '
                         "of the training run's metrics.json)")
    if not has_both_classes(train['label']):
        notes.append(f'all {train_split} patients have label {int(train["label"].iloc[0])}: '
                     'no Youden cut-off, so no risk groups and no cut-off statistics')
        return math.nan, rule
    return youden_cutoff(train['score'], train['label']), rule


def _note_undefined_auc(patients: pd.DataFrame, split: str, interval, notes: list) -> None:
    if not len(patients):
        notes.append(f'no {split} patients: their AUC is undefined')
    elif math.isnan(interval.auc):
        notes.append(f'all {len(patients)} {split} patients have label '
                     f'{int(patients["label"].iloc[0])}: their AUC is undefined')
    elif math.isnan(interval.ci_low):
        notes.append(f'{split}: a class has a single patient, so the DeLong CI is undefined')


def _stats_at(patients: pd.DataFrame, cutoff: float, split: str, name: str,
              notes: list) -> dict:
    """The confusion statistics of :data:`CONFUSION_KEYS` (NaN when undefined)."""
    if math.isnan(cutoff) or not len(patients):
        if len(patients) == 0:
            notes.append(f'no {split} patients: the statistics at {name} are undefined')
        return {key: math.nan for key in CONFUSION_KEYS}
    stats = binary_classification_report(patients['score'], patients['label'], cutoff)
    for key, denominator in (('precision', 'no patient scores at or above it'),
                             ('recall', f'no {split} patient is positive'),
                             ('specificity', f'no {split} patient is negative')):
        if math.isnan(stats[key]):
            notes.append(f'{key} at {name} is undefined: {denominator}')
    return {key: stats[key] for key in CONFUSION_KEYS}


def msom_summary(evaluation: MsomEvaluation) -> dict:
    """The metrics.json content: ``evaluation.report`` with NaN as None, plus ``notes``."""
    summary = json_ready(dict(evaluation.report))
    summary['notes'] = list(evaluation.notes)
    return summary


def write_msom_outputs(evaluation: MsomEvaluation, out_dir: Path) -> dict:
    """Write ``metrics.json``, ``patient_scores.csv`` and ``roc.png`` into ``out_dir``.

    Returns:
        ``{'metrics': path, 'patient_scores': path, 'roc': path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {'metrics': out_dir / 'metrics.json', 'patient_scores': out_dir / 'patient_scores.csv',
             'roc': out_dir / 'roc.png'}
    write_metrics_json(msom_summary(evaluation), paths['metrics'])
    evaluation.table.to_csv(paths['patient_scores'], index=False)
    report = evaluation.report
    plot_roc(evaluation.table, paths['roc'], cutoff=report['cutoff'],
             level=report['auc_ci_level'], splits=('train', report['eval_split']),
             eval_split=report['eval_split'])
    return paths
