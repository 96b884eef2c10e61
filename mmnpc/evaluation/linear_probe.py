"""A converged linear probe on frozen per-patient features (the fair transfer test).

Does the stage-1 detector's backbone hold more about metastasis than a random
one? Fine-tuning both answers a different question (which one trains better in
a fixed budget). The probe asks it of the features themselves: each patient is
one vector (the mean of its regions' pooled features,
:mod:`mmnpc.inference.patient_features`), and one L2-penalised logistic
regression per feature source predicts MSOM from it.

Protocol (nothing fitted or chosen on reported patients):

* the features are standardised and the regression fitted on the *fit*
  patients only (the training patients);
* its strength ``C`` is chosen from ``Cs`` by stratified ``folds``-fold cross-
  validation *inside* those patients (scikit-learn ``GridSearchCV`` over a
  ``StandardScaler`` + ``LogisticRegression`` pipeline, so every inner fold
  standardises with its own training part; scored by ROC AUC; ties go to the
  smaller C, the stronger penalty), then refitted on all fit patients
  (lbfgs to convergence: ``max_iter`` 5000, a non-converged fit raises);
* the reported patients are only scored.

The inner fold assignment is seeded (``seed``); the result records it with the
chosen C and the inner cross-validated AUC.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

DEFAULT_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 13))


@dataclass
class LinearProbe:
    """A fitted probe (module docstring): score new rows with :meth:`score`."""

    pipeline: Pipeline
    C: float
    inner_auc: float  # mean ROC AUC over the inner folds at the chosen C
    folds: int
    seed: int
    n_fit: int
    n_fit_positive: int
    n_features: int
    inner_aucs: dict = field(default_factory=dict)  # C -> mean inner AUC

    def score(self, features) -> np.ndarray:
        """MSOM probability of each row of ``features`` (n, n_features)."""
        features = _matrix(features)
        if features.shape[1] != self.n_features:
            raise ValueError(f'the probe was fitted on {self.n_features} features, '
                             f'got {features.shape[1]}')
        return self.pipeline.predict_proba(features)[:, 1]

    def summary(self) -> dict:
        return {'C': self.C, 'inner_cv_auc': self.inner_auc, 'inner_folds': self.folds,
                'inner_seed': self.seed, 'n_fit_patients': self.n_fit,
                'n_fit_positive': self.n_fit_positive, 'n_features': self.n_features}


def fit_linear_probe(features, labels, Cs=DEFAULT_CS, folds: int = 5,
                     seed: int = 0) -> LinearProbe:
    """Fit the probe on ``features`` (n, d) and 0/1 ``labels`` (n,) of the fit patients.

    Raises:
        ValueError: fewer than ``folds`` patients of either class, non-finite
            features, or a final fit that does not converge.
    """
    features = _matrix(features)
    labels = np.asarray(labels, dtype=int).reshape(-1)
    if labels.shape[0] != features.shape[0]:
        raise ValueError(f'{features.shape[0]} feature rows but {labels.shape[0]} labels')
    if not set(np.unique(labels)) <= {0, 1}:
        raise ValueError('labels must be 0 / 1')
    n_pos = int(labels.sum())
    if min(n_pos, labels.size - n_pos) < folds:
        raise ValueError(f'{folds}-fold inner cross-validation needs {folds} patients of each '
                         f'class; got {n_pos} with and {labels.size - n_pos} without MSOM')
    Cs = sorted(float(c) for c in Cs)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        {'logisticregression__C': Cs}, scoring='roc_auc',
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed), refit=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', ConvergenceWarning)  # inner fits only; final checked
        search.fit(features, labels)
    means = np.asarray(search.cv_results_['mean_test_score'], dtype=float)
    best = int(np.flatnonzero(means >= np.nanmax(means) - 1e-12)[0])  # smallest C of the ties
    chosen = Cs[best]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=chosen, max_iter=5000))
    with warnings.catch_warnings():
        warnings.simplefilter('error', ConvergenceWarning)
        try:
            pipeline.fit(features, labels)
        except ConvergenceWarning as error:
            raise ValueError(f'the probe at C = {chosen:g} did not converge: {error}') from error
    return LinearProbe(pipeline=pipeline, C=chosen, inner_auc=float(means[best]), folds=folds,
                       seed=seed, n_fit=int(labels.size), n_fit_positive=n_pos,
                       n_features=int(features.shape[1]),
                       inner_aucs={c: float(m) for c, m in zip(Cs, means)})


def _matrix(features) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f'features must be (patients, features), got shape {features.shape}')
    if not np.all(np.isfinite(features)):
        raise ValueError('features hold NaN or infinite values')
    return features
