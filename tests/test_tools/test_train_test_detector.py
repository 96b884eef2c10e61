"""tools/train.py and tools/test.py on the tiny detector: train, checkpoint, resume, evaluate.

The shared ``tiny_models`` fixture (tests/conftest.py) ran the real command
lines on the shared converted cohort: 2 iterations, then ``--resume`` up to 4.
A few iterations only, so the numbers say nothing about quality -- only that
the loop, the checkpoint/resume contract and metrics.json work.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIG = 'configs/det_cet1_tiny.py'
pytestmark = pytest.mark.slow  # tools/test.py of a ResNet-50 Mask R-CNN on 3 patients' slices


def _load(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.fixture(scope='module')
def trained(tiny_models, converted_cohort):
    return (converted_cohort.data, tiny_models.det_dir, tiny_models.det_first,
            tiny_models.det_resume_log)


def test_first_run_checkpoints_its_state(trained):
    _, _, first, _ = trained
    assert first['meta']['iter'] == 2
    assert {'state_dict', 'optimizer', 'param_schedulers', 'message_hub'} <= set(first)
    assert first['meta']['seed'] == 0  # the configured seed is recorded


def test_resume_continues_the_schedule(trained):
    _, work_dir, first, resume_log = trained
    assert 'resumed epoch: 0, iter: 2' in resume_log
    second = _load(work_dir / 'iter_4.pth')
    assert second['meta']['iter'] == 4
    # the optimizer's momentum buffers were carried over and updated, not restarted
    step_first = first['optimizer']['state'][0]['momentum_buffer']
    step_second = second['optimizer']['state'][0]['momentum_buffer']
    assert step_first.shape == step_second.shape and not torch.equal(step_first, step_second)
    # the warm-up LR kept climbing from iteration 2 instead of starting over
    assert second['param_schedulers'][0]['last_step'] == 4
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')


def test_test_tool_writes_metrics_and_pictures(trained, tmp_path):
    """On every 8th slice of the test patients (as the demo tests on a share of them)."""
    from mmnpc.datasets.coco_subset import write_every_kth_slice

    data_root, work_dir, _, _ = trained
    subset = tmp_path / 'test_step8.json'
    write_every_kth_slice(data_root / 'cet1' / 'annotations' / 'test.json', subset, 8)
    test_dir = tmp_path / 'test'
    result = subprocess.run(
        [sys.executable, 'tools/test.py', CONFIG, str(work_dir / 'iter_4.pth'), '--data-root',
         str(data_root), '--work-dir', str(test_dir), '--show-dir', 'show',
         '--cfg-options', f'test_dataloader.dataset.ann_file={subset}'],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((test_dir / 'metrics.json').read_text())
    assert metrics['split'] == 'test_step8'  # the converter's held-out patients, every 8th slice
    for key in ('GTV_AP50', 'GTVln_AP50', 'mAP50', 'segm_mAP50'):
        assert key in metrics
        assert metrics[key] is None or 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics['GTV_num_gt'] > 0  # the test patients have tumour, so GTV AP is defined
    assert metrics['GTV_AP50'] is not None
    pictures = list(test_dir.glob('*/show/*.jpg')) + list(test_dir.glob('*/show/*.png'))
    images = json.loads(subset.read_text())['images']
    assert len(pictures) == len(images)  # one ground truth | prediction picture per slice tested
