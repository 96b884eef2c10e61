"""Experiment: does the stage-1 detector make the classifier better? (a script, not a test)

The transfer experiment of issue 17: on one converter output (one patient
split) and one training budget, every classifier config (default image-only
``msom_cet1_tiny`` and fusion ``msom_fusion_tiny``) is trained from

* ``detector``: the stage-1 checkpoint's backbone + FPN (``--det-checkpoint``),
* ``random``: random weights (no ``--det-checkpoint``),

once per seed (``--seeds``, at least 3 for a claim). Each run is
``tools/train.py`` + ``tools/test.py`` on the last checkpoint (nothing is
selected on any split). Per config and seed the two arms are compared with the
paired DeLong test on the patients both scored (the test split when the cohort
has one, else validation, which the output says). It writes

* ``WORK_DIR/<config>/<arm>/seed<S>/``: each run's checkpoint, ``metrics.json``
  and ``patient_scores.csv`` (every figure below is recomputable from them),
* ``WORK_DIR/transfer.json``: per run the AUC with its DeLong 95% CI, per
  config and arm mean +- SD over seeds, per config and seed the paired p,
* ``WORK_DIR/transfer.md``: the same as a Markdown table.

``--detector-options`` adds cfg-options to the detector arm only, to find out
why a transfer does or does not help (e.g. a lower backbone learning rate:
``optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult=0.1``); ``--tag``
names such a variant's folders and its summary (``transfer_<tag>.json`` /
``.md``; required with ``--detector-options``). ``--cfg-options`` apply to both
arms: feature extraction (a linear probe on frozen detector vs frozen random
features) is ``model.backbone.frozen_stages=4
optim_wrapper.paramwise_cfg.custom_keys.neck.lr_mult=0.0`` in a work dir of its
own. Runs whose ``metrics.json`` exists are not repeated
(resume); each run records its command line options in ``options.json`` and a
resume with other options is refused. The paired difference is AUC(detector
arm) - AUC(random) on the patients both scored.

    python experiments/transfer.py --data-root DATA --det-checkpoint DET/iter_N.pth \\
        --seeds 0 1 2 --iters 500 --work-dir work_dirs/transfer
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from mmnpc.runs import RunFolder, StepFailed, last_checkpoint_options
from mmnpc.runs import run_tool as run

REPO = Path(__file__).resolve().parents[1]

ARMS = ('detector', 'random')
KEYS = ('eval_split', 'auc', 'auc_ci_low', 'auc_ci_high', 'n_val_patients', 'n_val_positive',
        'train_auc')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='detector-initialised vs random-init classifiers')
    parser.add_argument('--data-root', required=True, help='converter output')
    parser.add_argument('--det-checkpoint', required=True,
                        help='stage-1 checkpoint trained on the same training patients')
    parser.add_argument('--configs', nargs='+',
                        default=['configs/msom_cet1_tiny.py', 'configs/msom_fusion_tiny.py'])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2], help='training seeds')
    parser.add_argument('--iters', type=int, help='training iterations (default: the config)')
    parser.add_argument('--work-dir', default='work_dirs/transfer', help='output folder')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for every run (as tools/train.py)')
    parser.add_argument('--detector-options', nargs='+', default=[],
                        help='key=value overrides for the detector-initialised runs only')
    parser.add_argument('--tag', default='detector',
                        help='folder / table name of the detector arm (default detector)')
    return parser.parse_args(argv)


def run_dir(work_dir: Path, config: str, arm: str, seed: int) -> Path:
    return work_dir / Path(config).stem / arm / f'seed{seed}'


def train_and_test(config: str, arm: str, seed: int, args: argparse.Namespace,
                   work_dir: Path) -> dict:
    """One run (resumed when its metrics.json exists); its metrics with the wall time."""
    out = run_dir(work_dir, config, args.tag if arm == 'detector' else arm, seed)
    metrics_file = out / 'metrics.json'
    options = [f'randomness.seed={seed}', *args.cfg_options,
               *last_checkpoint_options(REPO / config, args.iters)]
    init = []
    if arm == 'detector':
        init = ['--det-checkpoint', args.det_checkpoint]
        options += args.detector_options
    recorded = {'config': config, 'data_root': args.data_root, 'init': init, 'options': options}
    if metrics_file.exists():
        before = json.loads((out / 'options.json').read_text()) \
            if (out / 'options.json').exists() else None
        if before != recorded:
            sys.exit(f'{out} holds a run with other settings ({before}); use another --work-dir '
                     'or --tag')
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / 'options.json').write_text(json.dumps(recorded, indent=2) + '\n')
        seconds = run([sys.executable, 'tools/train.py', config, '--data-root', args.data_root,
                       '--work-dir', str(out), *init, '--cfg-options', *options])
        checkpoint = str(RunFolder(out).last_checkpoint())
        run([sys.executable, 'tools/test.py', config, checkpoint, '--data-root', args.data_root,
             '--work-dir', str(out)])
        (out / 'train_wall_s.txt').write_text(f'{seconds:.1f}\n')
    metrics = json.loads(metrics_file.read_text())
    wall = out / 'train_wall_s.txt'
    return {'run_dir': str(out), 'train_wall_s': float(wall.read_text()) if wall.exists() else None,
            **{k: metrics.get(k) for k in KEYS}}


def paired_p(config: str, seed: int, args: argparse.Namespace, work_dir: Path,
             eval_split: str) -> dict:
    """Paired DeLong of the two arms of one config and seed on their common patients.

    ``difference`` is AUC(detector arm) - AUC(random init).
    """
    import pandas as pd

    from mmnpc.evaluation.model_comparison import compare_models

    tables = {}
    for arm in (args.tag, 'random'):
        path = run_dir(work_dir, config, arm, seed) / 'patient_scores.csv'
        tables[arm] = pd.read_csv(path, dtype={'patient_id': str})
    result = compare_models(tables, args.tag, eval_split).set_index('model')
    other = result.loc['random']
    return {'n_patients': int(other['n_patients']),
            'difference': _number(other['difference_vs_reference']),
            'difference_ci_low': _number(other['difference_ci_low']),
            'difference_ci_high': _number(other['difference_ci_high']),
            'p_value': _number(other['p_value'])}


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def summarise(runs: dict, comparisons: dict, args: argparse.Namespace) -> dict:
    """transfer.json: the runs, mean +- SD per config and arm, the paired p per seed."""
    from mmnpc.evaluation.cross_validation import mean_sd

    arms = (args.tag, 'random')
    summary = {}
    for config in args.configs:
        name = Path(config).stem
        per_arm = {}
        for arm in arms:
            aucs = [runs[name][arm][seed]['auc'] for seed in args.seeds]
            stats = mean_sd(aucs)
            per_arm[arm] = {'auc_mean': stats['mean'], 'auc_sd': stats['sd'],
                            'n_defined': stats['n'],
                            'runs': {str(seed): runs[name][arm][seed] for seed in args.seeds}}
        summary[name] = {'arms': per_arm,
                         'paired_delong': {str(s): comparisons[name][s] for s in args.seeds}}
    split = next(iter(next(iter(runs.values()))[args.tag].values()))['eval_split']
    return {'data_root': args.data_root, 'det_checkpoint': args.det_checkpoint,
            'iters': args.iters, 'seeds': args.seeds, 'cfg_options': args.cfg_options,
            'detector_options': args.detector_options, 'eval_split': split,
            'caveat': None if split == 'test' else
            'no test split: validation patients (nothing was selected on them: last checkpoints)',
            'configs': summary}


def markdown(summary: dict) -> str:
    """One row per config, arm and seed, then the mean +- SD rows."""
    def f(value, digits=3):
        return 'n/a' if value is None or math.isnan(value) else f'{value:.{digits}f}'

    lines = [f'Patients: {summary["eval_split"]} split' + (
        f' ({summary["caveat"]})' if summary['caveat'] else ''), '',
        '| config | init | seed | AUC | 95% CI (DeLong) | paired DeLong p (vs random, same seed) |',
        '|---|---|---|---|---|---|']
    for config, entry in summary['configs'].items():
        for arm, stats in entry['arms'].items():
            for seed, r in stats['runs'].items():
                p = entry['paired_delong'][seed]['p_value'] if arm != 'random' else None
                lines.append(f'| `{config}` | {arm} | {seed} | {f(r["auc"])} | '
                             f'{f(r["auc_ci_low"])}-{f(r["auc_ci_high"])} | '
                             f'{"-" if arm == "random" else f(p)} |')
            lines.append(f'| `{config}` | {arm} | mean +- SD ({stats["n_defined"]} seeds) | '
                         f'{f(stats["auc_mean"])} +- {f(stats["auc_sd"])} | | |')
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.tag == 'random':
        sys.exit('--tag random would overwrite the random-init runs')
    if args.detector_options and args.tag == 'detector':
        sys.exit('--detector-options need a --tag of their own (the plain detector arm is '
                 '"detector")')
    args.data_root = str(Path(args.data_root).resolve())
    args.det_checkpoint = str(Path(args.det_checkpoint).resolve())
    work_dir = Path(args.work_dir)
    work_dir = work_dir if work_dir.is_absolute() else REPO / work_dir
    runs: dict = {}
    comparisons: dict = {}
    for config in args.configs:
        name = Path(config).stem
        runs[name] = {args.tag: {}, 'random': {}}
        for seed in args.seeds:
            for arm in ARMS:
                key = args.tag if arm == 'detector' else arm
                runs[name][key][seed] = train_and_test(config, arm, seed, args, work_dir)
        split = runs[name][args.tag][args.seeds[0]]['eval_split']
        comparisons[name] = {seed: paired_p(config, seed, args, work_dir, split)
                             for seed in args.seeds}
    summary = summarise(runs, comparisons, args)
    stem = 'transfer' if args.tag == 'detector' else f'transfer_{args.tag}'
    from mmnpc.utils.json_io import write_json
    write_json(work_dir / f'{stem}.json', summary)
    table = markdown(summary)
    (work_dir / f'{stem}.md').write_text(table)
    print('\n' + table)
    print(f'[transfer] written to {work_dir / stem}.json and {stem}.md')


if __name__ == '__main__':
    try:
        main()
    except StepFailed as failed:
        sys.exit(f'experiment step failed ({failed})')
