"""The demo report reads what the tools write: split labels, baselines, end-to-end figures."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from mmnpc.demo_report import write_demo_report
from mmnpc.evaluation.end_to_end import ROW_COLUMNS, evaluate_end_to_end
from mmnpc.evaluation.model_comparison import compare_models
from mmnpc.evaluation.msom_report import MsomEvaluation, msom_summary


def _rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 30
    labels = rng.integers(0, 2, n)
    rows = pd.DataFrame({
        'patient_id': [f'P{i:02d}' for i in range(n)], 'split': ['train'] * 20 + ['test'] * 10,
        'label': labels, 'contour_score': labels * 0.3 + rng.random(n) * 0.7,
        'end_to_end_score': labels * 0.2 + rng.random(n) * 0.8, 'n_slices': 80,
        'n_slices_looked_at': 30, 'n_slices_detected': 12, 'n_slices_scored': 8,
        'n_tumour_slices': 10, 'n_tumour_slices_detected': 9, 'slice_recall': 0.9,
        'slice_precision': 0.75, 'tumour_found': True})
    rows.loc[25, ['end_to_end_score', 'n_slices_detected', 'n_tumour_slices_detected',
                  'slice_recall', 'slice_precision', 'tumour_found']] = [math.nan, 0, 0, 0.0,
                                                                         math.nan, False]
    return rows[list(ROW_COLUMNS)]


def _dump(path: Path, record: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / 'metrics.json').write_text(json.dumps(record, default=float))


def test_report_shows_test_split_end_to_end_and_baselines(tmp_path):
    rows = _rows()
    evaluation = evaluate_end_to_end(rows, eval_split='test')
    assert evaluation.report['test_n_no_detection'] == 1
    assert any('nothing detected' in note for note in evaluation.notes)
    summary = msom_summary(MsomEvaluation(evaluation.report, evaluation.end_to_end.table,
                                          evaluation.notes))
    dirs = {name: tmp_path / name for name in ('detector', 'msom_cet1_cpu', 'late_fusion',
                                               'end_to_end', 'comparison')}
    _dump(dirs['end_to_end'], summary)
    slice_scores = {'any': {'auc': 0.97, 'n_pos': 300, 'n_neg': 200, 'pos_q10': 0.71,
                            'pos_q50': 0.93, 'pos_q90': 0.98, 'neg_q10': 0.2, 'neg_q50': 0.38,
                            'neg_q90': 0.54, 'youden_thr': 0.655}}
    _dump(dirs['detector'] / 'val', {'split': 'val_step4', 'GTV_AP50': 0.88,
                                     'GTVln_AP50': 0.69, 'slice_scores': slice_scores})
    _dump(dirs['detector'] / 'test', {'split': 'test_step16', 'GTV_AP50': 0.7,
                                      'GTVln_AP50': 0.3, 'notes': []})
    contour = msom_summary(evaluation.contour)
    _dump(dirs['msom_cet1_cpu'], contour)
    _dump(dirs['late_fusion'], {**contour, 'auc': 0.812, 'late_fusion_coef_clinical': 0.91,
                                'late_fusion_coef_image': 1.37, 'late_fusion_intercept': -0.2,
                                'late_fusion_fit_split': 'val', 'late_fusion_n_fit_patients': 24,
                                'late_fusion_n_fit_positive': 9,
                                'notes': ['the fit gives the image score a negative weight']})
    shares = {'GTV': 0.61, 'GTVln': 0.07, 'ring': 0.2, 'elsewhere': 0.12}
    cam = {'eval_split': 'test', 'parts': list(shares), 'ring_mm': 5.0, 'groups': {
        'all': {'n_patients': 8, 'n_samples': 16, 'mean_over_patients': shares},
        'true_positive': {'n_patients': 4, 'n_samples': 8, 'mean_over_patients': shares}}}
    (dirs['msom_cet1_cpu'] / 'cam').mkdir()
    (dirs['msom_cet1_cpu'] / 'cam' / 'cam_summary.json').write_text(json.dumps(cam))
    tables = {'late_fusion': rows.rename(columns={'contour_score': 'score'}),
              'end_to_end': rows.rename(columns={'end_to_end_score': 'score'})}
    result = compare_models(tables, 'late_fusion', 'test')
    dirs['comparison'].mkdir()
    (dirs['comparison'] / 'comparison.json').write_text(json.dumps(
        {'eval_split': 'test', 'reference': 'late_fusion',
         'models': json.loads(result.to_json(orient='records'))}))
    md, _ = write_demo_report(tmp_path, dirs, tmp_path / 'no_prediction', minutes=1.0)
    report = md.read_text()
    assert 'Stage 1: GTV / GTVln detection (CE-T1WI, held-out patients)' in report
    assert '| val_step4 | 0.880 | 0.690 |' in report and '| test_step16 | 0.700 | 0.300 |' in report
    assert '0.93 (0.71-0.98) | 0.38 (0.20-0.54) | 0.970' in report  # tumour vs tumour-free
    assert 'Youden): 0.655' in report
    assert 'Stage 2: MSOM prediction (CE-T1WI lesion regions, image only, test patients' in report
    assert 'Late fusion: clinical-only + image-only scores (test patients)' in report
    assert '0.812' in report and 'clinical 0.91, image 1.37' in report
    assert 'fitted on the 24 val patients (9 MSOM)' in report
    assert 'Warning: the fit gives the image score a negative weight' in report
    assert 'Where the image model looks (Grad-CAM)' in report
    assert '| true positive | 4 | 8 | 0.61 | 0.07 | 0.20 | 0.12 |' in report
    assert 'intention to treat' in report and f'{summary["itt_auc"]:.3f}' in report
    assert 'Baselines (test patients scored by every model)' in report
    assert 'End-to-end: the score a new patient gets (test patients)' in report
    assert '1 of 10' in report  # test patients without any detection
    assert f'{summary["end_to_end_auc"]:.3f}' in report and f'{contour["auc"]:.3f}' in report


def test_no_training_patient_detected_gives_no_deployment_cutoff_not_a_crash():
    rows = _rows()
    rows.loc[rows['split'] == 'train', 'end_to_end_score'] = math.nan
    evaluation = evaluate_end_to_end(rows, eval_split='test')
    assert math.isnan(evaluation.report['end_to_end_cutoff'])
    assert evaluation.report['train_n_no_detection'] == 20
    assert any('no train patients: no cut-off' in note for note in evaluation.notes)
    assert not math.isnan(evaluation.report['contour_cutoff'])


def test_prediction_block_shows_the_detection_check(tmp_path):
    from mmnpc.demo_report import prediction_blocks
    from mmnpc.reporting import to_markdown

    predict_dir = tmp_path / 'predict_P01'
    predict_dir.mkdir()
    (predict_dir / 'prediction.json').write_text(json.dumps({
        'patient_id': 'P01', 'msom_score': None, 'message': 'no tumour detected'}))
    assert 'slice recall' not in to_markdown(prediction_blocks(predict_dir), tmp_path)
    check = {'reference_file': 'RS.dcm', 'n_slices_looked_at': 40, 'n_slices_total': 85,
             'classes': {'GTV': {'slice_recall': 0.9, 'slice_precision': 1.0,
                                 'n_reference_planes': 12,
                                 'centroid_distance_mm': {'median': 1.24, 'max': 3.5, 'n': 10}}}}
    (predict_dir / 'detection_check.json').write_text(json.dumps(check))
    text = to_markdown(prediction_blocks(predict_dir), tmp_path)
    assert 'no tumour detected' in text and 'looked at 40 of 85 slices' in text
    assert '| GTV | 0.90 | 1.00 | 12 | 1.2 / 3.5 |' in text


def test_late_fusion_block_says_when_the_weights_were_not_estimated(tmp_path):
    from mmnpc.demo_report import late_fusion_blocks
    from mmnpc.reporting import Paragraph
    record = {'eval_split': 'test', 'auc': 0.6, 'late_fusion_coef_clinical': 1.0,
              'late_fusion_coef_image': 1.0, 'late_fusion_intercept': 1.2,
              'late_fusion_fit_split': 'val', 'late_fusion_n_fit_patients': 24,
              'late_fusion_n_fit_positive': 10, 'late_fusion_prior_weight': 1.0,
              'late_fusion_weights_fitted': False}
    _dump(tmp_path / 'fixed', record)
    _dump(tmp_path / 'fitted', {**record, 'late_fusion_weights_fitted': True})
    text = lambda d: ' '.join(b.text for b in late_fusion_blocks(d)  # noqa: E731
                              if isinstance(b, Paragraph))
    assert 'weights fixed at 1 (too few events' in text(tmp_path / 'fixed')
    assert 'fixed at' not in text(tmp_path / 'fitted')
