"""tools/test_end_to_end.py: every patient gets the score tools/predict.py gives it.

Five patients of the shared converted cohort and the shared tiny detector
(tests/conftest.py, 4 iterations)
and an image-only classifier with random weights (mmnpc.testing.save_untrained);
the detector runs with --det-score-thr 0, so it marks every slice it looks at:
what is checked is that the cohort evaluation and prediction run the same
slices through the same preprocessing (DICOM -> converter -> JPEG round trip),
the same detector search and the same classifier, and that every reported
number can be recomputed from the exported per-patient rows.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mmengine.config import Config

from mmnpc.evaluation import delong_auc_ci, youden_cutoff

REPO = Path(__file__).resolve().parents[2]
CLS_CONFIG = 'configs/msom_cet1_tiny.py'
pytestmark = pytest.mark.slow  # a ResNet-50 Mask R-CNN on every slice of 4 small patients


@pytest.fixture(scope='module')
def run(converted_cohort, tiny_models, tmp_path_factory):
    """The shared tiny detector on 5 patients of the shared converted cohort (a training
    patient of each label, one validation patient, two test patients -- of each label
    where the cohort has them, so that the test AUC is defined); an untrained
    image-only classifier."""
    from mmnpc.testing import save_untrained

    tmp = tmp_path_factory.mktemp('e2e')
    labels = converted_cohort.labels()
    train = converted_cohort.patients('train')
    test = sorted(converted_cohort.patients('test'), key=lambda p: labels[p])
    chosen = [next(p for p in train if labels[p] == 1), next(p for p in train if labels[p] == 0),
              converted_cohort.patients('val')[0], test[0], test[-1]]
    data = converted_cohort.subset(tmp / 'data', chosen)
    cohort = converted_cohort.cohort
    splits = {p: converted_cohort.splits[p] for p in chosen}
    (tmp / 'cls').mkdir()
    cls = save_untrained(REPO / CLS_CONFIG, tmp / 'cls' / 'cls.pth',
                         [p for p in chosen if splits[p] == 'train'])
    work = tmp / 'work'
    result = subprocess.run(
        [sys.executable, 'tools/test_end_to_end.py', CLS_CONFIG, str(cls), '--det-checkpoint',
         str(tiny_models.det), '--data-root', str(data), '--work-dir', str(work),
         '--det-score-thr', '0', '--coarse-step', '3'],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp, cohort, splits, tiny_models.det, cls, work, result.stdout


def test_rows_cover_train_and_test_patients_with_both_scores(run):
    tmp, cohort, splits, det, cls, work, stdout = run
    rows = pd.read_csv(work / 'patient_scores.csv', dtype={'patient_id': str})
    expected = sorted(p for p, s in splits.items() if s in ('train', 'test'))
    assert sorted(rows['patient_id']) == expected  # val patients chose the checkpoint only
    assert dict(zip(rows['patient_id'], rows['split'])) == {p: splits[p] for p in expected}
    assert rows['contour_score'].notna().all() and rows['end_to_end_score'].notna().all()
    # threshold 0: every slice looked at is a detection; the contoured ones are all found
    assert (rows['n_slices_detected'] == rows['n_slices_looked_at']).all()
    assert (rows['slice_recall'] == 1.0).all() and rows['tumour_found'].all()
    metrics = json.loads((work / 'metrics.json').read_text())
    assert metrics['eval_split'] == 'test' and 'test split' not in ' '.join(metrics['notes'])


def test_end_to_end_score_equals_what_prediction_gives(run):
    """predict_patient on the patient's DICOM folder = the cohort evaluation's score."""
    from mmnpc.inference.predict_patient import PredictOptions, predict_patient
    from mmnpc.inference.slice_detector import SliceDetector
    from mmnpc.models import init_msom_classifier

    tmp, cohort, splits, det, cls, work, stdout = run
    patient = next(p for p, s in splits.items() if s == 'test')
    cfg = Config.fromfile(str(REPO / CLS_CONFIG))
    classifier, _ = init_msom_classifier(cfg, str(cls))
    detector = SliceDetector(det, score_thr=0.0)
    pred = predict_patient(cohort / patient, detector, classifier, cfg, None, cutoff=0.5,
                           options=PredictOptions(det_score_thr=0.0, coarse_step=3))
    rows = pd.read_csv(work / 'patient_scores.csv', dtype={'patient_id': str})
    row = rows[rows['patient_id'] == patient].iloc[0]
    assert pred.msom_score == pytest.approx(row['end_to_end_score'], abs=1e-6)
    assert len(pred.slice_scores) == row['n_slices_scored']
    assert len(pred.slices_looked_at) == row['n_slices_looked_at']


def test_deployment_cutoff_is_fitted_on_training_patients_and_used_by_predict(run):
    tmp, cohort, splits, det, cls, work, stdout = run
    rows = pd.read_csv(work / 'patient_scores.csv', dtype={'patient_id': str})
    train = rows[rows['split'] == 'train']
    deployment = json.loads((cls.parent / 'deployment.json').read_text())
    assert deployment == json.loads((work / 'deployment.json').read_text())
    if train['label'].nunique() == 2:
        assert deployment['cutoff'] == pytest.approx(
            youden_cutoff(train['end_to_end_score'], train['label']))
        assert deployment['cutoff'] in set(train['end_to_end_score'].round(12)) or any(
            np.isclose(train['end_to_end_score'], deployment['cutoff']))
    else:
        assert deployment['cutoff'] is None
    metrics = json.loads((work / 'metrics.json').read_text())
    assert metrics['end_to_end_cutoff'] == deployment['cutoff']
    # the reported AUCs are recomputable from the CSV rows of the test patients
    test = rows[rows['split'] == 'test']
    for column, key in (('contour_score', 'contour_auc'), ('end_to_end_score', 'end_to_end_auc')):
        auc = delong_auc_ci(test[column], test['label']).auc
        assert (metrics[key] is None and np.isnan(auc)) or metrics[key] == pytest.approx(auc)
    # intention to treat: every test patient scored, the missed ones by the training prevalence
    missed = test['end_to_end_score'].isna()
    itt = test['end_to_end_score'].where(~missed, train['label'].mean())
    assert metrics['test_n_fallback'] == int(missed.sum())
    assert metrics['itt_n_val_patients'] == len(test)
    auc = delong_auc_ci(itt, test['label']).auc
    assert (metrics['itt_auc'] is None and np.isnan(auc)) or metrics['itt_auc'] == pytest.approx(auc)
    assert 'intention-to-treat AUC' in stdout


def test_a_detector_of_another_sequence_is_refused(run):
    from mmnpc.testing import save_untrained

    tmp, cohort, splits, det, cls, work, stdout = run
    t2 = save_untrained(REPO / 'configs/det_t2_tiny.py', tmp / 'det_t2.pth',
                        [p for p, s in splits.items() if s == 'train'])
    result = subprocess.run(
        [sys.executable, 'tools/test_end_to_end.py', CLS_CONFIG, str(cls), '--det-checkpoint',
         str(t2), '--data-root', str(tmp / 'data'), '--work-dir', str(tmp / 'w2')],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert "'t2' model" in result.stderr and "'cet1'" in result.stderr


def test_a_detector_trained_on_a_test_patient_is_refused(run):
    from mmnpc.testing import save_untrained

    tmp, cohort, splits, det, cls, work, stdout = run
    leaky = save_untrained(REPO / 'configs/det_cet1_tiny.py', tmp / 'leaky.pth', list(splits))
    result = subprocess.run(
        [sys.executable, 'tools/test_end_to_end.py', CLS_CONFIG, str(cls), '--det-checkpoint',
         str(leaky), '--data-root', str(tmp / 'data'), '--work-dir', str(tmp / 'w3')],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0 and 'refused' in result.stderr


def test_a_training_sample_too_small_for_a_cutoff_is_refused_before_anything_is_written(run):
    tmp, cohort, splits, det, cls, work, stdout = run
    result = subprocess.run(
        [sys.executable, 'tools/test_end_to_end.py', CLS_CONFIG, str(cls), '--det-checkpoint',
         str(det), '--data-root', str(tmp / 'data'), '--work-dir', str(tmp / 'w4'),
         '--max-train-patients', '1'],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert '--max-train-patients' in result.stderr and 'at least 2' in result.stderr
    assert not (tmp / 'w4').exists()


def test_a_second_run_reuses_the_stored_rows_and_other_settings_do_not(run):
    tmp, cohort, splits, det, cls, work, stdout = run
    assert sorted(p.name for p in (work / 'patient_rows').iterdir()) == sorted(
        f'{s}__{p}.json' for p, s in splits.items() if s in ('train', 'test'))
    before = pd.read_csv(work / 'patient_scores.csv', dtype={'patient_id': str})
    args = [sys.executable, 'tools/test_end_to_end.py', CLS_CONFIG, str(cls), '--det-checkpoint',
            str(det), '--data-root', str(tmp / 'data'), '--work-dir', str(work),
            '--det-score-thr', '0', '--no-deployment-file']
    again = subprocess.run([*args, '--coarse-step', '3'], cwd=REPO, capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '4 patients scored earlier with these models and settings re-used' in again.stdout
    pd.testing.assert_frame_equal(
        pd.read_csv(work / 'patient_scores.csv', dtype={'patient_id': str}), before)
    other = subprocess.run([*args, '--coarse-step', '2'], cwd=REPO,
                           capture_output=True, text=True)
    assert other.returncode == 0, other.stderr[-3000:]
    assert '0 patients scored earlier' in other.stdout and '4 stored rows of others ignored' \
        in other.stdout
