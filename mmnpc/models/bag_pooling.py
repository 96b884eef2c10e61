"""One patient's score from its samples (slices or lesion windows): the one rule.

Evaluation (:func:`mmnpc.evaluation.patient_table.patient_scores`) and
prediction (:mod:`mmnpc.inference.predict_patient`, the end-to-end evaluation)
both call :func:`pooled_score`, so a patient gets the same score both ways.

* **mean** (default, the paper's): the mean over the patient's slices of the
  mean over each slice's samples (every slice weighs the same whatever the
  number of lesions on it);
* **attention** (``MsomClassifier(bag_pooling='attention')``, attention-based
  multiple-instance learning, Ilse et al. 2018): each sample has a logit and an
  attention score ``a``; the patient's probability is
  ``sigmoid(sum_k softmax(a)_k * logit_k)`` over all its samples -- the pooling
  the model was trained with (a slice's weight is what its samples earn).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from scipy.special import expit, softmax


def pooled_score(scores: Sequence[float], slice_ids: Optional[Sequence] = None,
                 logits: Optional[Sequence[float]] = None,
                 attention: Optional[Sequence[float]] = None) -> float:
    """The patient's probability from its samples' ``scores`` (probabilities).

    Args:
        scores: per-sample probabilities (used by mean pooling).
        slice_ids: per-sample slice (samples of one slice are averaged first);
            None = every sample its own slice.
        logits, attention: per-sample logit and attention score; both given =
            attention pooling (module docstring).

    Raises:
        ValueError: no sample, lengths differ, non-finite values, or only one of
            ``logits`` / ``attention``.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        raise ValueError('a patient score needs at least one sample')
    if (logits is None) != (attention is None):
        raise ValueError('attention pooling needs both the logits and the attention scores')
    if attention is not None:
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        attention = np.asarray(attention, dtype=np.float64).reshape(-1)
        if not logits.size == attention.size == scores.size:
            raise ValueError(f'{scores.size} scores, {logits.size} logits, '
                             f'{attention.size} attention scores')
        if not (np.all(np.isfinite(logits)) and np.all(np.isfinite(attention))):
            raise ValueError('non-finite logits or attention scores')
        return float(expit(np.dot(softmax(attention), logits)))
    if not np.all(np.isfinite(scores)):
        raise ValueError('non-finite sample scores')
    if slice_ids is None:
        return float(scores.mean())
    slice_ids = list(slice_ids)
    if len(slice_ids) != scores.size:
        raise ValueError(f'{scores.size} scores but {len(slice_ids)} slice ids')
    by_slice: dict = {}
    for slice_id, score in zip(slice_ids, scores):
        by_slice.setdefault(slice_id, []).append(score)
    return float(np.mean([np.mean(v) for v in by_slice.values()]))


class SliceScores(dict):
    """slice index -> the slice's score (the mean of its samples' probabilities), with
    ``patient_score``: the patient's pooled score (by default the mean of the slices')."""

    def __init__(self, scores: Mapping[int, float], patient_score: Optional[float] = None) -> None:
        super().__init__(scores)
        self.patient_score = patient_score


def patient_score_of(slice_scores: Mapping[int, float]) -> float:
    """The patient's score from :func:`detect_and_score`'s slice scores: their pooled score
    when they carry one (attention pooling), else their mean."""
    pooled = getattr(slice_scores, 'patient_score', None)
    if pooled is not None:
        return float(pooled)
    if not slice_scores:
        raise ValueError('no slice scored')
    return float(np.mean(list(slice_scores.values())))


def unit_patient_score(slice_ids: Sequence, scored) -> float:
    """The patient's score from a scorer's output for its samples on ``slice_ids``: an
    array of probabilities (mean pooling) or (probabilities, logits, attention)."""
    if isinstance(scored, tuple):
        probs, logits, attention = scored
        return pooled_score(probs, slice_ids, logits, attention)
    return pooled_score(scored, slice_ids)
