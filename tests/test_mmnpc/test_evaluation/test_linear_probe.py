"""The transfer test's linear probe: C chosen by inner CV on the fit patients only."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from mmnpc.evaluation.linear_probe import fit_linear_probe

CS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _data(n: int, d: int, signal: float, seed: int):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(int)
    x = rng.normal(size=(n, d))
    x[:, 0] += signal * y
    return x, y


def _inner_auc_by_hand(x, y, C, folds, seed) -> float:
    """An independent inner CV: scaler fitted inside each fold, AUC per fold, mean."""
    aucs = []
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        scaler = StandardScaler().fit(x[train])
        model = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(x[train]), y[train])
        aucs.append(roc_auc_score(y[held], model.predict_proba(scaler.transform(x[held]))[:, 1]))
    return float(np.mean(aucs))


def test_c_is_the_best_inner_cv_auc_computed_independently():
    x, y = _data(90, 20, 1.2, 0)
    probe = fit_linear_probe(x, y, Cs=CS, folds=5, seed=3)
    by_hand = {c: _inner_auc_by_hand(x, y, c, 5, 3) for c in CS}
    assert probe.inner_aucs == pytest.approx(by_hand)
    best = max(by_hand.values())
    assert probe.C == min(c for c in CS if by_hand[c] >= best - 1e-12)
    assert probe.inner_auc == pytest.approx(best)
    # the refit is a standardised L2 regression at that C on every fit row
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=probe.C, max_iter=5000).fit(scaler.transform(x), y)
    assert probe.score(x[:7]) == pytest.approx(model.predict_proba(scaler.transform(x[:7]))[:, 1])


def test_signal_is_found_and_pure_noise_is_not():
    x, y = _data(400, 30, 2.0, 1)
    new_x, new_y = _data(300, 30, 2.0, 2)
    probe = fit_linear_probe(x, y, Cs=CS, folds=5, seed=0)
    assert probe.inner_auc > 0.85
    assert roc_auc_score(new_y, probe.score(new_x)) > 0.85  # Bayes 0.92, noise 0.5
    noise = fit_linear_probe(x[:, 1:], y, Cs=CS, folds=5, seed=0)  # the signal column removed
    assert noise.inner_auc < 0.6  # 400 patients: SD of a null inner AUC about 0.03
    assert roc_auc_score(new_y, noise.score(new_x[:, 1:])) < 0.6


@pytest.mark.parametrize('bad, message', [
    ('few', 'needs 5 patients of each class'),
    ('nan', 'NaN'),
    ('labels', '0 / 1'),
])
def test_bad_input_is_refused_with_a_reason(bad, message):
    x, y = _data(40, 3, 1.0, 0)
    if bad == 'few':
        y = np.zeros(40, int)
        y[:3] = 1
    elif bad == 'nan':
        x[0, 0] = np.nan
    else:
        y = y * 2
    with pytest.raises(ValueError, match=message):
        fit_linear_probe(x, y, Cs=CS)


def test_scoring_rows_of_another_width_is_refused():
    x, y = _data(60, 4, 1.0, 0)
    probe = fit_linear_probe(x, y, Cs=CS)
    with pytest.raises(ValueError, match='4 features'):
        probe.score(np.zeros((2, 5)))
