"""The region recipe end to end on the shared cohort: tools/train.py from contours alone,
tools/test.py --cam, and tools/test_end_to_end.py cutting windows around detector boxes.

Two iterations, so nothing here says the model is good (``make validate`` and the
experiments in docs/ do); what is checked is that the region samples are the
contoured sections, that the Grad-CAM report accounts for every map's mass, and
that the end-to-end evaluation scores windows of the detector's boxes with the
same model.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = 'configs/msom_cet1_cpu.py'
# two windows per structure and patient keep the CPU time of this test small
FEW = [f'{loader}.dataset.regions_per_structure=2'
       for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
pytestmark = pytest.mark.slow


def run_tool(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f'{args[0]}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return result


@pytest.fixture(scope='module')
def trained(converted_cohort, tmp_path_factory):
    work = tmp_path_factory.mktemp('region')
    run_tool('tools/train.py', CONFIG, '--data-root', str(converted_cohort.data),
             '--work-dir', str(work / 'train'), '--cfg-options', 'train_cfg.max_iters=2',
             'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
             'train_dataloader.batch_sampler.patients_per_batch=3', *FEW)
    return work, work / 'train' / 'iter_2.pth'


def test_trains_from_contours_and_explains_its_test_patients(converted_cohort, trained):
    work, checkpoint = trained
    assert checkpoint.is_file()  # no detector was given: the recipe needs none to train
    result = run_tool('tools/test.py', CONFIG, str(checkpoint), '--data-root',
                      str(converted_cohort.data), '--work-dir', str(work / 'test'), '--cam', '1',
                      '--cfg-options', FEW[-1])
    scores = pd.read_csv(work / 'test' / 'patient_scores.csv', dtype={'patient_id': str})
    assert set(scores.loc[scores['split'] == 'test', 'patient_id']) <= set(
        converted_cohort.patients('test'))
    shares = pd.read_csv(work / 'test' / 'cam' / 'cam_mass_shares.csv', dtype={'patient_id': str})
    assert len(shares) and set(shares['patient_id']) <= set(converted_cohort.patients('test'))
    assert set(shares['structure']) <= {'GTV', 'GTVln'}
    assert shares.groupby(['patient_id', 'structure']).size().max() <= 2
    parts = shares[['GTV', 'GTVln', 'ring', 'elsewhere']].dropna()
    assert np.allclose(parts.sum(axis=1), 1.0) and (parts[['GTV', 'GTVln', 'ring']] >= 0).all().all()
    # a GTV window centred on its lesion: the GTV mask in the window is not empty
    summary = json.loads((work / 'test' / 'cam' / 'cam_summary.json').read_text())
    assert summary['eval_split'] == 'test' and summary['groups']['all']['n_samples'] == len(shares)
    assert any((work / 'test' / 'cam').glob('montage_*.png'))
    assert 'Grad-CAM of' in result.stdout


def test_end_to_end_scores_windows_of_the_detector_boxes(converted_cohort, trained,
                                                         tiny_models, tmp_path):
    work, checkpoint = trained
    labels = converted_cohort.labels()
    test = sorted(converted_cohort.patients('test'), key=lambda p: labels[p])
    train = converted_cohort.patients('train')
    chosen = [next(p for p in train if labels[p] == 1), next(p for p in train if labels[p] == 0),
              test[0], test[-1]]
    data = converted_cohort.subset(tmp_path / 'data', chosen)
    run_tool('tools/test_end_to_end.py', CONFIG, str(checkpoint), '--det-checkpoint',
             str(tiny_models.det), '--data-root', str(data), '--work-dir', str(tmp_path / 'e2e'),
             '--det-score-thr', '0', '--coarse-step', '3', '--no-deployment-file',
             '--cfg-options', FEW[-1])
    rows = pd.read_csv(tmp_path / 'e2e' / 'patient_scores.csv', dtype={'patient_id': str})
    assert sorted(rows['patient_id']) == sorted(chosen)
    assert rows['contour_score'].notna().all()  # windows of the contoured sections
    scored = rows['end_to_end_score'].notna()
    assert (rows.loc[scored, 'n_slices_scored'] > 0).all()
    metrics = json.loads((tmp_path / 'e2e' / 'metrics.json').read_text())
    assert metrics['itt_n_val_patients'] == 2
