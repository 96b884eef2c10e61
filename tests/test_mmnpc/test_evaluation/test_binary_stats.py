"""AUC + DeLong CI, Youden / median cut-offs and confusion stats against independent references."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, confusion_matrix, precision_score, recall_score,
                             roc_auc_score)

from mmnpc.evaluation import (binary_classification_report, delong_auc_ci, delong_paired_test,
                              median_cutoff, youden_cutoff)

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


# --- DeLong's paired test ----------------------------------------------------------------------

def _paired_delong_by_definition(scores_a, scores_b, labels):
    """(difference, its variance) from the m x n kernels, the 2 x 2 covariance and [1, -1].

    DeLong, DeLong & Clarke-Pearson (1988), eqs. for theta_hat, V10, V01, S10,
    S01 and S = S10 / m + S01 / n; written from the definition, not from the
    midrank algorithm the implementation uses.
    """
    positive = labels == 1
    m, n = int(positive.sum()), int((~positive).sum())
    v10, v01, aucs = [], [], []
    for scores in (scores_a, scores_b):
        pos, neg = scores[positive], scores[~positive]
        psi = np.zeros((m, n))
        for i in range(m):
            for j in range(n):
                psi[i, j] = 1.0 if pos[i] > neg[j] else 0.5 if pos[i] == neg[j] else 0.0
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    s10 = np.cov(np.vstack(v10))  # 2 x 2, ddof 1
    s01 = np.cov(np.vstack(v01))
    contrast = np.array([1.0, -1.0])
    return aucs[0] - aucs[1], float(contrast @ (s10 / m + s01 / n) @ contrast)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_paired_delong_equals_its_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(70) < 0.4).astype(int)
    latent = rng.normal(labels * 0.7, 1.0)
    scores_a = np.round(latent + rng.normal(0, 0.5, labels.size), 1)  # correlated, many ties
    scores_b = np.round(latent + rng.normal(0, 1.0, labels.size), 1)
    test = delong_paired_test(scores_a, scores_b, labels)
    difference, variance = _paired_delong_by_definition(scores_a, scores_b, labels)
    assert test.auc_a == pytest.approx(roc_auc_score(labels, scores_a), abs=1e-12)
    assert test.auc_b == pytest.approx(roc_auc_score(labels, scores_b), abs=1e-12)
    assert test.difference == pytest.approx(difference, abs=1e-12)
    assert test.se == pytest.approx(math.sqrt(variance), rel=1e-10)
    assert test.z == pytest.approx(difference / math.sqrt(variance), rel=1e-10)
    z = abs(difference) / math.sqrt(variance)
    assert test.p_value == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)
    half_width = 1.959963984540054 * test.se
    assert (test.ci_low, test.ci_high) == pytest.approx((difference - half_width,
                                                         difference + half_width))
    # the single-curve SE is the same machinery
    assert delong_auc_ci(scores_a, labels).auc == test.auc_a


# pROC (xrobin/pROC) on its aSAH data (113 patients: 41 'Poor' outcome = cases, 72 'Good' =
# controls). tests/testthat/helper-deLongPlacementsCpp-expected.R lists DeLong's placements
# of every case (X) and control (Y), in data order, for the markers wfns, s100b and ndka;
# stored here as integers: case X * 2 * 72 and control Y * 2 * 41 (2 * comparisons won +
# ties). tests/testthat/test-roc.test.R gives roc.test(r.wfns, r.s100b) etc. (DeLong,
# paired, two-sided, conf.level 0.95); its Z, p and CI are asserted below.
WFNS_CASES = (
    117, 94, 128, 140, 140, 140, 140, 94, 140, 94, 37, 94, 140, 128, 128, 94, 140, 140, 140, 94,
    140, 94, 140, 94, 128, 140, 128, 128, 37, 128, 128, 94, 94, 140, 140, 94, 94, 140, 140, 140,
    140
)
WFNS_CONTROLS = (
    80, 80, 80, 80, 18, 80, 66, 66, 80, 66, 66, 80, 80, 80, 66, 80, 66, 80, 80, 53, 44, 80, 44,
    80, 18, 18, 80, 80, 66, 44, 80, 80, 66, 66, 80, 66, 80, 66, 66, 80, 80, 80, 80, 66, 80, 66,
    80, 80, 53, 66, 44, 66, 80, 44, 80, 80, 18, 44, 66, 66, 80, 80, 80, 53, 80, 66, 66, 44, 44,
    80, 80, 80
)
S100B_CASES = (
    81, 63, 103, 78, 130, 144, 140, 26, 123, 50, 26, 128, 126, 139, 144, 118, 144, 144, 144, 26,
    144, 120, 0, 50, 116, 144, 118, 144, 38, 118, 81, 63, 74, 116, 144, 88, 144, 121, 144, 144,
    130
)
S100B_CONTROLS = (
    58, 55, 66, 80, 28, 52, 66, 66, 80, 73, 80, 70, 63, 77, 52, 77, 63, 58, 52, 80, 53, 55, 36,
    70, 24, 28, 53, 77, 32, 28, 63, 73, 70, 73, 80, 58, 66, 55, 54, 80, 80, 70, 80, 70, 73, 53,
    70, 73, 37, 63, 42, 77, 66, 39, 77, 80, 48, 34, 66, 54, 73, 55, 66, 77, 80, 52, 54, 28, 52,
    54, 24, 27
)
NDKA_CASES = (
    116, 90, 98, 110, 6, 40, 74, 134, 140, 134, 134, 58, 104, 124, 24, 36, 102, 2, 144, 124, 62,
    74, 80, 102, 128, 93, 124, 36, 142, 109, 6, 49, 124, 6, 48, 134, 76, 104, 138, 74, 110
)
NDKA_CONTROLS = (
    82, 68, 72, 58, 74, 33, 74, 26, 42, 26, 28, 6, 66, 74, 48, 74, 74, 2, 46, 62, 62, 26, 80, 72,
    74, 63, 44, 72, 34, 8, 72, 74, 48, 66, 72, 44, 16, 18, 60, 50, 4, 74, 28, 62, 58, 58, 34, 80,
    28, 48, 66, 58, 26, 58, 50, 72, 62, 58, 16, 68, 48, 45, 8, 52, 48, 66, 16, 60, 38, 18, 74, 42
)


def _scores_with_placements(case_halves, control_halves) -> np.ndarray:
    """Scores (cases first) whose DeLong placements are the given ones.

    DeLong's statistic depends on the data only through the placements, so
    any scores reproducing them reproduce pROC's test. A case scores its own
    placement; a control sits just below the cases that beat it and level
    with those it ties (unique: an even count is 'between groups', an odd one
    'tied with a group').
    """
    cases = np.asarray(case_halves, dtype=float)
    groups = np.unique(cases)[::-1]  # distinct case scores, highest first
    sizes = np.array([(cases == g).sum() for g in groups])
    above = np.r_[0, np.cumsum(sizes)]  # cases strictly above group k: above[k]
    controls = []
    for half in control_halves:
        tied = np.flatnonzero(2 * above[:-1] + sizes == half)
        if tied.size:
            controls.append(groups[tied[0]])
            continue
        k = int(np.flatnonzero(2 * above == half)[0])  # cases above it, none tied
        upper = groups[k - 1] if k > 0 else groups[0] + 2
        lower = groups[k] if k < groups.size else groups[-1] - 2
        controls.append((upper + lower) / 2)
    return np.r_[cases, controls]


def _asah(marker_cases, marker_controls):
    scores = _scores_with_placements(marker_cases, marker_controls)
    labels = np.r_[np.ones(len(marker_cases), int), np.zeros(len(marker_controls), int)]
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert np.array_equal(psi.sum(axis=1) * 2, marker_cases)  # placements reproduced
    assert np.array_equal((psi.sum(axis=0) * 2), marker_controls)
    return scores, labels


@pytest.mark.parametrize('a, b, z, p_value, ci', [
    ('wfns', 's100b', 2.20898359144091, 0.0271757822291882,
     (0.0104061769564846, 0.174214419249478)),
    ('wfns', 'ndka', 2.79777591868904, 0.00514557970691098,
     (0.0634011709339876, 0.3600405634833566)),
    ('ndka', 's100b', -1.39077002573558, 0.164295175223054,
     (-0.2876917446341914, 0.0488706064228094)),
])
def test_paired_delong_matches_proc_roc_test_on_asah(a, b, z, p_value, ci):
    markers = {'wfns': (WFNS_CASES, WFNS_CONTROLS), 's100b': (S100B_CASES, S100B_CONTROLS),
               'ndka': (NDKA_CASES, NDKA_CONTROLS)}
    scores_a, labels = _asah(*markers[a])
    scores_b, _ = _asah(*markers[b])
    test = delong_paired_test(scores_a, scores_b, labels)
    assert test.z == pytest.approx(z, rel=1e-9)
    assert test.p_value == pytest.approx(p_value, rel=1e-9)
    assert (test.ci_low, test.ci_high) == pytest.approx(ci, rel=1e-9)
    # pROC's AUCs of these markers (theta in the placements file)
    thetas = {'wfns': 0.823678861788618, 's100b': 0.731368563685637, 'ndka': 0.611957994579946}
    assert (test.auc_a, test.auc_b) == pytest.approx((thetas[a], thetas[b]), abs=1e-12)


def test_paired_delong_identical_scores_give_no_difference():
    rng = np.random.default_rng(4)
    labels = np.r_[np.ones(10, int), np.zeros(15, int)]
    scores = rng.normal(labels, 1.0)
    test = delong_paired_test(scores, scores, labels)
    assert test.difference == 0 and test.se == 0 and test.z == 0 and test.p_value == 1.0
    assert test.ci_low == test.ci_high == 0
    ranked_alike = delong_paired_test(scores, 3 * scores + 1, labels)  # same ROC curve
    assert ranked_alike.difference == 0 and ranked_alike.p_value == 1.0


def test_paired_delong_swapping_the_scores_flips_z_and_keeps_p():
    rng = np.random.default_rng(5)
    labels = (rng.random(60) < 0.5).astype(int)
    scores_a, scores_b = rng.normal(labels, 1.0), rng.normal(0.5 * labels, 1.0)
    forward = delong_paired_test(scores_a, scores_b, labels)
    backward = delong_paired_test(scores_b, scores_a, labels)
    assert backward.z == pytest.approx(-forward.z) and backward.p_value == pytest.approx(
        forward.p_value)
    assert backward.difference == pytest.approx(-forward.difference)
    assert (backward.ci_low, backward.ci_high) == pytest.approx((-forward.ci_high,
                                                                 -forward.ci_low))


def test_paired_delong_undefined_cases_are_nan_or_stated():
    one_class = delong_paired_test([0.1, 0.5, 0.9], [0.3, 0.2, 0.1], [1, 1, 1])
    assert all(math.isnan(value) for value in one_class[:8]) and one_class.level == 0.95
    single_negative = delong_paired_test([0.9, 0.8, 0.1], [0.2, 0.8, 0.5], [1, 1, 0])
    assert single_negative.auc_a == 1.0 and single_negative.auc_b == 0.5
    assert single_negative.difference == 0.5
    assert all(math.isnan(value) for value in single_negative[3:8])
    # SE 0 with a real difference: constant component differences (perfect vs uninformative)
    perfect_vs_flat = delong_paired_test([0.9, 0.8, 0.2, 0.1], [0.5, 0.5, 0.5, 0.5], [1, 1, 0, 0])
    assert perfect_vs_flat.difference == 0.5 and perfect_vs_flat.se == 0
    assert perfect_vs_flat.z == math.inf and perfect_vs_flat.p_value == 0.0
    assert perfect_vs_flat.ci_low == perfect_vs_flat.ci_high == 0.5


def test_paired_delong_refuses_bad_input():
    with pytest.raises(ValueError, match='scores_b'):
        delong_paired_test([0.1, 0.2, 0.3], [0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match='labels'):
        delong_paired_test([0.1, 0.2], [0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match='level'):
        delong_paired_test([0.1, 0.2], [0.1, 0.2], [0, 1], level=1.5)
