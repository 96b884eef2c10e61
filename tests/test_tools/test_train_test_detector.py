"""tools/train.py and tools/test.py on the tiny detector: train, checkpoint, resume, evaluate.

Runs the real command lines (subprocesses, as a user would) on a tiny synthetic
set; a few iterations only, so the numbers say nothing about quality -- only
that the loop, the checkpoint/resume contract and metrics.json work.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmnpc.testing import write_synthetic_coco

REPO = Path(__file__).resolve().parents[2]
CONFIG = 'configs/det_cet1_tiny.py'
pytestmark = pytest.mark.slow  # ~1-3 min: three tool runs of a ResNet-50 Mask R-CNN


def _run(*args: str) -> str:
    """Run a tool from the repo root; fail the test with its output if it fails."""
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f'{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return result.stdout + result.stderr


def _train(data_root: Path, work_dir: Path, max_iters: int, *extra: str) -> str:
    return _run('tools/train.py', CONFIG, '--data-root', str(data_root), '--work-dir', str(work_dir),
                *extra, '--cfg-options', f'train_cfg.max_iters={max_iters}',
                f'train_cfg.val_interval={max_iters}', 'default_hooks.checkpoint.interval=2',
                'default_hooks.logger.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=5')


def _load(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Train 2 iterations, then resume the same work dir up to 4."""
    tmp = tmp_path_factory.mktemp('det')
    data_root = tmp / 'data'
    write_synthetic_coco(data_root, n_patients=3, slices_per_patient=4, n_val_patients=1, size=128)
    work_dir = tmp / 'work'
    _train(data_root, work_dir, 2)
    first = _load(work_dir / 'iter_2.pth')
    resume_log = _train(data_root, work_dir, 4, '--resume')
    return data_root, work_dir, first, resume_log


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


def test_test_tool_writes_metrics_and_pictures(trained):
    data_root, work_dir, _, _ = trained
    test_dir = work_dir / 'test'
    _run('tools/test.py', CONFIG, str(work_dir / 'iter_4.pth'), '--data-root', str(data_root),
         '--work-dir', str(test_dir), '--show-dir', 'show')
    metrics = json.loads((test_dir / 'metrics.json').read_text())
    for key in ('GTV_AP50', 'GTVln_AP50', 'mAP50', 'segm_mAP50'):
        assert key in metrics
        assert metrics[key] is None or 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics['GTV_num_gt'] > 0  # the val patient has tumour, so GTV AP is defined
    assert metrics['GTV_AP50'] is not None
    pictures = list(test_dir.glob('*/show/*.jpg')) + list(test_dir.glob('*/show/*.png'))
    assert len(pictures) == 4  # one ground truth | prediction picture per val slice
