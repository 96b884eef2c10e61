"""MSOM classifier training (issue item 3): seconds per iteration and the data-loading share.

Trains ``configs/msom_fusion_tiny.py`` for a few iterations with ``tools/train.py``
on the converted benchmark cohort (in a child process, for its peak memory) and
reads MMEngine's own per-iteration ``time`` and ``data_time`` from the run's
``scalars.json``: the share of each iteration spent waiting for data is
``data_time / time``. The first iterations (warm-up, lazy initialisation) are
left out.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common import REPO, run_in_child

CONFIG = 'configs/msom_fusion_tiny.py'


def train(data_root: str, work_dir: str, iters: int, seed: int) -> dict:
    """Child process: train ``iters`` iterations, return MMEngine's per-iteration timings."""
    subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--data-root', data_root,
                    '--work-dir', work_dir, '--cfg-options', f'train_cfg.max_iters={iters}',
                    f'train_cfg.val_begin={iters + 1}', 'default_hooks.logger.interval=1',
                    f'randomness.seed={seed}'], cwd=REPO, check=True)
    logs = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    records = [json.loads(line) for line in logs[-1].read_text().splitlines() if line.strip()]
    return {'time': [r['time'] for r in records if 'time' in r],
            'data_time': [r['data_time'] for r in records if 'data_time' in r]}


def run(data_root: Path, work_dir: Path, iters: int = 12, warmup: int = 2, seed: int = 0,
        log_file: Path | None = None) -> dict:
    """Seconds per iteration, data-loading share and peak memory of the tiny fusion classifier."""
    child = run_in_child('bench_classifier:train', log_file, data_root=str(data_root),
                         work_dir=str(Path(work_dir) / 'classifier_train'), iters=iters + warmup,
                         seed=seed)
    times, data_times = child.value['time'][warmup:], child.value['data_time'][warmup:]
    per_iter, data = sum(times) / len(times), sum(data_times) / len(data_times)
    return {'config': CONFIG, 'batch_size': 2, 'image_px': [256, 256], 'timed_iters': len(times),
            'seconds_per_iter': round(per_iter, 3), 'data_time_s_per_iter': round(data, 4),
            'data_loading_share': round(data / per_iter, 4),
            'peak_rss_mib': round(child.peak_rss_mib, 1)}
