"""--det-score-thr: a number, or the slice threshold fitted on validation patients."""
from __future__ import annotations

import json

import pytest

from mmnpc.inference.cutoff import checkpoint_fingerprint
from mmnpc.inference.det_threshold import (DEFAULT_DET_SCORE_THR, parse_det_threshold,
                                           refuse_reported_split, threshold_for_prediction)


def metrics(tmp_path, split='val', youden=0.83, name='metrics.json', checkpoint=None):
    path = tmp_path / name
    record = {'split': split, 'slice_scores': {
        'GTV': {'youden_thr': 0.9}, 'any': {'youden_thr': youden}}}
    if checkpoint is not None:
        record['checkpoint'] = checkpoint_fingerprint(checkpoint)
    path.write_text(json.dumps(record))
    return path


def test_a_number_or_the_default():
    assert parse_det_threshold(None).value == DEFAULT_DET_SCORE_THR
    assert parse_det_threshold('0.7').value == 0.7
    assert parse_det_threshold('0.7').source == 'command line'
    for bad in ('1.5', '-0.1', 'nan'):
        with pytest.raises(ValueError, match='score in'):
            parse_det_threshold(bad)


def test_the_validation_slices_fitted_threshold(tmp_path):
    path = metrics(tmp_path)
    chosen = parse_det_threshold(str(path))
    assert chosen.value == 0.83  # the 'any' class: the prediction rule, not GTV's 0.9
    assert str(path) in chosen.source and '(val slices' in chosen.source
    assert chosen.split == 'val'


def test_refuses_another_checkpoints_threshold(tmp_path):
    det, other = tmp_path / 'det.pth', tmp_path / 'other.pth'
    det.write_bytes(b'12345')
    other.write_bytes(b'123')
    path = metrics(tmp_path, checkpoint=det)
    assert parse_det_threshold(str(path), det).value == 0.83
    with pytest.raises(ValueError, match='written for the detector checkpoint'):
        parse_det_threshold(str(path), other)


def test_refuses_a_threshold_fitted_on_the_reported_split(tmp_path):
    chosen = parse_det_threshold(str(metrics(tmp_path, split='val_step4')))
    refuse_reported_split(chosen, 'test')  # fitted on val, reported on test: fine
    with pytest.raises(ValueError, match='the ones this evaluation reports'):
        refuse_reported_split(chosen, 'val')  # a cohort without a test split reports val
    refuse_reported_split(parse_det_threshold('0.5'), 'val')  # a number was fitted on nothing


def test_refuses_test_patients_missing_files_and_unfitted_thresholds(tmp_path):
    for split in ('test', 'test_step4'):  # experiments/train_detector.py --slice-step 4
        with pytest.raises(ValueError, match='fitted on the test patients'):
            parse_det_threshold(str(metrics(tmp_path, split=split)))
    assert parse_det_threshold(str(metrics(tmp_path, split='val_step4'))).value == 0.83
    with pytest.raises(ValueError, match='neither a number nor a file'):
        parse_det_threshold(str(tmp_path / 'missing.json'))
    with pytest.raises(ValueError, match='youden_thr is null'):
        parse_det_threshold(str(metrics(tmp_path, youden=None)))
    other = tmp_path / 'other.json'
    other.write_text(json.dumps({'auc': 0.7}))
    with pytest.raises(ValueError, match='not a detector metrics.json'):
        parse_det_threshold(str(other))


def test_prediction_follows_the_deployment_cutoffs_threshold(tmp_path):
    deployment = tmp_path / 'deployment.json'
    deployment.write_text(json.dumps({'cutoff': 0.4, 'det_score_thr': 0.77}))
    chosen, warnings = threshold_for_prediction(None, str(deployment))
    assert chosen.value == 0.77 and warnings == []
    chosen, warnings = threshold_for_prediction('0.5', str(deployment))
    assert chosen.value == 0.5 and '0.77' in warnings[0]
    # an end-to-end metrics.json records it too
    e2e = tmp_path / 'metrics.json'
    e2e.write_text(json.dumps({'cutoff': 0.4, 'det_score_thr': 0.61}))
    assert threshold_for_prediction(None, str(e2e))[0].value == 0.61
    # a cut-off from the command line or a contour-based metrics.json says nothing about it
    for source in ('command line', str(metrics(tmp_path, name='contour.json'))):
        chosen, warnings = threshold_for_prediction(None, source)
        assert chosen.value == DEFAULT_DET_SCORE_THR and warnings == []
