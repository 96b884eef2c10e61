"""Experiment: are lesions missed, or found under the wrong class? (a script, not a test)

Reads a COCO annotation file and the detections ``tools/test.py --out DETS.pkl``
dumped for it, and prints

* box AP@0.5 per class and class-agnostic (every lesion one class: is a lesion
  found at all, whatever its label?),
* per ground-truth class, the label of the best-scoring detection that
  overlaps each ground truth (IoU >= --iou, score >= --score-thr), or none,
* with ``--slice-thr`` (a number, or a validation-split detector metrics.json:
  its fitted slice threshold, as tools/test_end_to_end.py takes it), the share
  of tumour and of tumour-free slices marked at that threshold: how a threshold
  fitted on validation patients does on these slices.

    python tools/test.py CONFIG CKPT --data-root DATA --out DETS.pkl [--cfg-options
        test_dataloader.dataset.ann_file=ANN]
    python experiments/detector_confusion.py --ann ANN --dets DETS.pkl \\
        [--slice-thr VAL_METRICS.json]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import pickle

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmnpc.evaluation.slice_scores import slice_score_stats
from mmnpc.inference.det_threshold import DetThreshold, parse_det_threshold


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='lesions missed or mislabelled?')
    parser.add_argument('--ann', required=True, help='COCO annotation file that was tested')
    parser.add_argument('--dets', required=True, help='tools/test.py --out pickle')
    parser.add_argument('--iou', type=float, default=0.5, help='IoU for "found" (0.5)')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detections kept (0.3)')
    parser.add_argument('--slice-thr', metavar='THR|METRICS_JSON',
                        help='also report the slices marked at this slice threshold')
    return parser.parse_args()


def coco_results(dets: list[dict]) -> list[dict]:
    """MMDetection's dumped predictions as COCO results (xywh, category id = label + 1)."""
    results = []
    for d in dets:
        p = d['pred_instances']
        for box, score, label in zip(np.asarray(p['bboxes']).tolist(),
                                     np.asarray(p['scores']).tolist(),
                                     np.asarray(p['labels']).tolist()):
            x1, y1, x2, y2 = box
            results.append({'image_id': d['img_id'], 'bbox': [x1, y1, x2 - x1, y2 - y1],
                            'score': score, 'category_id': int(label) + 1})
    return results


def ap50(gt: dict, results: list[dict], category: int | None = None) -> float:
    """Box AP@0.5 (pycocotools) of ``results`` on ``gt``, for one category or all."""
    coco = COCO()
    coco.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), 'bbox')
        if category is not None:
            evaluation.params.catIds = [category]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1])


def class_agnostic(gt: dict, results: list[dict]) -> tuple[dict, list[dict]]:
    gt = copy.deepcopy(gt)
    gt['categories'] = [{'id': 1, 'name': 'lesion'}]
    for a in gt['annotations']:
        a['category_id'] = 1
    return gt, [dict(r, category_id=1) for r in results]


def iou_xywh(a, b) -> float:
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def labels_of_found(gt: dict, results: list[dict], iou: float, score_thr: float) -> dict:
    """ground-truth class -> {'none' | detected class: count}."""
    names = {c['id']: c['name'] for c in gt['categories']}
    by_image: dict = {}
    for r in results:
        if r['score'] >= score_thr:
            by_image.setdefault(r['image_id'], []).append(r)
    table = {name: {'none': 0, **{n: 0 for n in names.values()}} for name in names.values()}
    for a in gt['annotations']:
        hits = [r for r in by_image.get(a['image_id'], []) if iou_xywh(a['bbox'], r['bbox']) >= iou]
        row = table[names[a['category_id']]]
        row['none' if not hits else names[max(hits, key=lambda r: r['score'])['category_id']]] += 1
    return table


def main() -> None:
    args = parse_args()
    try:  # before the slow part: a wrong --slice-thr ends here, with its reason
        slice_thr = None if args.slice_thr is None else parse_det_threshold(args.slice_thr)
    except ValueError as error:
        raise SystemExit(str(error))
    with open(args.ann) as handle:
        gt = json.load(handle)
    with open(args.dets, 'rb') as handle:
        results = coco_results(pickle.load(handle))
    summary = {'ap50': {c['name']: ap50(gt, results, c['id']) for c in gt['categories']},
               'ap50_class_agnostic': ap50(*class_agnostic(gt, results)),
               'found_as': labels_of_found(gt, results, args.iou, args.score_thr),
               'iou': args.iou, 'score_thr': args.score_thr}
    if slice_thr is not None:
        summary['slices_at_threshold'] = slices_marked(gt, results, slice_thr)
    print(json.dumps(summary, indent=2))


def slices_marked(gt: dict, results: list[dict], chosen: DetThreshold) -> dict:
    """Per class and 'any': slices with / without it, and the share of each marked."""
    stats = slice_score_stats([im['id'] for im in gt['images']], gt['annotations'], results,
                              {c['id']: c['name'] for c in gt['categories']}, chosen.value)
    return {'threshold': chosen.value, 'source': chosen.source,
            **{name: {key: v[key] for key in ('n_pos', 'n_neg', 'pos_marked', 'neg_marked')}
               for name, v in stats.items()}}


if __name__ == '__main__':
    main()
