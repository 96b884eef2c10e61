"""Patient-level AUC (DeLong CI) and cut-off statistics of the MSOM classifier."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmdet.registry import METRICS

from ..msom_report import MsomEvaluation, evaluate_patient_table
from ..patient_table import SLICE_COLUMNS, patient_scores


@METRICS.register_module()
class PatientAUCMetric(BaseMetric):
    """Mean slice score per patient, then AUC / cut-off statistics on the validation patients.

    The val / test dataloader covers *both* splits: the training patients
    choose the cut-off (Youden's J) and the median cut-off, the validation
    patients are evaluated at them (see :mod:`mmnpc.evaluation.msom_report`).
    Results (prefix ``msom``): ``auc``, ``auc_ci_low``, ``auc_ci_high``,
    ``auc_se``, ``cutoff``, ``precision``, ``recall``, ``specificity``,
    ``accuracy``, ``tp`` ... ``fn``, their ``median_`` variants,
    ``n_val_patients``, ``n_train_patients``, ``train_auc`` ...; NaN (never 0)
    when undefined, with a logged warning saying why.

    After :meth:`evaluate`, ``last_evaluation`` (main process) holds the full
    :class:`~mmnpc.evaluation.MsomEvaluation`: the report with its rule names
    and the patient table (patient_id, split, score, label, risk_group,
    n_slices) that ``tools/test.py`` writes as metrics.json,
    patient_scores.csv and roc.png.

    Each data sample (a dict, as MMEngine's Evaluator passes it) carries
    ``patient_id`` (str), ``split`` ('train' / 'val'), ``gt_label`` (shape
    (1,), 0/1) and ``pred_score``: shape (1,), the probability of MSOM, or
    shape (2,), class probabilities (no MSOM, MSOM).

    Args:
        cutoff: a fixed cut-off instead of Youden's on the training patients
            (needed when the data hold no training patients).
        ci_level: confidence level of the AUC interval.
        train_split: split that chooses the cut-offs.
        eval_split: split that is evaluated.
        collect_device, prefix, collect_dir: as :class:`mmengine.evaluator.BaseMetric`.
    """

    default_prefix: Optional[str] = 'msom'

    def __init__(self, cutoff: Optional[float] = None, ci_level: float = 0.95,
                 train_split: str = 'train', eval_split: str = 'val',
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if cutoff is not None and not math.isfinite(cutoff):
            raise ValueError(f'cutoff must be a finite score, got {cutoff}')
        if not 0 < ci_level < 1:
            raise ValueError(f'ci_level must be in (0, 1), got {ci_level}')
        self.cutoff = None if cutoff is None else float(cutoff)
        self.ci_level = ci_level
        self.train_split = train_split
        self.eval_split = eval_split
        self.last_evaluation: Optional[MsomEvaluation] = None

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep (patient_id, split, score, label, slice_id) of every sample (slice or region),
        and its logit and attention score when the model pools by attention."""
        for sample in data_samples:
            patient_id = str(_field(sample, 'patient_id'))
            row = {
                'patient_id': patient_id,
                'split': str(_field(sample, 'split')),
                'score': _slice_score(_field(sample, 'pred_score'), patient_id),
                'label': _slice_label(_field(sample, 'gt_label'), patient_id),
                'slice_id': sample.get('img_id', len(self.results))}
            if 'pred_attention' in sample:
                row['logit'] = float(_as_array(_field(sample, 'pred_logit'))[0])
                row['attention'] = float(_as_array(sample['pred_attention'])[0])
            self.results.append(row)

    def compute_metrics(self, results: list) -> dict:
        """Aggregate per patient and evaluate; warns for every undefined value."""
        columns = [*SLICE_COLUMNS, 'slice_id']
        if results and 'attention' in results[0]:
            columns += ['logit', 'attention']
        table = patient_scores(pd.DataFrame(results, columns=columns))
        evaluation = evaluate_patient_table(
            table, cutoff=self.cutoff, level=self.ci_level,
            train_split=self.train_split, eval_split=self.eval_split)
        logger = MMLogger.get_current_instance()
        for note in evaluation.notes:
            logger.warning(f'PatientAUCMetric: {note}')
        report = evaluation.report
        logger.info(
            f'PatientAUCMetric: {report["n_val_patients"]} {self.eval_split} patients, '
            f'AUC {report["auc"]:.3f} ({self.ci_level:.0%} CI {report["auc_ci_low"]:.3f}-'
            f'{report["auc_ci_high"]:.3f}, DeLong); cut-off {report["cutoff"]:.4g} '
            f'({report["cutoff_rule"]})')
        self.last_evaluation = evaluation
        return evaluation.numbers()


def _field(sample: dict, key: str) -> Any:
    if key not in sample:
        raise KeyError(f'PatientAUCMetric needs `{key}` on every data sample; got keys '
                       f'{sorted(sample)} (the classifier dataset sets patient_id and split, '
                       'the model pred_score)')
    return sample[key]


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _slice_score(value: Any, patient_id: str) -> float:
    """The MSOM probability from ``pred_score`` of shape (1,) or (2,)."""
    scores = _as_array(value)
    if scores.size not in (1, 2):
        raise ValueError(f'patient {patient_id}: pred_score must hold 1 (MSOM probability) '
                         f'or 2 (class probabilities) values, got {scores.size}')
    return float(scores[-1])


def _slice_label(value: Any, patient_id: str) -> int:
    labels = _as_array(value)
    if labels.size != 1 or labels[0] not in (0, 1):
        raise ValueError(f'patient {patient_id}: gt_label must be one 0/1 value, '
                         f'got {labels.tolist()}')
    return int(labels[0])
