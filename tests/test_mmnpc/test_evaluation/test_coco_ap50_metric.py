"""CocoAP50Metric: per-class AP@0.5 from pycocotools, NaN (not 0) where a class has no ground truth."""
from __future__ import annotations

import json
import math

import pytest
import torch

from mmnpc.evaluation import CocoAP50Metric

SIZE = 64  # px, side of the fake slices
GTV, GTVLN = 0, 1  # labels; COCO category ids are label + 1


def _write_gt(path, boxes_per_image):
    """COCO file with one image per entry of ``boxes_per_image`` ([(label, x, y, w, h)], px)."""
    images, annotations = [], []
    for image_id, boxes in enumerate(boxes_per_image, start=1):
        images.append({'id': image_id, 'file_name': f'{image_id}.jpg', 'width': SIZE, 'height': SIZE})
        for label, x, y, w, h in boxes:
            annotations.append({
                'id': len(annotations) + 1, 'image_id': image_id, 'category_id': label + 1,
                'bbox': [x, y, w, h], 'area': w * h, 'iscrowd': 0,
                'segmentation': [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    path.write_text(json.dumps({
        'images': images, 'annotations': annotations,
        'categories': [{'id': 1, 'name': 'GTV'}, {'id': 2, 'name': 'GTVln'}]}))
    return str(path)


def _sample(image_id, detections):
    """A data sample predicting ``detections`` [(label, score, x, y, w, h)]."""
    masks = torch.zeros((len(detections), SIZE, SIZE), dtype=torch.bool)
    for i, (_, _, x, y, w, h) in enumerate(detections):
        masks[i, y:y + h, x:x + w] = True
    return {
        'img_id': image_id, 'ori_shape': (SIZE, SIZE),
        'pred_instances': {
            'bboxes': torch.tensor([[x, y, x + w, y + h] for _, _, x, y, w, h in detections],
                                   dtype=torch.float32).reshape(-1, 4),
            'scores': torch.tensor([s for _, s, *_ in detections], dtype=torch.float32),
            'labels': torch.tensor([label for label, *_ in detections], dtype=torch.int64),
            'masks': masks}}


def _evaluate(ann_file, samples):
    metric = CocoAP50Metric(ann_file=ann_file)
    metric.dataset_meta = {'classes': ('GTV', 'GTVln')}
    metric.process({}, samples)
    return metric.evaluate(len(samples))


GT = [[(GTV, 10, 10, 20, 20)], [(GTV, 30, 30, 16, 12), (GTVLN, 5, 40, 8, 8)], []]


def test_perfect_predictions_give_ap50_one(tmp_path):
    ann = _write_gt(tmp_path / 'val.json', GT)
    samples = [_sample(1, [(GTV, 0.9, 10, 10, 20, 20)]),
               _sample(2, [(GTV, 0.8, 30, 30, 16, 12), (GTVLN, 0.7, 5, 40, 8, 8)]),
               _sample(3, [])]
    results = _evaluate(ann, samples)
    for metric in ('bbox', 'segm'):
        assert results[f'coco/{metric}_GTV_AP50'] == pytest.approx(1.0)
        assert results[f'coco/{metric}_GTVln_AP50'] == pytest.approx(1.0)
        assert results[f'coco/{metric}_mAP_50'] == pytest.approx(1.0)
    assert results['coco/bbox_GTV_num_gt'] == 2 and results['coco/bbox_GTVln_num_gt'] == 1


def test_false_positive_on_a_tumour_free_slice_costs_precision(tmp_path):
    ann = _write_gt(tmp_path / 'val.json', GT)
    samples = [_sample(1, [(GTV, 0.9, 10, 10, 20, 20)]),
               _sample(2, [(GTV, 0.8, 30, 30, 16, 12), (GTVLN, 0.7, 5, 40, 8, 8)]),
               _sample(3, [(GTV, 0.99, 40, 5, 10, 10)])]
    results = _evaluate(ann, samples)
    # ranked FP, TP, TP: interpolated precision 2/3 at every recall level
    assert results['coco/bbox_GTV_AP50'] == pytest.approx(2 / 3, abs=1e-6)
    assert results['coco/bbox_GTVln_AP50'] == pytest.approx(1.0)
    assert results['coco/bbox_mAP_50'] == pytest.approx((2 / 3 + 1) / 2, abs=1e-6)


def test_class_without_ground_truth_is_nan_and_left_out_of_the_mean(tmp_path):
    ann = _write_gt(tmp_path / 'val.json', [[(GTV, 10, 10, 20, 20)], []])
    samples = [_sample(1, [(GTV, 0.9, 10, 10, 20, 20), (GTVLN, 0.5, 40, 40, 8, 8)]),
               _sample(2, [])]
    results = _evaluate(ann, samples)
    assert results['coco/bbox_GTVln_num_gt'] == 0
    assert math.isnan(results['coco/bbox_GTVln_AP50'])
    assert math.isnan(results['coco/segm_GTVln_AP50'])
    assert results['coco/bbox_mAP_50'] == pytest.approx(results['coco/bbox_GTV_AP50'])


def test_no_predictions_at_all(tmp_path):
    ann = _write_gt(tmp_path / 'val.json', [[(GTV, 10, 10, 20, 20)], []])
    results = _evaluate(ann, [_sample(1, []), _sample(2, [])])
    assert results['coco/bbox_GTV_AP50'] == 0.0
    assert math.isnan(results['coco/bbox_GTVln_AP50'])
    assert results['coco/bbox_mAP_50'] == 0.0
    assert results['coco/segm_mAP_50'] == 0.0


def test_only_box_and_mask_metrics():
    with pytest.raises(KeyError):
        CocoAP50Metric(metric=['bbox', 'proposal'])


def test_slice_score_separation_is_reported_with_the_box_metrics(tmp_path):
    ann = _write_gt(tmp_path / 'val.json', GT)
    samples = [_sample(1, [(GTV, 0.9, 10, 10, 20, 20)]),
               _sample(2, [(GTV, 0.4, 30, 30, 16, 12)]),
               _sample(3, [(GTV, 0.6, 40, 5, 10, 10), (GTVLN, 0.3, 5, 5, 8, 8)])]
    results = _evaluate(ann, samples)
    assert results['coco/slice_score_thr'] == 0.5
    # GTV: tumour slices 1, 2 score 0.9, 0.4; tumour-free slice 3 scores 0.6
    assert results['coco/slice_GTV_auc'] == pytest.approx(0.5)
    assert results['coco/slice_GTV_pos_marked'] == pytest.approx(0.5)
    assert results['coco/slice_GTV_neg_marked'] == pytest.approx(1.0)
    # GTVln: slice 2 has the node but no node box (0); slices 1, 3 score 0, 0.3
    assert results['coco/slice_GTVln_auc'] == pytest.approx(0.25)
    assert results['coco/slice_any_n_pos'] == 2 and results['coco/slice_any_n_neg'] == 1
    assert not any(key.startswith('coco/segm_slice') for key in results)
