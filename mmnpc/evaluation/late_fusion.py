"""Late fusion: the image score added to the clinical model instead of competing with it.

Early fusion (the fusion classifier: clinical vector concatenated before one FC
layer) lets the noise-free clinical vector win the training loss; the image
pathway then adds little. Late fusion keeps the two models apart and combines
their outputs with a logistic regression of two inputs:

    logit P(MSOM) = b0 + b1 * logit(clinical-only score) + b2 * logit(image score)

Protocol (stacking, nothing fitted on reported patients):

* the clinical-only model (``tools/clinical_baseline.py``) and the image model
  (``tools/test.py`` on an image-only classifier) are fitted on the
  *training* patients;
* their scores on the *validation* patients are out-of-sample for both, so the
  two-input regression is fitted there (``fit_split``, default ``'val'``).
  Fitting it on the training patients would reward the image model's in-sample
  optimism; three coefficients need far fewer patients than the 25-feature
  clinical vector would (the issue's alternative, out-of-fold image scores on
  the training patients, needs K more image models);
* the fit is an L2-penalised logistic regression (``C = 1``, not tuned) whose
  penalty is centred on ``prior_weight`` (default 1) for every input's
  coefficient rather than on 0: ``sum(log-loss) + ||w - prior_weight||^2 / (2 C)``,
  intercept free. Weights of 1 are the combination of calibrated scores of the
  same outcome that are independent given the outcome (the sum of their
  logits); the fit moves away from it as far as the fit split's evidence
  allows. With many fit patients the centre hardly matters;
* too few events to estimate the weights: when the fit split has fewer than
  ``min_events_per_input`` (default 10, the usual events-per-variable rule of
  clinical prediction models) patients of its rarer label per input, the
  weights are not estimated but set to 1 (unit weights: the sum of logits,
  whatever ``prior_weight``), and only the intercept is fitted; ``weights_fitted`` records it
  and ``tools/late_fusion.py`` says so. Why: on ``make demo``'s 24 validation
  patients (10 with MSOM, 5 events per input; neither input's AUC above 0.53
  there) the estimated weights came out negative (-0.004 and -0.161 with a
  penalty centred on 0, scikit-learn's ``LogisticRegression(C=1)``) and the
  fused score inverted the image score on the test patients (AUC 0.395,
  docs/demo.md); on 24 patients without signal the weights' signs are the
  noise's (tests). With the weights fixed, the intercept changes neither the
  ranking nor the Youden cut-off's classification: the fused score is then the
  sum of the two logits. That sum double-counts evidence the two scores share
  and lets the more over-confident model weigh more; it is a fallback for fit
  splits too small to learn better, not an estimate;
* the fused score's cut-off is Youden's J on the ``fit_split`` patients, and
  the test patients are only scored.

Several image models: ``extra`` image tables (e.g. a model of the primary
tumour's windows and one of the nodes', each trained on its structure alone, so
that a nodal and a primary-tumour signal are kept apart and both used) add one
input each, ``coef_extra[name] * logit(score)``; the table keeps the patients
every model scored (a nodes-only model does not score a patient without nodes:
the report says how many remain).

Scores are clipped to [1e-6, 1 - 1e-6] before the logit.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional

import numpy as np
import pandas as pd
from scipy.special import expit, logit

FEATURES: tuple[str, ...] = ('clinical_score', 'image_score')
_EPS = 1e-6


@dataclass(frozen=True)
class LateFusionModel:
    """Fitted coefficients of the two-input logistic regression (module docstring)."""

    intercept: float
    coef_clinical: float
    coef_image: float
    fit_split: str
    n_fit_patients: int
    n_fit_positive: int
    coef_extra: dict = field(default_factory=dict)  # extra image model name -> coefficient
    prior_weight: float = 0.0  # centre of the L2 penalty (0: files written before it existed)
    weights_fitted: bool = True  # False: too few fit events, weights = 1

    def score(self, clinical_score, image_score, **extra_scores) -> np.ndarray:
        """Fused MSOM probability of each patient (``extra_scores``: name -> scores)."""
        if set(extra_scores) != set(self.coef_extra):
            raise ValueError(f'the fusion was fitted with extra image models '
                             f'{sorted(self.coef_extra)}, got {sorted(extra_scores)}')
        z = (self.intercept + self.coef_clinical * _logit(clinical_score)
             + self.coef_image * _logit(image_score))
        for name, coef in self.coef_extra.items():
            z = z + coef * _logit(extra_scores[name])
        return expit(z)

    def as_dict(self) -> dict:
        return asdict(self)


def load_late_fusion(work_dir) -> tuple[LateFusionModel, float]:
    """The regression and its cut-off (Youden on the fit split) that ``tools/late_fusion.py``
    wrote to ``work_dir`` (late_fusion.json, metrics.json), for scoring new patients."""
    import json
    from pathlib import Path
    work_dir = Path(work_dir)
    try:
        record = json.loads((work_dir / 'late_fusion.json').read_text(encoding='utf-8'))
        cutoff = json.loads((work_dir / 'metrics.json').read_text(encoding='utf-8'))['cutoff']
        model = LateFusionModel(**record)
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f'{work_dir}: no late fusion written by tools/late_fusion.py '
                         f'(late_fusion.json + metrics.json): {err}') from err
    if cutoff is None:
        raise ValueError(f'{work_dir}/metrics.json has no cut-off (its fit split had one class?)')
    return model, float(cutoff)


def _logit(values) -> np.ndarray:
    return logit(np.clip(np.asarray(values, dtype=np.float64), _EPS, 1 - _EPS))


def late_fusion_table(image: pd.DataFrame, clinical: pd.DataFrame,
                      extra: Optional[Mapping[str, pd.DataFrame]] = None) -> pd.DataFrame:
    """One row per patient scored by every model: ``patient_id``, ``split``, ``label``,
    ``clinical_score``, ``image_score`` and ``<name>_score`` per ``extra`` table.

    Every table has the columns of a ``patient_scores.csv`` (``patient_id``,
    ``split``, ``score``, ``label``). Raises ValueError when a patient's split or
    label differ between them (two cohorts mixed up), or an extra name clashes.
    """
    columns = ['patient_id', 'split', 'score', 'label']
    tables = {'image': image, 'clinical': clinical, **dict(extra or {})}
    if len(tables) != 2 + len(extra or {}):
        raise ValueError('extra image models may not be named image or clinical')
    merged = None
    for name, table in tables.items():
        part = table[columns].astype({'patient_id': str}).rename(
            columns={c: f'{c}_{name}' for c in columns if c != 'patient_id'})
        merged = part if merged is None else merged.merge(part, on='patient_id')
    for name in list(tables)[1:]:
        for column in ('split', 'label'):
            differ = merged[merged[f'{column}_image'] != merged[f'{column}_{name}']]
            if len(differ):
                raise ValueError(f'the image and {name} tables disagree on the {column} of '
                                 f'patients {sorted(differ["patient_id"])[:5]}')
    out = pd.DataFrame({'patient_id': merged['patient_id'], 'split': merged['split_image'],
                        'label': merged['label_image'].astype(int),
                        'clinical_score': merged['score_clinical'].astype(float),
                        'image_score': merged['score_image'].astype(float)})
    for name in extra or {}:
        out[f'{name}_score'] = merged[f'score_{name}'].astype(float)
    return out


def extra_names(table: pd.DataFrame) -> list[str]:
    """Names of the extra image models in a :func:`late_fusion_table`."""
    return [c[:-len('_score')] for c in table.columns
            if c.endswith('_score') and c not in FEATURES]


def fit_late_fusion(table: pd.DataFrame, fit_split: str = 'val', c: float = 1.0,
                    prior_weight: float = 1.0, min_events_per_input: float = 10
                    ) -> LateFusionModel:
    """The regression fitted on the ``fit_split`` patients of :func:`late_fusion_table`
    (module docstring: L2 penalty of strength ``1 / c`` centred on ``prior_weight``;
    weights fixed at 1 below ``min_events_per_input`` events of the rarer label per input).

    Raises ValueError when that split lacks patients of either label.
    """
    fit = table[table['split'] == fit_split]
    labels = fit['label'].to_numpy(int)
    if len(np.unique(labels)) < 2:
        raise ValueError(f'late fusion is fitted on the {fit_split!r} patients, which need both '
                         f'labels ({len(fit)} patients, {int(labels.sum())} with MSOM)')
    extra = extra_names(table)
    x = np.column_stack([_logit(fit[name]) for name in (*FEATURES, *(f'{e}_score' for e in extra))])
    events = min(int(labels.sum()), int(len(labels) - labels.sum()))
    weights_fitted = events >= min_events_per_input * x.shape[1]
    # too few events: unit weights (the sum of logits) whatever the penalty's centre
    centre = prior_weight if weights_fitted else 1.0
    intercept, coef = _penalised_logistic(x, labels, c, centre, weights_fitted)
    return LateFusionModel(intercept, float(coef[0]), float(coef[1]), fit_split, int(len(fit)),
                           int(labels.sum()),
                           {e: float(coef[2 + k]) for k, e in enumerate(extra)},
                           float(prior_weight), bool(weights_fitted))


def _penalised_logistic(x: np.ndarray, y: np.ndarray, c: float, centre: float,
                        fit_weights: bool = True) -> tuple[float, np.ndarray]:
    """Intercept and coefficients minimising ``sum(log-loss) + ||w - centre||^2 / (2 c)``
    (scikit-learn's ``LogisticRegression(C=c)`` objective when ``centre`` is 0); with
    ``fit_weights`` False the coefficients stay at ``centre`` and only the intercept is fitted."""
    from scipy.optimize import minimize

    design = np.column_stack([np.ones(len(x)), x])
    free = np.r_[1.0, np.full(x.shape[1], 1.0 if fit_weights else 0.0)]
    penalised = np.r_[0.0, np.ones(x.shape[1])]
    start = np.r_[0.0, np.full(x.shape[1], float(centre))]

    def loss(params):
        params = np.where(free > 0, params, start)
        z = design @ params
        value = np.sum(np.logaddexp(0, z) - y * z)
        value += 0.5 / c * np.sum(penalised * (params - start) ** 2)
        grad = design.T @ (expit(z) - y) + penalised * (params - start) / c
        return value, grad * free

    result = minimize(loss, start, jac=True, method='L-BFGS-B',
                      options={'gtol': 1e-10, 'ftol': 1e-14, 'maxiter': 1000})
    # a line search that cannot improve further at a vanishing gradient is converged
    if not result.success and np.max(np.abs(result.jac)) > 1e-6 * max(1, len(x)):
        raise ValueError(f'late fusion: the regression did not converge ({result.message})')
    params = np.where(free > 0, result.x, start)
    return float(params[0]), params[1:]


def weights_note(model: LateFusionModel) -> list[str]:
    """The note ``tools/late_fusion.py`` prints when the weights were not estimated."""
    if model.weights_fitted:
        return []
    events = min(model.n_fit_positive, model.n_fit_patients - model.n_fit_positive)
    return [f'the {model.n_fit_patients} {model.fit_split} patients hold {events} events of the '
            'rarer label, too few per input to estimate weights on: the weights are not '
            "estimated but set to 1 (the sum of the inputs' logits) and only the intercept is "
            'fitted (mmnpc/evaluation/late_fusion.py)']


def inverted_inputs(table: pd.DataFrame, model: LateFusionModel) -> list[str]:
    """Notes on every input the fit gives a negative weight (the fused score then ranks
    patients against that risk score), each with that input's AUC alone on the fit split:
    the sign of a fit on patients too few, or without signal, for it (docs/demo.md: on 24
    validation patients with image AUC 0.52 and clinical 0.51 the fused test AUC was 0.395).
    Empty when every weight is >= 0."""
    from .binary_stats import delong_auc_ci
    fit = table[table['split'] == model.fit_split]
    weights = {'clinical': model.coef_clinical, 'image': model.coef_image, **model.coef_extra}
    notes = []
    for name, weight in weights.items():
        if weight < 0:
            alone = delong_auc_ci(fit[f'{name}_score'], fit['label']).auc
            notes.append(f'the fit gives the {name} score a negative weight ({weight:+.3f}), so '
                         f'the fused score ranks patients against it; on the '
                         f'{model.n_fit_patients} {model.fit_split} patients it was fitted on '
                         f'({model.n_fit_positive} MSOM) the {name} score alone has AUC '
                         f'{alone:.3f}: too few patients, or no signal for it there, to fit '
                         'the fusion on')
    return notes


def fused_patient_table(table: pd.DataFrame, model: LateFusionModel) -> pd.DataFrame:
    """``table`` as a patient table (``score`` = fused probability, ``n_slices`` = 0)
    for :func:`~mmnpc.evaluation.evaluate_patient_table`."""
    out = table[['patient_id', 'split', 'label']].copy()
    out['score'] = model.score(table['clinical_score'], table['image_score'],
                               **{e: table[f'{e}_score'] for e in extra_names(table)})
    out['n_slices'] = 0
    return out[['patient_id', 'split', 'score', 'label', 'n_slices']]
