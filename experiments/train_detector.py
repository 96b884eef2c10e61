"""Experiment: does the Stage-1 detector learn? (a script, not a test)

Trains a detection config (default the CPU-sized ``configs/det_cet1_tiny.py``:
Mask R-CNN R50-FPN, random init, 256 px; the CPU recipe is
``configs/det_cet1_cpu.py``) with ``tools/train.py``, validating every
``--val-interval`` iterations, then evaluates the last checkpoint with
``tools/test.py`` on the ``--eval-split`` patients (test, or val: held out from
training too, and nothing is selected on them here). It prints and writes
``WORK_DIR/benchmark.json``:

* the training loss averaged over the first and the last 10% of iterations,
* validation box / mask AP@0.5 (GTV, GTVln, mean) after each interval,
* the final ``metrics.json`` of tools/test.py (per-class AP@0.5 and the slice
  score distributions), seconds per iteration (mean, first and last 10%), the
  wall times of training and testing.

``--iters`` shortens or lengthens the config's iteration schedule the way
``tools/cross_validate.py`` does (milestones scaled in proportion);
``--checkpoint-interval`` keeps intermediate checkpoints for a learning curve;
``--slice-step k`` evaluates every k-th slice of each evaluated patient
(testing takes about 0.4 s per 256 px slice and 2 s per 512 px slice on 2
CPU cores).

A detector that learns shows the loss falling and the AP@0.5 rising above the
first evaluation. Data: ``--data-root`` (a converter output, e.g. from
``python -m data_prep synth`` + ``convert``); without it a small SYNTHETIC set
(mmnpc.testing.write_synthetic_coco: bright ellipses, not patient data) is
written under WORK_DIR/data.

    python experiments/train_detector.py [--data-root DATA] [--iters 300]
    python experiments/train_detector.py --config configs/det_cet1_cpu.py \\
        --data-root DATA --eval-split val --slice-step 4
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmnpc.runs import RunFolder, StepFailed, iteration_overrides
from mmnpc.runs import run_tool as run

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='train the detector and show it learns')
    parser.add_argument('--config', default='configs/det_cet1_tiny.py', help='detection config')
    parser.add_argument('--data-root', help='converter output (default: synthetic set)')
    parser.add_argument('--work-dir', default='work_dirs/bench_detector', help='output folder')
    parser.add_argument('--iters', type=int,
                        help="training iterations (default: the config's schedule)")
    parser.add_argument('--val-interval', type=int, help='iterations between in-training '
                        'evaluations on val (default: none; tools/test.py evaluates the end)')
    parser.add_argument('--checkpoint-interval', type=int,
                        help='iterations between checkpoints (default: the last one only)')
    parser.add_argument('--eval-split', choices=('test', 'val'), default='test',
                        help='patients tools/test.py evaluates the last checkpoint on')
    parser.add_argument('--slice-step', type=int, default=1,
                        help='evaluate every k-th slice of each of those patients (default 1: '
                        'all; mmnpc.datasets.coco_subset)')
    parser.add_argument('--patients', type=int, default=10, help='synthetic patients (no --data-root)')
    parser.add_argument('--seed', type=int, default=0, help='seed of data and training')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed to both tools')
    return parser.parse_args()


def synthetic_data(work_dir: Path, patients: int, seed: int) -> Path:
    """Write (once) the synthetic set for every sequence; return its root."""
    from mmnpc.testing import write_synthetic_coco

    root = work_dir / 'data'
    if not (root / 'cet1' / 'annotations' / 'val.json').exists():
        write_synthetic_coco(root, sequences=('t1', 't2', 'cet1'), n_patients=patients,
                             slices_per_patient=8, tumour_fraction=0.5,
                             n_val_patients=max(1, patients // 4), seed=seed)
    return root


def read_scalars(train_dir: Path) -> list[dict]:
    """The records MMEngine logged to the newest <timestamp>/vis_data/scalars.json."""
    logs = sorted(train_dir.glob('*/vis_data/scalars.json'))
    if not logs:
        return []
    return [json.loads(line) for line in logs[-1].read_text().splitlines() if line.strip()]


def _defined(value: float) -> float | None:
    """None for NaN (undefined AP), else the value."""
    return None if value != value else value


def learning_summary(records: list[dict]) -> dict:
    """Loss at the start and end of training and the AP@0.5 after each evaluation."""
    losses = [r['loss'] for r in records if 'loss' in r]
    tenth = max(1, len(losses) // 10)
    evaluations = [
        {'iter': r.get('step'),
         **{key.split('/', 1)[1]: _defined(r[key]) for key in r
            if key.startswith('coco/') and key.endswith(('AP50', 'mAP_50'))}}
        for r in records if 'coco/bbox_mAP_50' in r]
    return {
        'loss_first_10pct': sum(losses[:tenth]) / tenth if losses else None,
        'loss_last_10pct': sum(losses[-tenth:]) / tenth if losses else None,
        'evaluations': evaluations,
    }


def schedule_options(args: argparse.Namespace, cfg) -> tuple[list[str], int]:
    """cfg-options for the schedule (length, validations, checkpoints) and its length.

    Validation in training runs only at the intermediate intervals: tools/test.py
    evaluates the last checkpoint (MMEngine would also validate it).
    """
    iters = args.iters or int(cfg.train_cfg.max_iters)
    options = iteration_overrides(cfg, iters)
    if args.val_interval and args.val_interval < iters:
        options += [f'train_cfg.val_interval={args.val_interval}',
                    f'train_cfg.val_begin={args.val_interval}']
    else:
        options.append(f'train_cfg.val_begin={iters + 1}')
    if args.checkpoint_interval:
        options.append(f'default_hooks.checkpoint.interval={args.checkpoint_interval}')
    return options, iters


def eval_options(args: argparse.Namespace, sequence: str, data_root: Path,
                 work_dir: Path) -> list[str]:
    """cfg-options pointing tools/test.py at the evaluated patients (and slices).

    tools/test.py reports a split it is pointed at under that file's name
    (``val``, ``test_step4``, ...).
    """
    from mmnpc.datasets.coco_subset import write_every_kth_slice

    if args.slice_step == 1:
        return [] if args.eval_split == 'test' else [
            'test_dataloader.dataset.ann_file=annotations/val.json']
    subset = work_dir / f'{args.eval_split}_step{args.slice_step}.json'
    counts = write_every_kth_slice(data_root / sequence / 'annotations' /
                                   f'{args.eval_split}.json', subset, args.slice_step)
    print(f'[benchmark] evaluating every {args.slice_step}th slice: {counts}', flush=True)
    return [f'test_dataloader.dataset.ann_file={subset}']


def main() -> None:
    args = parse_args()
    work_dir = Path(args.work_dir)
    if not work_dir.is_absolute():
        work_dir = REPO / work_dir
    data_root = Path(args.data_root).resolve() if args.data_root else synthetic_data(
        work_dir, args.patients, args.seed)
    train_dir = work_dir / Path(args.config).stem
    from mmengine.config import Config

    cfg = Config.fromfile(str(REPO / args.config))
    train_options, iters = schedule_options(args, cfg)
    options = [*train_options, f'randomness.seed={args.seed}', *args.cfg_options]
    train_s = run([sys.executable, 'tools/train.py', args.config, '--data-root', str(data_root),
                   '--work-dir', str(train_dir), '--cfg-options', *options])
    checkpoint = str(RunFolder(train_dir).last_checkpoint())
    test_options = [*args.cfg_options, *eval_options(args, cfg.sequence, data_root, work_dir)]
    extra = ['--cfg-options', *test_options] if test_options else []
    test_s = run([sys.executable, 'tools/test.py', args.config, checkpoint, '--data-root',
                  str(data_root), '--work-dir', str(train_dir), *extra])
    records = read_scalars(train_dir)
    times = [r['time'] for r in records if 'loss' in r and 'time' in r]
    tenth = max(1, len(times) // 10)
    result = {
        'config': args.config, 'data_root': str(data_root), 'iters': iters,
        'seed': args.seed, 'eval_split': args.eval_split, 'slice_step': args.slice_step,
        'train_wall_s': round(train_s, 1), 'test_wall_s': round(test_s, 1),
        'seconds_per_iter': sum(times) / len(times) if times else None,
        'seconds_per_iter_first_10pct': sum(times[:tenth]) / tenth if times else None,
        'seconds_per_iter_last_10pct': sum(times[-tenth:]) / tenth if times else None,
        **learning_summary(records),
        'test_metrics': json.loads((train_dir / 'metrics.json').read_text()),
    }
    (work_dir / 'benchmark.json').write_text(json.dumps(result, indent=2) + '\n')
    print('\n[benchmark] ' + json.dumps(result, indent=2))
    print(f'[benchmark] written to {work_dir / "benchmark.json"}')


if __name__ == '__main__':
    try:
        main()
    except StepFailed as failed:
        sys.exit(f'experiment step failed ({failed})')
