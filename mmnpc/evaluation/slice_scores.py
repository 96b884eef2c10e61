"""How confidently the detector tells tumour slices from tumour-free ones.

AP@0.5 says whether the boxes are right; it does not say whether a score
threshold separates the slices a user's patient has tumour on from the rest,
which is what prediction relies on (``tools/predict.py`` marks a slice when a
GTV or GTVln detection scores at least its slice threshold, ``det_score_thr``:
0.5 by default, or fitted as ``youden_thr`` below). Per class, and
for "any" class (the prediction rule), every slice of the split gets the
highest score of its detections of that class (0 when it has none), and the
slices with ground truth of the class are compared with the others:

* ``auc``: the probability that a tumour slice outscores a tumour-free one
  (ROC AUC of the slice maxima, ties counting one half -- every slice without
  a detection scores 0; NaN when either group is empty),
* ``pos_q10`` / ``pos_q50`` / ``pos_q90`` and ``neg_...``: quantiles of the maxima
  on tumour and tumour-free slices,
* ``pos_marked`` / ``neg_marked``: the share of each group at or above the
  threshold (slice recall, and the share of tumour-free slices marked),
* ``n_pos`` / ``n_neg``: the slices in each group,
* ``youden_thr``: the score threshold these slices would choose themselves
  (Youden's J on the slice maxima, :func:`mmnpc.evaluation.youden_cutoff`), with
  ``youden_pos_marked`` / ``youden_neg_marked`` at it (NaN when either group is
  empty, or when no threshold does better than chance, J <= 0: e.g. a detector
  that detects nothing, whose every slice scores 0). Fit on validation
  patients' slices, it is the slice threshold to deploy
  (``--det-score-thr DET_VAL/metrics.json`` of tools/predict.py and
  tools/test_end_to_end.py, see :mod:`mmnpc.inference.det_threshold`); on the
  test split it only describes that split.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from .binary_stats import youden_cutoff

STATS = ('auc', 'n_pos', 'n_neg', 'pos_q10', 'pos_q50', 'pos_q90', 'neg_q10', 'neg_q50',
         'neg_q90', 'pos_marked', 'neg_marked', 'youden_thr', 'youden_pos_marked',
         'youden_neg_marked')
ANY = 'any'


def slice_score_stats(image_ids: Sequence[int], annotations: Iterable[Mapping],
                      predictions: Iterable[Mapping], categories: Mapping[int, str],
                      threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """{class name or 'any': {stat: value}} over the slices ``image_ids``.

    Args:
        image_ids: the evaluated slices (COCO image ids).
        annotations: ground truth, COCO dicts with ``image_id``, ``category_id``
            (crowd annotations are ignored).
        predictions: detections, COCO result dicts with ``image_id``,
            ``category_id`` and ``score``.
        categories: category id -> class name, for the classes to report.
        threshold: the score that marks a slice.
    """
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    columns = {cat_id: k for k, cat_id in enumerate(categories)}
    truth = np.zeros((len(index), len(columns)), dtype=bool)
    best = np.zeros((len(index), len(columns)))
    for ann in annotations:
        if ann['image_id'] in index and ann['category_id'] in columns and not ann.get('iscrowd'):
            truth[index[ann['image_id']], columns[ann['category_id']]] = True
    for det in predictions:
        if det['image_id'] in index and det['category_id'] in columns:
            row, col = index[det['image_id']], columns[det['category_id']]
            best[row, col] = max(best[row, col], float(det['score']))
    out = {name: _stats(truth[:, columns[cat_id]], best[:, columns[cat_id]], threshold)
           for cat_id, name in categories.items()}
    out[ANY] = _stats(truth.any(axis=1), best.max(axis=1, initial=0.0), threshold)
    return out


def _stats(positive: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    pos, neg = score[positive], score[~positive]

    def quantile(values: np.ndarray, q: float) -> float:
        return float(np.quantile(values, q)) if values.size else float('nan')

    def share(values: np.ndarray, thr: float = threshold) -> float:
        return float(np.mean(values >= thr)) if values.size else float('nan')

    both = bool(pos.size and neg.size)
    auc = float(roc_auc_score(positive, score)) if both else float('nan')
    youden = youden_cutoff(score, positive) if both else float('nan')
    if both and share(pos, youden) - share(neg, youden) <= 0:
        youden = float('nan')  # no threshold beats chance, e.g. nothing detected anywhere
    return {'auc': auc, 'n_pos': float(pos.size), 'n_neg': float(neg.size),
            'pos_q10': quantile(pos, 0.1), 'pos_q50': quantile(pos, 0.5),
            'pos_q90': quantile(pos, 0.9), 'neg_q10': quantile(neg, 0.1),
            'neg_q50': quantile(neg, 0.5), 'neg_q90': quantile(neg, 0.9),
            'pos_marked': share(pos), 'neg_marked': share(neg), 'youden_thr': youden,
            'youden_pos_marked': youden if np.isnan(youden) else share(pos, youden),
            'youden_neg_marked': youden if np.isnan(youden) else share(neg, youden)}
