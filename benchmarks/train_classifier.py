"""Benchmark: does the stage-2 classifier learn, and what do clinical variables add? (not a test)

Trains an image-only and a fusion classifier (default the CPU-sized
``msom_cet1_tiny`` and ``msom_fusion_tiny``) on the same converter output with
``tools/train.py`` (from ``--det-checkpoint`` when given), evaluates each last
checkpoint with ``tools/test.py``, and prints / writes ``WORK_DIR/benchmark.json``
with the validation AUC, its DeLong 95% CI and the statistics at the training
cut-off, side by side. Data: a converter output, e.g.

    python -m data_prep synth work_dirs/bench_cls/cohort --patients 80
    python -m data_prep convert work_dirs/bench_cls/cohort work_dirs/bench_cls/data --workers 2
    python benchmarks/train_classifier.py --data-root work_dirs/bench_cls/data --iters 300
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from train_detector import REPO, run

KEYS = ('auc', 'auc_ci_low', 'auc_ci_high', 'cutoff', 'precision', 'recall', 'specificity',
        'accuracy', 'n_val_patients', 'n_val_positive', 'train_auc')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='train image-only and fusion classifiers')
    parser.add_argument('--data-root', required=True, help='converter output')
    parser.add_argument('--configs', nargs='+',
                        default=['configs/msom_cet1_tiny.py', 'configs/msom_fusion_tiny.py'])
    parser.add_argument('--det-checkpoint', help='stage-1 checkpoint to start from')
    parser.add_argument('--work-dir', default='work_dirs/bench_classifier', help='output folder')
    parser.add_argument('--iters', type=int, help='training iterations (default: the config)')
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value overrides for every config (as tools/train.py)')
    return parser.parse_args()


def train_and_test(config: str, args: argparse.Namespace, work_dir: Path) -> dict:
    """Train ``config``, test its last checkpoint; return its metrics.json."""
    out = work_dir / Path(config).stem
    options = [f'randomness.seed={args.seed}', *args.cfg_options]
    if args.iters:
        # validated once, by tools/test.py below: no in-training validation, no 'best' copy
        options += [f'train_cfg.max_iters={args.iters}', f'train_cfg.val_begin={args.iters + 1}',
                    'default_hooks.checkpoint.save_best=None',
                    f'default_hooks.checkpoint.interval={args.iters}']
    det = ['--det-checkpoint', args.det_checkpoint] if args.det_checkpoint else []
    seconds = run([sys.executable, 'tools/train.py', config, '--data-root', args.data_root,
                   '--work-dir', str(out), *det, '--cfg-options', *options])
    checkpoint = (out / 'last_checkpoint').read_text().strip()
    run([sys.executable, 'tools/test.py', config, checkpoint, '--data-root', args.data_root,
         '--work-dir', str(out)])
    metrics = json.loads((out / 'metrics.json').read_text())
    return {'train_wall_s': round(seconds, 1), **{k: metrics.get(k) for k in KEYS}}


def main() -> None:
    args = parse_args()
    args.data_root = str(Path(args.data_root).resolve())
    work_dir = Path(args.work_dir)
    work_dir = work_dir if work_dir.is_absolute() else REPO / work_dir
    results = {config: train_and_test(config, args, work_dir) for config in args.configs}
    summary = {'data_root': args.data_root, 'det_checkpoint': args.det_checkpoint,
               'iters': args.iters, 'seed': args.seed, 'cfg_options': args.cfg_options,
               'results': results}
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / 'benchmark.json').write_text(json.dumps(summary, indent=2) + '\n')
    print(f'\n{"config":32s} {"val AUC":>8s} {"95% CI (DeLong)":>17s} {"cut-off":>8s} '
          f'{"recall":>7s} {"spec.":>7s}')
    for config, r in results.items():
        def f(key: str) -> str:
            return 'n/a' if r[key] is None else f'{r[key]:.3f}'
        print(f'{Path(config).stem:32s} {f("auc"):>8s} {f("auc_ci_low"):>8s}-{f("auc_ci_high"):<8s} '
              f'{f("cutoff"):>8s} {f("recall"):>7s} {f("specificity"):>7s}')
    print(f'[benchmark] written to {work_dir / "benchmark.json"}')


if __name__ == '__main__':
    main()
