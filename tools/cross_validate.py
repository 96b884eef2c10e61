"""Repeated patient-level cross-validation of the whole pipeline, as one command (TRIPOD).

    python tools/cross_validate.py DATA --det-config configs/det_cet1_tiny.py \\
        --cls-config configs/msom_fusion_tiny.py --work-dir W [--folds 5] [--repeats 1] \\
        [--seed 0] [--val-fraction 0.2] [--det-iters N] [--cls-iters N] [--end-to-end] \\
        [--det-cfg-options k=v ...] [--cls-cfg-options k=v ...] [--resume] [--folds-only]

DATA is the converter output. Patients are assigned to folds stratified by MSOM
(scikit-learn RepeatedStratifiedKFold, seeded); in every fold the held-out
patients are the test split, and the rest is split (stratified) into train and
val (checkpoint selection). For each fold, with the ordinary tools:

1. W/repeat<R>_fold<F>/data: the fold as a data root (images symlinked, COCO
   files re-partitioned, clinical.csv with the fold's split column);
2. tools/train.py DET_CONFIG      -> det/       (the fold's training patients only)
3. tools/test.py  DET_CONFIG      -> det_test/  (AP@0.5 on the fold's test patients)
4. tools/train.py CLS_CONFIG --det-checkpoint (2) -> cls/
5. tools/test.py  CLS_CONFIG      -> cls_test/  (test patients; cut-off from train)
6. with --end-to-end, tools/test_end_to_end.py -> e2e/

Then W/fold_patient_scores.csv (every fold's per-patient rows), W/cv_summary.json
(fold AUCs with DeLong CIs, their mean and SD, the pooled AUC of each repeat,
detector AP50s, seeds, commands) and W/folds.csv (the fold assignment).
--resume skips the steps whose results exist (refusing changed settings);
--folds-only writes the assignment and the fold roots and trains nothing.
Each tool's output goes to the fold's logs/<step>.log.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

from _common import work_dir_lock
from mmnpc.runs import RunFolder, StepFailed, run_tool

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILE = 'cv_config.json'
FOLDS_FILE = 'folds.csv'
SCORES_FILE = 'fold_patient_scores.csv'
SUMMARY_FILE = 'cv_summary.json'
COMMANDS_FILE = 'commands.json'
DONE_FILE = 'cv_step_done'  # written into a step's folder when its tool exited with status 0
STEP_DIRS = {'det_train': 'det', 'det_test': 'det_test', 'cls_train': 'cls',
             'cls_test': 'cls_test', 'e2e': 'e2e'}
# settings a --resume must share with the run it continues
RESUME_KEYS = ('data_root', 'folds', 'repeats', 'seed', 'val_fraction', 'det_config',
               'cls_config', 'det_iters', 'cls_iters', 'det_cfg_options', 'cls_cfg_options')


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='repeated patient-level cross-validation (detector + classifier per fold)')
    parser.add_argument('data_root', type=Path, help='converter output folder')
    parser.add_argument('--det-config', required=True, type=Path, help='stage-1 config')
    parser.add_argument('--cls-config', required=True, type=Path, help='stage-2 config')
    parser.add_argument('--work-dir', required=True, type=Path, help='output folder')
    parser.add_argument('--folds', type=int, default=5, help='folds per repeat (5)')
    parser.add_argument('--repeats', type=int, default=1, help='repeats of the k-fold split (1)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the fold assignment (0)')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help="share of each fold's non-test patients used for checkpoint "
                        'selection (0.2)')
    parser.add_argument('--det-iters', type=int,
                        help='detector iterations (iteration-based configs; also sets the '
                        'validation and checkpoint interval and rescales the LR steps)')
    parser.add_argument('--cls-iters', type=int, help='classifier iterations (as --det-iters)')
    parser.add_argument('--det-cfg-options', nargs='+', default=[], metavar='K=V',
                        help="passed to the detector's train.py and test.py --cfg-options")
    parser.add_argument('--cls-cfg-options', nargs='+', default=[], metavar='K=V',
                        help="passed to the classifier's train.py and test.py --cfg-options")
    parser.add_argument('--end-to-end', action='store_true',
                        help='also run tools/test_end_to_end.py on every fold')
    parser.add_argument('--resume', action='store_true',
                        help='continue W: skip the steps whose results exist')
    parser.add_argument('--folds-only', action='store_true',
                        help='write folds.csv and the fold data roots, train nothing '
                        '(continue later with --resume)')
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> dict:
    return {'data_root': str(args.data_root.resolve()), 'folds': args.folds,
            'repeats': args.repeats, 'seed': args.seed, 'val_fraction': args.val_fraction,
            'det_config': str(args.det_config.resolve()),
            'cls_config': str(args.cls_config.resolve()), 'det_iters': args.det_iters,
            'cls_iters': args.cls_iters, 'det_cfg_options': list(args.det_cfg_options),
            'cls_cfg_options': list(args.cls_cfg_options)}


def check_work_dir(work_dir: Path, settings: dict, resume: bool) -> None:
    """Refuse to overwrite a previous run, or to resume one with other settings."""
    path = work_dir / CONFIG_FILE
    if not path.is_file():
        return
    if not resume:
        raise SystemExit(f'{work_dir} holds a cross-validation already ({path}); pass --resume '
                         'to continue it or choose another --work-dir')
    previous = json.loads(path.read_text())
    changed = [k for k in RESUME_KEYS if previous.get(k) != settings.get(k)]
    if changed:
        raise SystemExit('--resume with other settings than the run in '
                         f'{work_dir}: ' + '; '.join(f'{k}: {previous.get(k)!r} -> '
                                                     f'{settings.get(k)!r}' for k in changed))


def check_folds_file(path: Path, table) -> None:
    """A resumed run must find the same fold assignment as before."""
    import pandas as pd
    if not path.is_file():
        return
    previous = pd.read_csv(path, dtype=str, keep_default_na=False)
    if (list(previous.columns) != list(table.columns)
            or previous.values.tolist() != table.astype(str).values.tolist()):
        raise SystemExit(f'{path} differs from the fold assignment computed now (have the data '
                         'changed?); use another --work-dir')


def pick_checkpoint(work_dir: Path) -> tuple[Optional[Path], str]:
    """The checkpoint a training run chose (mmnpc.runs.RunFolder.chosen_checkpoint)."""
    return RunFolder(work_dir).chosen_checkpoint()


def checkpoint_meta(path: Path) -> dict:
    import torch
    return torch.load(path, map_location='cpu', weights_only=False, mmap=True).get('meta') or {}


def run_step(command: list[str], log: Path) -> None:
    """Run a tool from the repository root, its output into ``log``; StepFailed on failure."""
    run_tool(command, log=log)


def cfg_options(options: list[str]) -> list[str]:
    return ['--cfg-options', *options] if options else []


class FoldRun:
    """The steps of one fold, each skipped under --resume when its results exist."""

    def __init__(self, args: argparse.Namespace, fold: dict, fold_dir: Path,
                 det_iter_options: list[str], cls_iter_options: list[str]) -> None:
        self.args, self.fold, self.dir = args, fold, fold_dir
        self.data = fold_dir / 'data'
        self.det_iter_options, self.cls_iter_options = det_iter_options, cls_iter_options
        self.commands_path = fold_dir / COMMANDS_FILE
        self.commands = (json.loads(self.commands_path.read_text())
                         if self.commands_path.is_file() else {})

    def done(self, step: str) -> bool:
        """The step's tool exited with status 0 (an interrupted training may have left
        checkpoints) and its results are still there."""
        d = self.dir
        if not (d / STEP_DIRS[step] / DONE_FILE).is_file():
            return False
        return {
            'det_train': lambda: pick_checkpoint(d / 'det')[0] is not None,
            'det_test': lambda: (d / 'det_test' / 'metrics.json').is_file(),
            'cls_train': lambda: pick_checkpoint(d / 'cls')[0] is not None,
            'cls_test': lambda: all((d / 'cls_test' / f).is_file()
                                    for f in ('metrics.json', 'patient_scores.csv')),
            'e2e': lambda: all((d / 'e2e' / f).is_file()
                               for f in ('metrics.json', 'patient_scores.csv')),
        }[step]()

    def steps(self) -> list[str]:
        return ['det_train', 'det_test', 'cls_train', 'cls_test'] + (
            ['e2e'] if self.args.end_to_end else [])

    def finished(self) -> bool:
        return all(self.done(step) for step in self.steps())

    def command(self, step: str) -> list[str]:
        a, d, py = self.args, self.dir, sys.executable
        det_ckpt = str(pick_checkpoint(d / 'det')[0] or d / 'det' / '<detector checkpoint>')
        cls_ckpt = str(pick_checkpoint(d / 'cls')[0] or d / 'cls' / '<classifier checkpoint>')
        common = ['--data-root', str(self.data), '--work-dir']
        det_config, cls_config = str(a.det_config.resolve()), str(a.cls_config.resolve())
        return {
            'det_train': [py, 'tools/train.py', det_config, *common, str(d / 'det'),
                          *cfg_options(self.det_iter_options + a.det_cfg_options)],
            'det_test': [py, 'tools/test.py', det_config, det_ckpt, *common, str(d / 'det_test'),
                         *cfg_options(a.det_cfg_options)],
            'cls_train': [py, 'tools/train.py', cls_config, *common, str(d / 'cls'),
                          '--det-checkpoint', det_ckpt,
                          *cfg_options(self.cls_iter_options + a.cls_cfg_options)],
            'cls_test': [py, 'tools/test.py', cls_config, cls_ckpt, *common, str(d / 'cls_test'),
                         *cfg_options(a.cls_cfg_options)],
            'e2e': [py, 'tools/test_end_to_end.py', cls_config, cls_ckpt, '--det-checkpoint',
                    det_ckpt, *common, str(d / 'e2e'), '--no-deployment-file',
                    *cfg_options(a.cls_cfg_options)],
        }[step]

    def run(self) -> None:
        from mmnpc.evaluation.cross_validation import check_training_patients
        from mmnpc.utils.json_io import write_json
        labels = {'det_train': 'detector training', 'det_test': 'detector test',
                  'cls_train': 'classifier training', 'cls_test': 'classifier test',
                  'e2e': 'end-to-end test'}
        rerun = not self.args.resume
        for step in self.steps():
            if not rerun and self.done(step):
                print(f'[cv]   {labels[step]}: done earlier, skipped', flush=True)
                continue
            rerun = True  # everything after a rerun step depends on it
            out = self.dir / STEP_DIRS[step]
            shutil.rmtree(out, ignore_errors=True)
            command = self.command(step)
            self.commands[step] = {'command': shlex.join(command), 'cwd': str(REPO)}
            write_json(self.commands_path, self.commands)
            log = self.dir / 'logs' / f'{step}.log'
            print(f'[cv]   {labels[step]} ... ', end='', flush=True)
            start = time.monotonic()
            run_step(command, log)
            print(f'{time.monotonic() - start:.0f} s (log {log})', flush=True)
            if step in ('det_train', 'cls_train'):
                ckpt, _ = pick_checkpoint(out)
                if ckpt is None:
                    raise StepFailed(f'{labels[step]} wrote no checkpoint in {out} (log {log})')
                check_training_patients(checkpoint_meta(ckpt).get('train_patient_ids'),
                                        self.fold, f'{ckpt}')
            (out / DONE_FILE).write_text(shlex.join(command) + '\n')

    def info(self) -> dict:
        """Checkpoints, training seeds and classifier test statistics of this fold."""
        record: dict = {}
        for step, key in (('det', 'detector'), ('cls', 'classifier')):
            ckpt, chosen = pick_checkpoint(self.dir / step)
            meta = checkpoint_meta(ckpt) if ckpt else {}
            record[f'{key}_checkpoint'] = str(ckpt) if ckpt else None
            record[f'{key}_checkpoint_choice'] = chosen
            record[f'{key}_training_seed'] = meta.get('seed')
        metrics = json.loads((self.dir / 'cls_test' / 'metrics.json').read_text())
        record['classifier_test'] = {k: metrics.get(k) for k in (
            'eval_split', 'cutoff', 'cutoff_rule', 'precision', 'recall', 'specificity',
            'accuracy', 'train_auc')}
        return record


def fmt(value: Optional[float], digits: int = 3) -> str:
    return 'undefined' if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f'{value:.{digits}f}'


def fmt_auc(record: dict) -> str:
    return (f'AUC {fmt(record["auc"])} (95% CI {fmt(record["auc_ci_low"])}-'
            f'{fmt(record["auc_ci_high"])}; {record["n_patients"]} patients, '
            f'{record["n_positive"]} with MSOM)')


def plan_folds(args: argparse.Namespace, work_dir: Path, settings: dict):
    """Check the settings, make (or re-make, under --resume) the fold assignment and write
    it; return (folds, labels, detector and classifier iteration options)."""
    from mmengine.config import Config

    from mmnpc.evaluation.cross_validation import cohort_labels, folds_table, make_folds
    from mmnpc.runs import iteration_overrides
    from mmnpc.utils.json_io import write_json

    check_work_dir(work_dir, settings, args.resume)
    for path in (args.det_config, args.cls_config):
        if not path.is_file():
            raise SystemExit(f'{path}: no such config')
    if args.end_to_end and not (REPO / 'tools' / 'test_end_to_end.py').is_file():
        raise SystemExit('--end-to-end: tools/test_end_to_end.py not found')
    try:
        iter_options = [iteration_overrides(Config.fromfile(str(config)), iters) if iters else []
                        for config, iters in ((args.det_config, args.det_iters),
                                              (args.cls_config, args.cls_iters))]
        labels = cohort_labels(args.data_root)
        patients = sorted(labels)
        folds = make_folds(patients, [labels[p] for p in patients], k=args.folds,
                           repeats=args.repeats, seed=args.seed, val_fraction=args.val_fraction)
    except ValueError as error:
        raise SystemExit(f'error: {error}')
    table = folds_table(folds)
    check_folds_file(work_dir / FOLDS_FILE, table)
    work_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(work_dir / FOLDS_FILE, index=False)
    write_json(work_dir / CONFIG_FILE, settings)
    print(f'[cv] {len(patients)} patients ({sum(labels.values())} with MSOM), {args.folds} folds '
          f'x {args.repeats} repeat(s), seed {args.seed}; fold assignment in '
          f'{work_dir / FOLDS_FILE}', flush=True)
    return folds, labels, iter_options[0], iter_options[1]


def run_folds(args: argparse.Namespace, work_dir: Path, folds: list, det_iter_options: list,
              cls_iter_options: list) -> tuple[list, int]:
    """Write each fold's data root and run its steps (finished folds skipped under
    --resume); return (the folds' runs, exit status: 1 when a fold failed)."""
    import pandas as pd

    from mmnpc.evaluation.cross_validation import auc_record, fold_name, fold_rows, write_fold_root

    runs = []
    for index, fold in enumerate(folds, start=1):
        fold_dir = work_dir / fold_name(fold)
        try:
            write_fold_root(args.data_root, fold, fold_dir / 'data')
        except ValueError as error:
            raise SystemExit(f'error: {error}')
        run = FoldRun(args, fold, fold_dir, det_iter_options, cls_iter_options)
        runs.append(run)
        head = (f'[cv] repeat {fold["repeat"]} fold {fold["fold"]} ({index}/{len(folds)}): '
                f'train {len(fold["train"])}, val {len(fold["val"])}, test '
                f'{len(fold["test"])} patients')
        if args.folds_only:
            print(f'{head}; data root {fold_dir / "data"}', flush=True)
            continue
        if args.resume and run.finished():
            print(f'{head}: finished earlier, skipped', flush=True)
            continue
        print(head, flush=True)
        start = time.monotonic()
        try:
            run.run()
            scores = pd.read_csv(fold_dir / 'cls_test' / 'patient_scores.csv',
                                 dtype={'patient_id': str})
            rows, _ = fold_rows(fold, scores)
        except (StepFailed, ValueError) as error:
            print(f'\n[cv] repeat {fold["repeat"]} fold {fold["fold"]} failed: {error}',
                  file=sys.stderr)
            return runs, 1
        test = rows[rows['split'] == 'test']
        print(f'[cv]   fold done in {time.monotonic() - start:.0f} s: test '
              f'{fmt_auc(auc_record(test["score"], test["label"]))}', flush=True)
    return runs, 0


def collect_folds(runs: list, args: argparse.Namespace):
    """Every fold's patient rows, detector metrics, checkpoint records, notes and commands."""
    import pandas as pd

    from mmnpc.evaluation.cross_validation import fold_rows, val_seed

    tables, det_metrics, extra, notes, commands = [], {}, {}, [], []
    for run in runs:
        fold = run.fold
        key = (fold['repeat'], fold['fold'])
        scores = pd.read_csv(run.dir / 'cls_test' / 'patient_scores.csv',
                             dtype={'patient_id': str})
        e2e = (pd.read_csv(run.dir / 'e2e' / 'patient_scores.csv', dtype={'patient_id': str})
               if args.end_to_end else None)
        try:
            rows, fold_notes = fold_rows(fold, scores, e2e)
        except ValueError as error:
            raise SystemExit(f'error: {error}')
        tables.append(rows)
        notes += fold_notes
        det_metrics[key] = RunFolder(run.dir / 'det_test').metrics()
        if det_metrics[key].get('split') not in (None, 'test'):
            notes.append(f'repeat {key[0]} fold {key[1]}: detector evaluated on the '
                         f'{det_metrics[key]["split"]} split, not test')
        extra[key] = {**run.info(), 'val_split_seed': val_seed(args.seed, *key, args.folds),
                      'data_root': str(run.data)}
        if extra[key]['classifier_test']['eval_split'] != 'test':
            notes.append(f'repeat {key[0]} fold {key[1]}: classifier evaluated on the '
                         f'{extra[key]["classifier_test"]["eval_split"]} split, not test')
        commands += [{'repeat': key[0], 'fold': key[1], 'step': step, **entry}
                     for step, entry in run.commands.items()]
    return pd.concat(tables, ignore_index=True), det_metrics, extra, notes, commands


def design_record(args: argparse.Namespace, settings: dict, labels: dict) -> dict:
    return {'method': 'repeated stratified k-fold cross-validation at patient level '
                      '(scikit-learn RepeatedStratifiedKFold, stratified by msom); in '
                      'each fold the held-out patients are the test split (nothing is '
                      'chosen on them) and a stratified share of the rest is the val '
                      'split (checkpoint selection)',
            'folds': args.folds, 'repeats': args.repeats, 'val_fraction': args.val_fraction,
            'n_patients': len(labels), 'n_positive': sum(labels.values()),
            'det_config': settings['det_config'], 'cls_config': settings['cls_config'],
            'det_iters': args.det_iters, 'cls_iters': args.cls_iters,
            'det_cfg_options': args.det_cfg_options,
            'cls_cfg_options': args.cls_cfg_options, 'end_to_end': args.end_to_end,
            'data_root': settings['data_root']}


def print_summary(summary: dict, notes: list, work_dir: Path) -> None:
    print(f'[cv] per-patient scores in {work_dir / SCORES_FILE}; summary in '
          f'{work_dir / SUMMARY_FILE}')
    for column, label in (('score', 'contour-based'), ('end_to_end_score', 'end-to-end')):
        if column not in summary['fold_auc']:
            continue
        stats = summary['fold_auc'][column]['all_folds']
        print(f'[cv] {label}: fold AUC mean {fmt(stats["mean"])} +- SD {fmt(stats["sd"])} over '
              f'{stats["n"]} folds' + (f' ({stats["n_undefined"]} undefined)'
                                       if stats['n_undefined'] else ''))
        for entry in summary['pooled']:
            print(f'[cv] {label}: repeat {entry["repeat"]} pooled {fmt_auc(entry[column])}')
    ap = summary['detector_ap50'] or {}
    if ap:
        print('[cv] detector test AP50: ' + ', '.join(
            f'{k} {fmt(v["mean"])} +- {fmt(v["sd"])}' for k, v in ap.items()))
    print(f'[cv] note: {summary["pooling_note"]}')
    for note in notes:
        print(f'[cv] note: {note}')


def cross_validate(args: argparse.Namespace, argv: Optional[list[str]], work_dir: Path) -> int:
    import mmnpc  # noqa: F401  registers the modules the configs name
    from mmnpc.evaluation import write_metrics_json
    from mmnpc.evaluation.cross_validation import summarize_cross_validation

    settings = settings_of(args)
    folds, labels, det_iter_options, cls_iter_options = plan_folds(args, work_dir, settings)
    runs, status = run_folds(args, work_dir, folds, det_iter_options, cls_iter_options)
    if status:
        return status
    if args.folds_only:
        print('[cv] --folds-only: nothing trained')
        return 0
    all_rows, det_metrics, extra, notes, commands = collect_folds(runs, args)
    all_rows.to_csv(work_dir / SCORES_FILE, index=False)
    summary = {
        'design': design_record(args, settings, labels),
        'seeds': {'fold_assignment': args.seed,
                  'val_split': 'seed + repeat * folds + fold (per fold: folds[].val_split_seed)',
                  'training': 'each checkpoint\'s meta["seed"] (folds[].*_training_seed)'},
        **summarize_cross_validation(folds, all_rows, det_metrics, extra),
        'notes': notes,
        'files': {'folds': str(work_dir / FOLDS_FILE),
                  'patient_scores': str(work_dir / SCORES_FILE)},
        'command': shlex.join([sys.executable, str(Path(__file__).resolve()),
                               *(sys.argv[1:] if argv is None else argv)]),
        'commands': commands,
    }
    write_metrics_json(summary, work_dir / SUMMARY_FILE)
    print_summary(summary, notes, work_dir)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    work_dir = args.work_dir.resolve()
    with work_dir_lock(work_dir):  # one cross-validation per folder
        return cross_validate(args, argv, work_dir)


if __name__ == '__main__':
    sys.exit(main())
