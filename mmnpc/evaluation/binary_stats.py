"""Binary-classifier statistics on patient scores: AUC with DeLong's CI, cut-offs, confusion stats.

Pure functions on 1-D arrays (``scores``: N floats, higher = more likely
positive; ``labels``: N ints, 1 = positive (MSOM), 0 = negative), shared by the
``PatientAUCMetric``, the ROC plot and the prediction / survival tools, plus
DeLong's paired test of two models' AUCs on the same patients.

A sample is called positive when ``score >= cutoff`` -- the rule of
:func:`sklearn.metrics.roc_curve`, so a cut-off taken from that curve gives the
operating point the curve shows.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_curve

J_TIE_TOLERANCE = 1e-9  # Youden's J values closer than this count as equal
AUC_CI_METHOD = 'DeLong (fast algorithm of Sun & Xu 2014), normal approximation clipped to [0, 1]'


class AUCInterval(NamedTuple):
    """ROC AUC with its DeLong standard error and confidence interval (NaN when undefined)."""

    auc: float
    ci_low: float
    ci_high: float
    se: float
    level: float


class PairedAUCTest(NamedTuple):
    """DeLong's test of two correlated AUCs (same patients, two scores); NaN when undefined.

    ``difference`` = ``auc_a - auc_b``; ``se``, ``ci_low`` / ``ci_high`` (its
    ``level`` interval) and ``z`` = difference / se refer to it; ``p_value``
    is two-sided.
    """

    auc_a: float
    auc_b: float
    difference: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    level: float


def as_binary_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` as float64 and ``labels`` as int64 1-D arrays, validated.

    Raises:
        ValueError: different lengths, a label other than 0/1, or a score that
            is NaN or infinite.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels_in = np.asarray(labels).reshape(-1)
    if scores.shape != labels_in.shape:
        raise ValueError(f'{scores.size} scores but {labels_in.size} labels')
    if labels_in.size and not np.isin(labels_in, (0, 1)).all():
        raise ValueError(f'labels must be 0 or 1, got {sorted(set(labels_in.tolist()))}')
    if not np.isfinite(scores).all():
        raise ValueError('scores must be finite; got NaN or infinity')
    return scores, labels_in.astype(np.int64)


def has_both_classes(labels) -> bool:
    """True when ``labels`` holds at least one 0 and one 1 (AUC and Youden are defined)."""
    labels = np.asarray(labels).reshape(-1)
    return bool((labels == 1).any() and (labels == 0).any())


def delong_auc_ci(scores, labels, level: float = 0.95) -> AUCInterval:
    """ROC AUC and its ``level`` confidence interval by DeLong's method.

    DeLong, DeLong & Clarke-Pearson (1988) estimate the variance of the
    Mann-Whitney AUC from its structural components (each positive's fraction
    of negatives scored below it, each negative's fraction of positives scored
    above it, ties counting 1/2); Sun & Xu (2014) compute them from midranks in
    O(N log N). The interval is AUC +- z * SE, clipped to [0, 1] (as pROC's
    ``ci.auc(method='delong')``).

    Returns:
        All fields NaN when one class is absent (AUC undefined); the interval
        NaN when a class has a single sample (its variance term is undefined).
        A perfectly separating score has SE 0 and the interval [1, 1].
    """
    _check_level(level)
    scores, labels = as_binary_arrays(scores, labels)
    m, n = int(labels.sum()), int(labels.size - labels.sum())
    if m == 0 or n == 0:
        return AUCInterval(math.nan, math.nan, math.nan, math.nan, level)
    auc, pos_components, neg_components = _structural_components(scores, labels == 1)
    if m < 2 or n < 2:
        return AUCInterval(auc, math.nan, math.nan, math.nan, level)
    variance = pos_components.var(ddof=1) / m + neg_components.var(ddof=1) / n
    se = float(math.sqrt(variance))
    half_width = _z_critical(level) * se
    return AUCInterval(auc, max(0.0, auc - half_width), min(1.0, auc + half_width), se, level)


def delong_paired_test(scores_a, scores_b, labels, level: float = 0.95) -> PairedAUCTest:
    """DeLong's test that two scores of the same patients have equal ROC AUCs.

    DeLong, DeLong & Clarke-Pearson (1988): the two AUCs are correlated
    because they share the patients, so the variance of their difference is
    ``[1, -1] S [1, -1]^T`` with ``S = S10 / m + S01 / n``, where ``S10``
    (2 x 2) is the sample covariance (ddof 1) of the m positives' structural
    components under score a and score b and ``S01`` that of the n negatives'
    -- the components :func:`delong_auc_ci` uses, ties counting 1/2. As
    ``[1, -1] S10 [1, -1]^T`` is the variance of the component differences,
    it is computed that way (never negative). ``z`` = difference / SE is
    referred to the standard normal: ``p_value`` = 2 * (1 - Phi(|z|)); the
    interval is difference +- z_(level) * SE, not clipped (as pROC's
    ``roc.test(method='delong', paired=TRUE)``).

    Args:
        scores_a, scores_b: N scores of the same N patients, in the same order
            (e.g. the fusion model's and the clinical baseline's).
        labels: N labels, 0/1.
        level: confidence level of the interval of the difference.

    Returns:
        :class:`PairedAUCTest`. All fields but ``level`` NaN when one class is
        absent (no AUC); the AUCs and their difference but no SE, interval,
        ``z`` or p when a class has a single patient (its covariance is
        undefined). SE 0 (the component differences are constant, e.g.
        identical or identically ranked scores): a zero difference gives
        ``z`` 0 and ``p_value`` 1.0, a nonzero one ``z`` = +-inf and
        ``p_value`` 0.0; the interval is then [difference, difference].

    Raises:
        ValueError: ``scores_a`` and ``scores_b`` differ in length, bad
            scores or labels (see :func:`as_binary_arrays`), ``level``
            outside (0, 1).
    """
    _check_level(level)
    scores_a = np.asarray(scores_a, dtype=np.float64).reshape(-1)
    scores_b = np.asarray(scores_b, dtype=np.float64).reshape(-1)
    if scores_a.size != scores_b.size:
        raise ValueError(f'scores_a has {scores_a.size} values but scores_b {scores_b.size}: '
                         'a paired test needs both scores of every patient')
    scores_a, labels = as_binary_arrays(scores_a, labels)
    scores_b, _ = as_binary_arrays(scores_b, labels)
    m, n = int(labels.sum()), int(labels.size - labels.sum())
    if m == 0 or n == 0:
        return PairedAUCTest(*(math.nan,) * 8, level)
    auc_a, pos_a, neg_a = _structural_components(scores_a, labels == 1)
    auc_b, pos_b, neg_b = _structural_components(scores_b, labels == 1)
    difference = auc_a - auc_b
    if m < 2 or n < 2:
        return PairedAUCTest(auc_a, auc_b, difference, *(math.nan,) * 5, level)
    variance = (pos_a - pos_b).var(ddof=1) / m + (neg_a - neg_b).var(ddof=1) / n
    se = float(math.sqrt(variance))
    if se == 0:
        z = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        p_value = 1.0 if difference == 0 else 0.0
    else:
        z = difference / se
        p_value = float(2 * norm.sf(abs(z)))
    half_width = _z_critical(level) * se
    return PairedAUCTest(auc_a, auc_b, difference, se, difference - half_width,
                         difference + half_width, z, p_value, level)


def _structural_components(scores: np.ndarray,
                           positive: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(AUC, positives' components (m,), negatives' components (n,)) of DeLong et al. (1988).

    A positive's component is the fraction of negatives scored below it, a
    negative's the fraction of positives scored above it (ties count 1/2);
    each set averages to the Mann-Whitney AUC. Computed from midranks within
    each class and pooled (Sun & Xu 2014), O(N log N) instead of the m x n
    comparison matrix. Components keep the order of ``scores[positive]`` and
    ``scores[~positive]``, so two scores of the same patients stay paired.
    Needs at least one sample of each class.
    """
    positives, negatives = scores[positive], scores[~positive]
    m, n = positives.size, negatives.size
    rank_pos = rankdata(positives)  # midranks within each class ...
    rank_neg = rankdata(negatives)
    rank_all = rankdata(np.concatenate([positives, negatives]))  # ... and pooled
    auc = float((rank_all[:m].sum() / m - (m + 1) / 2) / n)
    pos_components = (rank_all[:m] - rank_pos) / n  # P(negative < this positive)
    neg_components = 1 - (rank_all[m:] - rank_neg) / m  # P(positive > this negative)
    return auc, pos_components, neg_components


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f'level must be in (0, 1), got {level}')


