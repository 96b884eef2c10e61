"""Turn the detector's test metrics into the project's ``metrics.json``.

Keys (box unless prefixed ``segm_``; values in [0, 1] or null):

* ``GTV_AP50``, ``GTVln_AP50``: AP at IoU 0.5 of each class;
* ``mAP50``: their mean over the classes with ground truth;
* ``segm_GTV_AP50``, ``segm_GTVln_AP50``, ``segm_mAP50``: the same for masks;
* ``bbox_mAP``, ``segm_mAP``: COCO AP over IoU 0.50:0.95;
* ``GTV_num_gt``, ``GTVln_num_gt``: ground-truth instances in the split;
* ``slice_scores``: per class and for ``any`` class, how the best detection
  score of each slice separates tumour from tumour-free slices (slice AUC,
  10/50/90% quantiles, share marked at ``slice_score_thr``, the Youden
  threshold ``youden_thr`` with the shares marked at it;
  :mod:`mmnpc.evaluation.slice_scores`);
* ``notes``: why a value is null.

null means undefined -- a class without ground truth in the split has no AP --
never "0" or "failed".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..utils.json_io import json_number, write_json
from .slice_scores import ANY, STATS


_defined = json_number  # NaN / missing -> None


def detection_summary(metrics: Mapping[str, Any], classes: Sequence[str],
                      prefix: str = 'coco') -> dict:
    """Project summary of a :class:`~mmnpc.evaluation.CocoAP50Metric` result dict.

    Args:
        metrics: what ``Runner.test()`` returned, e.g. ``{'coco/bbox_GTV_AP50': 0.8, ...}``.
        classes: class names in label order, e.g. ``('GTV', 'GTVln')``.
        prefix: the metric's prefix in the keys.

    Raises:
        KeyError: ``metrics`` lacks the per-class box AP50 of some class (the
            test evaluator was not CocoAP50Metric with metric 'bbox').
    """
    def get(name: str) -> Any:
        return metrics.get(f'{prefix}/{name}')

    missing = [f'{prefix}/bbox_{name}_AP50' for name in classes
               if f'{prefix}/bbox_{name}_AP50' not in metrics]
    if missing:
        raise KeyError(f'test metrics lack {missing}; use CocoAP50Metric as test_evaluator')
    summary: dict = {}
    notes = []
    for name in classes:
        summary[f'{name}_AP50'] = _defined(get(f'bbox_{name}_AP50'))
        num_gt = get(f'bbox_{name}_num_gt')
        summary[f'{name}_num_gt'] = None if num_gt is None else int(num_gt)
        if num_gt == 0:
            notes.append(f'{name}: no ground truth in this split, so its AP is undefined '
                         '(null) and the means average the other classes')
    summary['mAP50'] = _defined(get('bbox_mAP_50'))
    summary['bbox_mAP'] = _defined(get('bbox_mAP'))
    if get('segm_mAP_50') is not None:
        for name in classes:
            summary[f'segm_{name}_AP50'] = _defined(get(f'segm_{name}_AP50'))
        summary['segm_mAP50'] = _defined(get('segm_mAP_50'))
        summary['segm_mAP'] = _defined(get('segm_mAP'))
    if get('slice_score_thr') is not None:
        summary['slice_score_thr'] = float(get('slice_score_thr'))
        summary['slice_scores'] = {
            name: {stat: _defined(get(f'slice_{name}_{stat}')) for stat in STATS}
            for name in (*classes, ANY)}
        for name, stats in summary['slice_scores'].items():
            for count in ('n_pos', 'n_neg'):
                stats[count] = None if stats[count] is None else int(stats[count])
            if not stats['n_pos'] or not stats['n_neg']:
                missing = 'tumour' if not stats['n_pos'] else 'tumour-free'
                notes.append(f'slice_scores {name}: no {missing} slice in this split, so its '
                             'slice AUC is undefined (null)')
    if summary['mAP50'] is None:
        notes.append('no class has ground truth in this split: mAP50 is undefined (null)')
    summary['notes'] = notes
    return summary


def write_metrics_json(summary: Mapping[str, Any], path: Path) -> None:
    """Write ``summary`` as indented JSON (an undefined figure as null; mmnpc.utils.json_io)."""
    write_json(path, summary)
