"""Experiment: does the stage-2 classifier learn, and what do clinical variables add? (not a test)

Trains an image-only and a fusion classifier (default the CPU-sized
``msom_cet1_tiny`` and ``msom_fusion_tiny``) on the same converter output with
``tools/train.py`` (from ``--det-checkpoint`` when given), evaluates each last
checkpoint with ``tools/test.py`` (no checkpoint is selected: the last one is
taken), and prints / writes ``WORK_DIR/benchmark.json`` with the AUC of the
evaluated patients (the test split when the cohort has one), its DeLong 95% CI
and the statistics at the training cut-off, side by side. With
``--clinical-baseline`` the clinical-only logistic regression
(tools/clinical_baseline.py) and with ``--end-to-end`` (needs ``--det-checkpoint``)
the deployed score of the first fusion config (tools/test_end_to_end.py) join
them, and tools/compare_models.py tests every model against that fusion config
(paired DeLong) on the patients all of them scored. Data: a converter output, e.g.

    python -m data_prep synth work_dirs/bench_cls/cohort --patients 80
    python -m data_prep convert work_dirs/bench_cls/cohort work_dirs/bench_cls/data --workers 2
    python experiments/train_classifier.py --data-root work_dirs/bench_cls/data --iters 300
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmnpc.runs import RunFolder, StepFailed, last_checkpoint_options
from mmnpc.runs import run_tool as run

REPO = Path(__file__).resolve().parents[1]

KEYS = ('eval_split', 'auc', 'auc_ci_low', 'auc_ci_high', 'cutoff', 'precision', 'recall',
        'specificity', 'accuracy', 'n_val_patients', 'n_val_positive', 'train_auc')
E2E_KEYS = ('eval_split', 'end_to_end_auc', 'end_to_end_auc_ci_low', 'end_to_end_auc_ci_high',
            'end_to_end_cutoff', 'end_to_end_n_val_patients', 'contour_auc', 'paired_p_value',
            'test_tumour_found_share', 'test_slice_recall_mean', 'test_n_no_detection')


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
    parser.add_argument('--clinical-baseline', action='store_true',
                        help='also the clinical-only logistic regression (tools/clinical_baseline.py)')
    parser.add_argument('--end-to-end', action='store_true',
                        help='also the end-to-end score of the first fusion config '
                        '(tools/test_end_to_end.py; needs --det-checkpoint)')
    return parser.parse_args()


def train_and_test(config: str, args: argparse.Namespace, work_dir: Path) -> dict:
    """Train ``config``, test its last checkpoint; return its metrics.json."""
    out = work_dir / Path(config).stem
    options = [f'randomness.seed={args.seed}', *args.cfg_options,
               *last_checkpoint_options(REPO / config, args.iters)]
    det = ['--det-checkpoint', args.det_checkpoint] if args.det_checkpoint else []
    seconds = run([sys.executable, 'tools/train.py', config, '--data-root', args.data_root,
                   '--work-dir', str(out), *det, '--cfg-options', *options])
    checkpoint = str(RunFolder(out).last_checkpoint())
    run([sys.executable, 'tools/test.py', config, checkpoint, '--data-root', args.data_root,
         '--work-dir', str(out)])
    metrics = json.loads((out / 'metrics.json').read_text())
    return {'train_wall_s': round(seconds, 1), **{k: metrics.get(k) for k in KEYS}}


def baselines_and_comparison(args: argparse.Namespace, work_dir: Path) -> dict:
    """Clinical-only and end-to-end models, then the paired DeLong comparison."""
    fusion = next((c for c in args.configs if 'fusion' in Path(c).stem), None)
    if fusion is None:
        sys.exit('--clinical-baseline / --end-to-end need a fusion config among --configs')
    models = {Path(c).stem: work_dir / Path(c).stem / 'patient_scores.csv' for c in args.configs}
    extra: dict = {}
    if args.clinical_baseline:
        out = work_dir / 'clinical_baseline'
        run([sys.executable, 'tools/clinical_baseline.py', '--data-root', args.data_root,
             '--config', fusion, '--work-dir', str(out)])
        metrics = json.loads((out / 'metrics.json').read_text())
        extra['clinical_only'] = {k: metrics.get(k) for k in KEYS}
        models['clinical_only'] = out / 'patient_scores.csv'
    if args.end_to_end:
        if not args.det_checkpoint:
            sys.exit('--end-to-end needs --det-checkpoint')
        out = work_dir / 'end_to_end'
        checkpoint = str(RunFolder(work_dir / Path(fusion).stem).last_checkpoint())
        seconds = run([sys.executable, 'tools/test_end_to_end.py', fusion, checkpoint,
                       '--det-checkpoint', args.det_checkpoint, '--data-root', args.data_root,
                       '--work-dir', str(out), '--no-deployment-file'])
        metrics = json.loads((out / 'metrics.json').read_text())
        extra['end_to_end'] = {'wall_s': round(seconds, 1), **{k: metrics.get(k) for k in E2E_KEYS}}
        models['end_to_end'] = f'{out / "patient_scores.csv"}:end_to_end_score'
    split = json.loads((work_dir / Path(fusion).stem / 'metrics.json').read_text())['eval_split']
    reference = Path(fusion).stem
    run([sys.executable, 'tools/compare_models.py', '--reference', reference, '--eval-split', split,
         *[arg for name, path in models.items() for arg in ('--model', f'{name}={path}')],
         '--out', str(work_dir / 'comparison')])
    extra['comparison'] = json.loads((work_dir / 'comparison' / 'comparison.json').read_text())
    return extra


def main() -> None:
    args = parse_args()
    args.data_root = str(Path(args.data_root).resolve())
    work_dir = Path(args.work_dir)
    work_dir = work_dir if work_dir.is_absolute() else REPO / work_dir
    results = {config: train_and_test(config, args, work_dir) for config in args.configs}
    extra = baselines_and_comparison(args, work_dir) \
        if args.clinical_baseline or args.end_to_end else {}
    summary = {'data_root': args.data_root, 'det_checkpoint': args.det_checkpoint,
               'iters': args.iters, 'seed': args.seed, 'cfg_options': args.cfg_options,
               'results': results, **extra}
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / 'benchmark.json').write_text(json.dumps(summary, indent=2) + '\n')
    print(f'\n{"config":32s} {"AUC":>8s} {"95% CI (DeLong)":>17s} {"cut-off":>8s} '
          f'{"recall":>7s} {"spec.":>7s}  (patients: {results[args.configs[0]]["eval_split"]})')
    for config, r in results.items():
        def f(key: str) -> str:
            return 'n/a' if r[key] is None else f'{r[key]:.3f}'
        print(f'{Path(config).stem:32s} {f("auc"):>8s} {f("auc_ci_low"):>8s}-{f("auc_ci_high"):<8s} '
              f'{f("cutoff"):>8s} {f("recall"):>7s} {f("specificity"):>7s}')
    for model in extra.get('comparison', {}).get('models', []):
        p = model['p_value']
        print(f'{model["model"]:32s} {model["auc"] or float("nan"):8.3f} on {model["n_patients"]} '
              f'common patients; paired DeLong vs reference p = '
              f'{"-" if p is None else f"{p:.3g}"}')
    print(f'[benchmark] written to {work_dir / "benchmark.json"}')


if __name__ == '__main__':
    try:
        main()
    except StepFailed as failed:
        sys.exit(f'experiment step failed ({failed})')