def _z_critical(level: float) -> float:
    """The standard normal quantile of a two-sided ``level`` interval (1.96 for 0.95)."""
    return float(norm.ppf(0.5 + level / 2))


def youden_cutoff(scores, labels) -> float:
    """The ROC-optimal cut-off: the score threshold maximising Youden's J = TPR - FPR.

    Thresholds are :func:`sklearn.metrics.roc_curve`'s (the distinct scores),
    so the cut-off is a score of the given samples and ``score >= cutoff``
    reproduces the chosen point. Among equal J the highest threshold wins
    (fewer samples called positive).

    Raises:
        ValueError: ``labels`` lacks one of the classes (no ROC curve).
    """
    scores, labels = as_binary_arrays(scores, labels)
    if not has_both_classes(labels):
        raise ValueError('Youden cut-off needs positive and negative samples; '
                         f'got {int(labels.sum())} positive of {labels.size}')
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    youden_j = (tpr - fpr)[1:]  # thresholds[0] is +inf (nobody positive): not a cut-off
    # ties up to rounding (J is a difference of fractions): the first = highest threshold
    best = 1 + int(np.flatnonzero(youden_j >= youden_j.max() - J_TIE_TOLERANCE)[0])
    return float(thresholds[best])


def median_cutoff(scores) -> float:
    """The median score (the paper's alternative cut-off); NaN for no scores."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    return float(np.median(scores)) if scores.size else math.nan


def binary_classification_report(scores, labels, cutoff: float) -> dict:
    """Confusion counts and rates of calling ``score >= cutoff`` positive.

    Returns:
        dict with ``cutoff``, ``n``, ``n_positive``, ``tp``, ``fp``, ``tn``,
        ``fn`` (ints) and ``precision`` = TP/(TP+FP), ``recall`` (sensitivity)
        = TP/(TP+FN), ``specificity`` = TN/(TN+FP), ``accuracy`` =
        (TP+TN)/N (floats). A rate whose denominator is 0 is NaN, never 0.

    Raises:
        ValueError: ``cutoff`` is NaN or infinite, or bad scores/labels.
    """
    if not math.isfinite(cutoff):
        raise ValueError(f'cutoff must be a finite score, got {cutoff}')
    scores, labels = as_binary_arrays(scores, labels)
    called = scores >= cutoff
    positive = labels == 1
    tp = int(np.sum(called & positive))
    fp = int(np.sum(called & ~positive))
    tn = int(np.sum(~called & ~positive))
    fn = int(np.sum(~called & positive))
    return {
        'cutoff': float(cutoff), 'n': int(labels.size), 'n_positive': int(positive.sum()),
        'tp': tp, 'fp': fp, 'tn': tn, 'fn': fn,
        'precision': _ratio(tp, tp + fp), 'recall': _ratio(tp, tp + fn),
        'specificity': _ratio(tn, tn + fp), 'accuracy': _ratio(tp + tn, labels.size)}


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan
