"""metrics.json: the project's keys, null (never 0 or -1) for undefined values, with a note."""
import json
import math

import pytest

from mmnpc.evaluation import detection_summary, write_metrics_json

CLASSES = ('GTV', 'GTVln')


def _metrics(gtvln_ap50=0.4, gtvln_num_gt=3):
    metrics = {}
    for kind in ('bbox', 'segm'):
        metrics.update({
            f'coco/{kind}_GTV_AP50': 0.8, f'coco/{kind}_GTV_num_gt': 5,
            f'coco/{kind}_GTVln_AP50': gtvln_ap50, f'coco/{kind}_GTVln_num_gt': gtvln_num_gt,
            f'coco/{kind}_mAP_50': 0.6 if gtvln_num_gt else 0.8, f'coco/{kind}_mAP': 0.3})
    return metrics


def test_keys_and_values():
    summary = detection_summary(_metrics(), CLASSES)
    assert summary['GTV_AP50'] == 0.8 and summary['GTVln_AP50'] == 0.4
    assert summary['mAP50'] == 0.6 and summary['segm_mAP50'] == 0.6
    assert summary['segm_GTV_AP50'] == 0.8 and summary['segm_GTVln_AP50'] == 0.4
    assert summary['GTV_num_gt'] == 5 and summary['GTVln_num_gt'] == 3
    assert summary['notes'] == []


def test_class_without_ground_truth_is_null_with_a_note(tmp_path):
    summary = detection_summary(_metrics(gtvln_ap50=math.nan, gtvln_num_gt=0), CLASSES)
    assert summary['GTVln_AP50'] is None and summary['segm_GTVln_AP50'] is None
    assert summary['mAP50'] == 0.8
    assert any('GTVln' in note and 'no ground truth' in note for note in summary['notes'])
    write_metrics_json(summary, tmp_path / 'metrics.json')
    assert json.loads((tmp_path / 'metrics.json').read_text())['GTVln_AP50'] is None


def test_other_evaluator_is_reported():
    with pytest.raises(KeyError, match='CocoAP50Metric'):
        detection_summary({'coco/bbox_mAP_50': 0.5}, CLASSES)


def test_nan_is_never_written(tmp_path):
    """An undefined figure is written as null (strict JSON), never as NaN."""
    write_metrics_json({'mAP50': math.nan}, tmp_path / 'metrics.json')
    text = (tmp_path / 'metrics.json').read_text()
    assert 'NaN' not in text and json.loads(text) == {'mAP50': None}


def test_slice_scores_are_grouped_per_class_with_undefined_as_null(tmp_path):
    from mmnpc.evaluation.slice_scores import STATS

    metrics = _metrics()
    metrics['coco/slice_score_thr'] = 0.5
    for i, name in enumerate(('GTV', 'GTVln', 'any')):
        metrics.update({f'coco/slice_{name}_{stat}': 0.1 * i for stat in STATS})
        metrics.update({f'coco/slice_{name}_n_pos': 12.0, f'coco/slice_{name}_n_neg': 30.0})
    metrics['coco/slice_GTVln_auc'] = math.nan
    metrics['coco/slice_GTVln_n_pos'] = 0.0
    summary = detection_summary(metrics, CLASSES)
    assert summary['slice_score_thr'] == 0.5
    assert set(summary['slice_scores']) == {'GTV', 'GTVln', 'any'}
    assert summary['slice_scores']['any']['neg_marked'] == pytest.approx(0.2)
    assert summary['slice_scores']['GTV']['n_neg'] == 30
    assert isinstance(summary['slice_scores']['GTV']['n_neg'], int)
    assert summary['slice_scores']['GTVln']['auc'] is None
    assert summary['notes'] == ['slice_scores GTVln: no tumour slice in this split, so its '
                                'slice AUC is undefined (null)']
    write_metrics_json(summary, tmp_path / 'metrics.json')
    assert 'slice_scores' not in detection_summary(_metrics(), CLASSES)
