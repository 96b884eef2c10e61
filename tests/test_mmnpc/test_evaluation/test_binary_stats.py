"""AUC + DeLong CI, Youden / median cut-offs and confusion stats against independent references."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, confusion_matrix, precision_score, recall_score,
                             roc_auc_score)

from mmnpc.evaluation import (binary_classification_report, delong_auc_ci, median_cutoff,
                              youden_cutoff)

# hand-made: 5 positives, 5 negatives, one tie across the classes (0.6)
SCORES = np.array([0.9, 0.8, 0.6, 0.55, 0.3, 0.7, 0.6, 0.4, 0.2, 0.1])
LABELS = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])

# Hanley & McNeil (1982, Radiology 143:29, Table 1): CT ratings 1..5 of 58 normal
# and 51 abnormal patients; published area under the ROC curve 0.893.
HM_NORMAL_COUNTS = (33, 6, 6, 11, 2)
HM_ABNORMAL_COUNTS = (3, 2, 2, 11, 33)


def _hanley_mcneil():
    ratings = np.arange(1, 6)
    scores = np.concatenate([np.repeat(ratings, HM_NORMAL_COUNTS),
                             np.repeat(ratings, HM_ABNORMAL_COUNTS)]).astype(float)
    labels = np.r_[np.zeros(sum(HM_NORMAL_COUNTS)), np.ones(sum(HM_ABNORMAL_COUNTS))]
    return scores, labels.astype(int)


def _delong_by_definition(scores, labels):
    """AUC and DeLong's variance from the m x n comparison matrix (DeLong et al. 1988)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return auc, v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


def test_auc_matches_sklearn_and_hanley_mcneil():
    assert delong_auc_ci(SCORES, LABELS).auc == pytest.approx(roc_auc_score(LABELS, SCORES))
    scores, labels = _hanley_mcneil()
    interval = delong_auc_ci(scores, labels)
    assert interval.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert round(interval.auc, 3) == 0.893


@pytest.mark.parametrize('seed', [0, 1])
def test_fast_delong_equals_its_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(80) < 0.35).astype(int)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding makes many ties
    interval = delong_auc_ci(scores, labels)
    auc, variance = _delong_by_definition(scores, labels)
    assert interval.auc == pytest.approx(auc, abs=1e-12)
    assert interval.se == pytest.approx(math.sqrt(variance), rel=1e-10)
    half_width = 1.959963984540054 * interval.se
    assert interval.ci_low == pytest.approx(max(0, auc - half_width))
    assert interval.ci_high == pytest.approx(min(1, auc + half_width))


def test_delong_se_agrees_with_a_stratified_bootstrap():
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(40, int), np.zeros(60, int)]
    scores = rng.normal(labels * 1.0, 1.0)
    interval = delong_auc_ci(scores, labels)
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    # resample positives and negatives separately (pROC's stratified bootstrap)
    aucs = np.array([psi[np.ix_(rng.integers(0, pos.size, pos.size),
                                rng.integers(0, neg.size, neg.size))].mean()
                     for _ in range(2000)])
    assert interval.se == pytest.approx(aucs.std(ddof=1), rel=0.1)
    low, high = np.percentile(aucs, [2.5, 97.5])
    assert interval.ci_low == pytest.approx(low, abs=0.02)
    assert interval.ci_high == pytest.approx(high, abs=0.02)


def test_ci_covers_the_auc_and_lies_in_unit_interval():
    for scores, labels in [(SCORES, LABELS), _hanley_mcneil()]:
        interval = delong_auc_ci(scores, labels)
        assert 0 <= interval.ci_low <= interval.auc <= interval.ci_high <= 1
        assert interval.ci_low < interval.ci_high
    nearly_perfect = delong_auc_ci([0.9, 0.8, 0.75, 0.7, 0.2, 0.1, 0.72], [1, 1, 1, 1, 0, 0, 0])
    assert nearly_perfect.ci_high == 1.0 and nearly_perfect.ci_low < nearly_perfect.auc


def test_one_class_gives_nan_not_an_error():
    interval = delong_auc_ci([0.2, 0.4, 0.9], [1, 1, 1])
    assert all(math.isnan(value) for value in interval[:4])
    single_negative = delong_auc_ci([0.2, 0.4, 0.9], [1, 0, 1])
    assert single_negative.auc == 0.5 and math.isnan(single_negative.ci_low)


def test_youden_cutoff_maximises_j_and_reproduces_the_roc_point():
    cutoff = youden_cutoff(SCORES, LABELS)
    # by hand: thresholds 0.8 (TPR 0.4, FPR 0), 0.55 (TPR 0.8, FPR 0.4) and 0.3 (TPR 1, FPR 0.6)
    # all give the largest J = 0.4; the highest threshold wins
    assert cutoff == 0.8
    stats = binary_classification_report(SCORES, LABELS, cutoff)
    assert stats['recall'] - (1 - stats['specificity']) == pytest.approx(0.4)


def test_youden_needs_both_classes():
    with pytest.raises(ValueError, match='positive and negative'):
        youden_cutoff([0.1, 0.2], [0, 0])


def test_report_matches_sklearn_on_hand_made_example():
    cutoff = 0.6
    predicted = (SCORES >= cutoff).astype(int)
    stats = binary_classification_report(SCORES, LABELS, cutoff)
    tn, fp, fn, tp = confusion_matrix(LABELS, predicted).ravel()
    assert (stats['tp'], stats['fp'], stats['tn'], stats['fn']) == (tp, fp, tn, fn) == (3, 2, 3, 2)
    assert stats['precision'] == pytest.approx(precision_score(LABELS, predicted))
    assert stats['recall'] == pytest.approx(recall_score(LABELS, predicted))
    assert stats['specificity'] == pytest.approx(recall_score(LABELS, predicted, pos_label=0))
    assert stats['accuracy'] == pytest.approx(accuracy_score(LABELS, predicted))


def test_undefined_rates_are_nan_not_zero():
    stats = binary_classification_report([0.1, 0.2], [1, 0], cutoff=0.5)  # nobody called positive
    assert math.isnan(stats['precision']) and stats['recall'] == 0 and stats['specificity'] == 1
    with pytest.raises(ValueError, match='finite'):
        binary_classification_report([0.1], [1], cutoff=math.nan)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match='0 or 1'):
        delong_auc_ci([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match='labels'):
        delong_auc_ci([0.1, 0.2], [0])
    with pytest.raises(ValueError, match='finite'):
        delong_auc_ci([0.1, math.nan], [0, 1])


def test_median_cutoff():
    assert median_cutoff([0.1, 0.9, 0.4]) == 0.4
    assert math.isnan(median_cutoff([]))
