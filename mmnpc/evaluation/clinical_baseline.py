"""Clinical-only baseline: logistic regression on the fusion model's encoded clinical vector.

The yardstick for the image pathway: what the clinical variables alone reach
on the same patients, encoded exactly as the fusion classifier sees them
(:class:`~mmnpc.datasets.ClinicalEncoder` with the config's ``clinical_vars``,
standardisation fitted on the training patients only). The model is
scikit-learn's :class:`~sklearn.linear_model.LogisticRegression` with its
default L2 penalty, ``C = 1.0``, solver lbfgs, ``max_iter = 1000``
(:data:`LOGISTIC_PARAMS`), fitted on the ``fit_split`` patients only. The
penalty keeps the fit finite when the training patients are separable (small
cohorts); it is fixed, not tuned, so no evaluated patient chooses anything.

The returned table has the columns of
:func:`~mmnpc.evaluation.patient_scores` (``n_slices`` is 0: no image is
read), so :func:`~mmnpc.evaluation.evaluate_patient_table` evaluates it
unchanged and its ``score`` can be paired with a classifier's for
:func:`~mmnpc.evaluation.delong_paired_test`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from mmnpc.datasets.clinical_encoder import ClinicalEncoder
from mmnpc.datasets.clinical_table import patient_labels, read_clinical_rows

# L2 is LogisticRegression's default penalty in every supported scikit-learn; it is not
# named because `penalty` is deprecated from 1.8 (and `l1_ratio` warns before 1.8).
LOGISTIC_PARAMS: dict = dict(C=1.0, solver='lbfgs', max_iter=1000)
MODEL_DESCRIPTION = ('logistic regression on the encoded clinical vector (L2, C=1.0, lbfgs, '
                     'max_iter=1000), encoder and model fitted on the training patients')


@dataclass
class ClinicalModel:
    """The fitted clinical-only model, for scoring a new patient (late fusion in
    ``tools/predict.py``): the encoder's fitted state and the regression's coefficients.
    ``tools/clinical_baseline.py`` writes it as ``clinical_model.json``."""

    encoder: ClinicalEncoder
    coef: np.ndarray  # (encoder.num_features,)
    intercept: float
    fit_split: str

    def score(self, values: Mapping[str, Any], patient_id: str = '<unknown>') -> float:
        """MSOM probability of one patient from its clinical values (clinical.csv columns;
        '' / None = missing). Raises DataPrepError naming the patient for a bad value."""
        return float(expit(self.intercept + self.encoder.encode(values, patient_id) @ self.coef))

    def to_json(self) -> dict:
        return {'model': MODEL_DESCRIPTION, 'encoder': self.encoder.state_dict(),
                'coef': [float(c) for c in self.coef], 'intercept': self.intercept,
                'fit_split': self.fit_split}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> 'ClinicalModel':
        encoder = ClinicalEncoder.from_state_dict(record['encoder'])
        coef = np.asarray(record['coef'], dtype=np.float64)
        if coef.shape != (encoder.num_features,):
            raise ValueError(f'clinical model: {coef.size} coefficients for '
                             f'{encoder.num_features} encoded features')
        return cls(encoder, coef, float(record['intercept']), str(record['fit_split']))

    @classmethod
    def load(cls, path: Path) -> 'ClinicalModel':
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding='utf-8')))
        except (KeyError, ValueError) as err:
            raise ValueError(f'{path}: not a clinical model written by '
                             f'tools/clinical_baseline.py ({err})') from err


def encode_patients(encoder: ClinicalEncoder, rows: Mapping[str, Mapping[str, Any]],
                    patient_ids: Sequence[str]) -> np.ndarray:
    """float64 (len(patient_ids), encoder.num_features) matrix, one encoded row per patient."""
    if not patient_ids:
        return np.zeros((0, encoder.num_features))
    return np.stack([encoder.encode(rows[p], p) for p in patient_ids]).astype(np.float64)


def clinical_logistic_scores(clinical_csv: Path, clinical_vars: Sequence[Mapping[str, Any]],
                             patient_splits: Mapping[str, str], fit_split: str = 'train',
                             seed: int = 0) -> pd.DataFrame:
    """MSOM probability of every patient of ``patient_splits`` (see :func:`fit_clinical_model`)."""
    return fit_clinical_model(clinical_csv, clinical_vars, patient_splits, fit_split, seed)[1]


def fit_clinical_model(clinical_csv: Path, clinical_vars: Sequence[Mapping[str, Any]],
                       patient_splits: Mapping[str, str], fit_split: str = 'train',
                       seed: int = 0) -> tuple[ClinicalModel, pd.DataFrame]:
    """The fitted model and the MSOM probability of every patient of ``patient_splits``.

    Args:
        clinical_csv: the converter's ``clinical.csv`` (one row per patient,
            ``msom`` label, empty cell = missing).
        clinical_vars: the config's variable list (``fusion_clinical_vars``).
        patient_splits: patient_id -> split ('train' / 'val' / 'test'); only
            these patients are encoded and scored.
        fit_split: the split whose patients fit the encoder's statistics and
            the logistic regression; every other patient is only scored.
        seed: ``random_state`` of the regression (lbfgs is deterministic; kept
            for solvers that are not).

    Returns:
        (:class:`ClinicalModel`, one row per patient, sorted by split then
        patient id, with ``patient_id``, ``split``, ``score`` (predicted
        probability of MSOM), ``label`` (int 0/1) and ``n_slices`` (0)).

    Raises:
        ValueError: no clinical variables; no ``fit_split`` patient, or only
            one class among them (no regression can be fitted).
        DataPrepError (a ValueError): a patient without a row or a 0/1
            ``msom``, a missing column, a value the encoder refuses (see
            :class:`~mmnpc.datasets.ClinicalEncoder`).
    """
    if not clinical_vars:
        raise ValueError('clinical_vars is empty: the clinical baseline needs clinical variables '
                         "(e.g. the config's fusion_clinical_vars)")
    clinical_csv = Path(clinical_csv)
    encoder = ClinicalEncoder(clinical_vars)
    rows = read_clinical_rows(clinical_csv, [v['name'] for v in encoder.variables])
    patients = sorted(patient_splits)
    labels = patient_labels(rows, patients, clinical_csv)
    fit_ids = [p for p in patients if patient_splits[p] == fit_split]
    if not fit_ids:
        raise ValueError(f'no {fit_split!r} patients to fit the clinical baseline on; splits '
                         f'present: {sorted(set(patient_splits.values()))}')
    fit_labels = np.array([labels[p] for p in fit_ids], dtype=np.int64)
    if fit_labels.min() == fit_labels.max():
        raise ValueError(f'all {len(fit_ids)} {fit_split!r} patients have msom = '
                         f'{fit_labels[0]}: a logistic regression needs both classes')
    encoder.fit({p: rows[p] for p in fit_ids})  # training patients only, one row each
    model = LogisticRegression(random_state=seed, **LOGISTIC_PARAMS)
    model.fit(encode_patients(encoder, rows, fit_ids), fit_labels)
    scores = model.predict_proba(encode_patients(encoder, rows, patients))[:, 1]
    table = pd.DataFrame({
        'patient_id': patients, 'split': [patient_splits[p] for p in patients],
        'score': scores.astype(np.float64),
        'label': np.array([labels[p] for p in patients], dtype=np.int64), 'n_slices': 0})
    fitted = ClinicalModel(encoder, model.coef_[0].astype(np.float64),
                           float(model.intercept_[0]), fit_split)
    return fitted, table.sort_values(['split', 'patient_id'], ignore_index=True)
