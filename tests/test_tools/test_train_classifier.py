"""tools/train.py on a classifier config: detector transfer, resume, patient-overlap refusal."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdet.registry import MODELS
from mmnpc.datasets import ClinicalEncoder
from mmnpc.testing import write_synthetic_coco

REPO = Path(__file__).resolve().parents[2]
CONFIG = 'configs/msom_fusion_tiny.py'
TRAIN_IDS = ['SYN000', 'SYN001', 'SYN002', 'SYN003']  # SYN004, SYN005: validation
SMALL = [f'{loader}.dataset.pipeline.1.scale=(64,64)' for loader in
         ('train_dataloader', 'val_dataloader', 'test_dataloader')]  # 64 px slices, not 256


def _clinical(path: Path, train_age_offset: int = 0) -> list[dict]:
    rows = [{'patient_id': f'SYN{p:03d}', 'age': str(40 + 5 * p + (train_age_offset if p == 0 else 0)),
             'sex': 'MF'[p % 2], 'clinical_stage': ['II', 'III', 'IVA'][p % 3],
             'pni': '' if p == 1 else str(45 + p), 'hgb': str(120 + 3 * p), 'treatment': 'IMRT+CCRT',
             'gtv_dose_gy': '70', 'cisplatin_dose_mg_m2': '100', 'chemo_cycles': '2',
             'msom': str(p % 2), 'split': 'val' if p >= 4 else 'train'} for p in range(6)]
    with open(path, 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('msom_data')
    write_synthetic_coco(root, ('cet1',), n_patients=6, slices_per_patient=4, n_val_patients=2,
                         size=64, seed=0)
    _clinical(root / 'clinical.csv')
    return root


@pytest.fixture(scope='module')
def detector_checkpoint(tmp_path_factory) -> Path:
    """A stage-1 Mask R-CNN checkpoint (random weights) trained 'on' the training patients."""
    init_default_scope('mmdet')
    detector = MODELS.build(Config.fromfile(str(REPO / 'configs' / 'det_cet1_tiny.py')).model)
    path = tmp_path_factory.mktemp('det') / 'det.pth'
    torch.save({'state_dict': detector.state_dict(), 'meta': {'train_patient_ids': TRAIN_IDS}}, path)
    return path


def _train(data_root: Path, work_dir: Path, det: Path, *extra: str, iters: int = 4):
    command = [sys.executable, 'tools/train.py', CONFIG, '--data-root', str(data_root),
               '--work-dir', str(work_dir), '--det-checkpoint', str(det), *extra,
               '--cfg-options', f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
               'default_hooks.checkpoint.interval=4', *SMALL]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def _load(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.mark.slow
def test_train_from_detector_then_resume_keeps_iterations_and_encoder(
        data_root, detector_checkpoint, tmp_path):
    first = _train(data_root, tmp_path, detector_checkpoint)
    assert first.returncode == 0, first.stderr[-3000:]
    assert 'backbone/neck tensors loaded from the detector checkpoint' in first.stdout
    at_4 = _load(tmp_path / 'iter_4.pth')
    assert at_4['meta']['iter'] == 4
    assert at_4['meta']['train_patient_ids'] == TRAIN_IDS
    encoder = at_4['meta']['clinical_encoder']
    assert encoder['fitted_on'] == TRAIN_IDS and encoder['mean']['age'] == pytest.approx(47.5)

    # a training patient's value changes between the runs: the resumed run must keep
    # the checkpoint's statistics, not refit them
    rows = _clinical(data_root / 'clinical.csv', train_age_offset=40)
    refit = ClinicalEncoder(encoder['variables']).fit({r['patient_id']: r for r in rows[:4]})
    assert refit.mean['age'] != pytest.approx(encoder['mean']['age'])
    try:
        second = _train(data_root, tmp_path, detector_checkpoint, '--resume', iters=8)
    finally:
        _clinical(data_root / 'clinical.csv')
    assert second.returncode == 0, second.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 4' in second.stdout
    assert 'clinical encoder differs from the one fitted on the current data' in second.stdout
    at_8 = _load(tmp_path / 'iter_8.pth')
    assert at_8['meta']['iter'] == 8
    assert at_8['meta']['clinical_encoder'] == encoder
    assert at_8['meta']['train_patient_ids'] == TRAIN_IDS
    assert not torch.equal(at_8['state_dict']['fc.weight'], at_4['state_dict']['fc.weight'])


@pytest.mark.slow
def test_detector_trained_on_a_validation_patient_is_refused(data_root, tmp_path):
    leaky = tmp_path / 'leaky_det.pth'
    torch.save({'state_dict': {}, 'meta': {'train_patient_ids': TRAIN_IDS + ['SYN005']}}, leaky)
    result = _train(data_root, tmp_path / 'work', leaky)
    assert result.returncode == 1
    assert 'refused' in result.stderr and "['SYN005']" in result.stderr
    assert not list((tmp_path / 'work').glob('*.pth'))
