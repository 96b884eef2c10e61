"""COCO box / mask AP with AP@0.5 of every class (GTV, GTVln) as results."""
from __future__ import annotations

import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Dict, List, Sequence, Union

import numpy as np
from mmengine.fileio import load
from mmengine.logging import MMLogger
from terminaltables import AsciiTable

from mmdet.datasets.api_wrappers import COCOeval, COCOevalMP
from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS

from ..slice_scores import slice_score_stats

# indices of COCOeval.stats (pycocotools' summarize order)
SUMMARY_STATS: Dict[str, int] = {
    'mAP': 0, 'mAP_50': 1, 'mAP_75': 2, 'mAP_s': 3, 'mAP_m': 4, 'mAP_l': 5}


@METRICS.register_module()
class CocoAP50Metric(CocoMetric):
    """MMDetection's COCO metric plus per-class AP at IoU 0.5.

    MMDetection's ``CocoMetric(classwise=True)`` only *logs* a per-class table;
    this metric returns the per-class values, read from pycocotools'
    ``COCOeval.eval['precision']`` array (IoU x recall x class x area x
    maxDets), for each of ``metric`` ('bbox', 'segm'):

    * ``{metric}_{class}_AP50``: AP at IoU 0.5 of that class, all areas,
      the largest maxDets;
    * ``{metric}_{class}_AP``: AP averaged over IoU 0.50:0.95;
    * ``{metric}_{class}_num_gt``: ground-truth instances of that class;
    * ``{metric}_mAP_50``: mean of the per-class AP50 over the classes that
      have ground truth (equal to pycocotools' stats[1]); and the other
      COCO summary numbers ``{metric}_mAP``, ``_mAP_75``, ``_mAP_s/m/l``;
    * with 'bbox', ``slice_{class|any}_{stat}``: how the best detection score
      of each slice separates tumour from tumour-free slices (slice AUC,
      quantiles, share marked at ``slice_score_thr``, the Youden threshold
      and the shares marked at it; see :mod:`mmnpc.evaluation.slice_scores`),
      and ``slice_score_thr``.

    Undefined values are NaN, never 0 or -1: a class with no ground truth in
    the split has no AP (pycocotools marks it -1); a split without any ground
    truth has no mAP. When the model predicts nothing at all, pycocotools
    cannot load the (empty) results, and every class that has ground truth
    gets AP 0 (no recall at any threshold).

    Args:
        metric: 'bbox' and/or 'segm'.
        slice_score_thr: the score that marks a slice (0.5: the default
            ``det_score_thr`` of tools/predict.py).
        **kwargs: the other arguments of ``mmdet.evaluation.CocoMetric``.
    """

    def __init__(self, metric: Union[str, List[str]] = ('bbox', 'segm'),
                 slice_score_thr: float = 0.5, **kwargs) -> None:
        metric = [metric] if isinstance(metric, str) else list(metric)
        unsupported = set(metric) - {'bbox', 'segm'}
        if unsupported:
            raise KeyError(f'CocoAP50Metric supports bbox and segm, got {sorted(unsupported)}')
        super().__init__(metric=metric, **kwargs)
        self.slice_score_thr = slice_score_thr

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Evaluate the collected (gt, prediction) pairs; see the class docstring."""
        gts, preds = zip(*results)
        tmp_dir = None
        if self.outfile_prefix is None:
            tmp_dir = tempfile.TemporaryDirectory()
            outfile_prefix = osp.join(tmp_dir.name, 'results')
        else:
            outfile_prefix = self.outfile_prefix
        try:
            if self._coco_api is None:
                self._coco_api = self._load_gt(gts, outfile_prefix)
            if self.cat_ids is None:
                self.cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta['classes'])
            if self.img_ids is None:
                self.img_ids = self._coco_api.get_img_ids()
            result_files = self.results2json(preds, outfile_prefix)
            if self.format_only:
                return OrderedDict()
            eval_results = OrderedDict()
            for metric in self.metrics:
                eval_results.update(self._evaluate(metric, load(result_files[metric])))
            return eval_results
        finally:
            if tmp_dir is not None:
                tmp_dir.cleanup()

    def _load_gt(self, gts: Sequence[dict], outfile_prefix: str):
        """COCO API on the ground truth carried by the samples (no ann_file)."""
        from mmdet.datasets.api_wrappers import COCO
        return COCO(self.gt_to_coco_json(gt_dicts=gts, outfile_prefix=outfile_prefix))

    def _num_gt(self) -> List[int]:
        """Non-crowd ground-truth instances per class, in ``self.cat_ids`` order."""
        img_ids = set(self.img_ids)
        annotations = [ann for ann in self._coco_api.dataset['annotations']
                       if ann['image_id'] in img_ids and not ann.get('iscrowd', 0)]
        return [sum(ann['category_id'] == cat_id for ann in annotations)
                for cat_id in self.cat_ids]

    def _evaluate(self, metric: str, predictions: list) -> Dict[str, float]:
        """All numbers of one IoU type ('bbox' or 'segm')."""
        logger = MMLogger.get_current_instance()
        names = [self._coco_api.load_cats(cat_id)[0]['name'] for cat_id in self.cat_ids]
        num_gt = self._num_gt()
        if predictions:
            ap50, ap, summary = self._run_cocoeval(metric, predictions)
        else:
            logger.warning(f'{metric}: the model predicted nothing on this split; '
                           'AP = 0 for every class with ground truth')
            ap50 = [0.0 if n else float('nan') for n in num_gt]
            ap = list(ap50)
            # no recall at any IoU; the size-range numbers are left out
            summary = {item: _nanmean(ap50) for item in ('mAP', 'mAP_50', 'mAP_75')}
        results = OrderedDict()
        for item, value in summary.items():
            results[f'{metric}_{item}'] = value
        results[f'{metric}_mAP_50'] = _nanmean(ap50)
        table = [['class', 'num_gt', 'AP50', 'AP']]
        for name, n, a50, a in zip(names, num_gt, ap50, ap):
            results[f'{metric}_{name}_AP50'] = a50
            results[f'{metric}_{name}_AP'] = a
            results[f'{metric}_{name}_num_gt'] = n
            table.append([name, str(n), f'{a50:.3f}', f'{a:.3f}'])
            if n == 0:
                logger.warning(f'{metric}: no ground truth of class {name} in this split, '
                               'its AP is undefined (NaN) and left out of the mean')
        logger.info(f'{metric} per-class AP\n' + AsciiTable(table).table)
        if metric == 'bbox':
            results.update(self._slice_scores(names, predictions))
        return results

    def _slice_scores(self, names: Sequence[str], predictions: list) -> Dict[str, float]:
        """``slice_<class|any>_<stat>``: tumour vs tumour-free slices by their best score."""
        stats = slice_score_stats(self.img_ids, self._coco_api.dataset['annotations'],
                                  predictions, dict(zip(self.cat_ids, names)),
                                  self.slice_score_thr)
        results = OrderedDict(slice_score_thr=float(self.slice_score_thr))
        table = [['slices', 'n tumour', 'n other', 'slice AUC', 'median best score (tumour | '
                  'other)', f'marked >= {self.slice_score_thr} (tumour | other)',
                  'Youden thr: marked (tumour | other)']]
        for name, values in stats.items():
            results.update({f'slice_{name}_{stat}': value for stat, value in values.items()})
            table.append([name, f'{values["n_pos"]:.0f}', f'{values["n_neg"]:.0f}',
                          f'{values["auc"]:.3f}',
                          f'{values["pos_q50"]:.2f} | {values["neg_q50"]:.2f}',
                          f'{values["pos_marked"]:.2f} | {values["neg_marked"]:.2f}',
                          f'{values["youden_thr"]:.2f}: {values["youden_pos_marked"]:.2f} | '
                          f'{values["youden_neg_marked"]:.2f}'])
        MMLogger.get_current_instance().info(
            'detection scores, tumour vs tumour-free slices (best box per slice)\n'
            + AsciiTable(table).table)
        return results

    def _run_cocoeval(self, metric: str, predictions: list):
        """Per-class AP50, per-class AP and the summary stats from pycocotools."""
        if metric == 'segm':
            for prediction in predictions:  # mask area, not box area, decides s/m/l
                prediction.pop('bbox')
        coco_dt = self._coco_api.loadRes(predictions)
        evaluator = (COCOevalMP if self.use_mp_eval else COCOeval)(self._coco_api, coco_dt, metric)
        evaluator.params.catIds = self.cat_ids
        evaluator.params.imgIds = self.img_ids
        evaluator.params.maxDets = list(self.proposal_nums)
        evaluator.params.iouThrs = self.iou_thrs
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        precision = evaluator.eval['precision']  # (iou, recall, class, area, maxDets)
        iou_50 = int(np.argmin(np.abs(np.asarray(evaluator.params.iouThrs) - 0.5)))
        if not np.isclose(evaluator.params.iouThrs[iou_50], 0.5):
            raise ValueError(f'iou_thrs {self.iou_thrs} do not include 0.5')
        ap50 = [_valid_mean(precision[iou_50, :, k, 0, -1]) for k in range(len(self.cat_ids))]
        ap = [_valid_mean(precision[:, :, k, 0, -1]) for k in range(len(self.cat_ids))]
        summary = {item: _undefined_to_nan(evaluator.stats[index])
                   for item, index in SUMMARY_STATS.items()}
        return ap50, ap, summary


def _valid_mean(values: np.ndarray) -> float:
    """Mean of the entries pycocotools did not mark undefined (-1); NaN if none."""
    values = values[values > -1]
    return float(np.mean(values)) if values.size else float('nan')


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the defined values; NaN when none is defined."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float('nan')


def _undefined_to_nan(value: float) -> float:
    return float('nan') if value < 0 else float(value)
