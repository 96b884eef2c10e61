"""Run the whole method on the built-in synthetic cohort (``make demo``).

Each step is the command a user would type, printed before it runs, so the demo
doubles as a walk-through: synthesize -> convert (train / val / test patients)
-> train the tiny CE-T1WI detector, test it on the test patients, fit its
slice threshold on the validation patients' slices -> train the tiny fusion
classifier from it (checkpoint chosen on val), test it on the test patients
(AUC, ROC, Kaplan-Meier) -> the baselines on the same patients
(clinical-only logistic regression, image-only CNN, largest-slice CNN) -> end-to-end
evaluation (the detector chooses the slices, deployment cut-off from the
training patients) -> paired DeLong comparison -> predict one test patient from
DICOM alone -> WORK_DIR/report.md and report.html. CPU only; every output lands under
``--work-dir``. The cohort is SYNTHETIC (``python -m data_prep synth``), not
patient data, and its numbers only show that the pipeline works.
"""
from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DET_CONFIG = 'configs/det_cet1_tiny.py'
CLS_CONFIG = 'configs/msom_fusion_tiny.py'
IMAGE_ONLY_CONFIG = 'configs/msom_cet1_tiny.py'
MAXSLICE_CONFIG = 'configs/msom_maxslice_cet1_tiny.py'
OUTCOME_COLUMNS = ('msom', 'msom_site', 'dmfs_months', 'dmfs_event', 'os_months', 'os_event',
                   'split')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mmnpc demo on the synthetic cohort')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where everything is written')
    parser.add_argument('--patients', type=int, default=24, help='synthetic patients')
    parser.add_argument('--seed', type=int, default=0, help='seed of cohort, split and training')
    parser.add_argument('--test-fraction', type=float, default=0.25,
                        help='share of patients held out as the reported test split (0.25)')
    parser.add_argument('--det-iters', type=int, help='detector iterations (default: config)')
    parser.add_argument('--cls-iters', type=int, help='classifier iterations (default: config)')
    return parser.parse_args()


def run(cmd: list[str], ok_codes: tuple[int, ...] = (0,)) -> int:
    """Run one step as a subprocess, echoing it; stop the demo on failure."""
    print(f'\n$ {shlex.join(cmd)}', flush=True)
    start = time.time()
    code = subprocess.run(cmd, cwd=REPO).returncode
    if code not in ok_codes:
        sys.exit(f'demo step failed (exit {code}): {shlex.join(cmd)}')
    print(f'[demo] step finished in {time.time() - start:.0f} s', flush=True)
    return code


def prepare_data(work_dir: Path, patients: int, seed: int,
                 test_fraction: float) -> tuple[Path, Path]:
    """Synthesize the cohort and convert it; return (cohort, converter output)."""
    cohort, data = work_dir / 'cohort', work_dir / 'data'
    if not cohort.exists():
        run([sys.executable, '-m', 'data_prep', 'synth', str(cohort),
             '--patients', str(patients), '--seed', str(seed)])
    run([sys.executable, '-m', 'data_prep', 'convert', str(cohort), str(data),
         '--seed', str(seed), '--test-fraction', str(test_fraction), '--workers', '2',
         '--overwrite'])
    return cohort, data


def train_and_test(config: str, data: Path, out: Path, seed: int, iters: int | None,
                   extra_train: list[str] = (), extra_options: list[str] = ()
                   ) -> tuple[Path, dict]:
    """tools/train.py then tools/test.py on the last checkpoint; return it and metrics.json."""
    options = [f'randomness.seed={seed}', *extra_options]
    if iters:  # the LR milestones follow the length, as in tools/cross_validate.py
        from mmengine.config import Config

        from mmnpc.evaluation.cross_validation import iteration_overrides
        options += iteration_overrides(Config.fromfile(str(REPO / config)), iters)
    run([sys.executable, 'tools/train.py', config, '--data-root', str(data), '--work-dir',
         str(out), *extra_train, '--cfg-options', *options])
    checkpoint = Path((out / 'last_checkpoint').read_text().strip())
    show = ['--show-dir', 'show'] if 'det_' in config else []
    run([sys.executable, 'tools/test.py', config, str(checkpoint), '--data-root', str(data),
         '--work-dir', str(out), *show])
    return checkpoint, json.loads((out / 'metrics.json').read_text())


def fit_slice_threshold(det_ckpt: Path, data: Path, out: Path) -> list[str]:
    """Evaluate the detector on the validation patients; return the --det-score-thr
    arguments that deploy the slice threshold fitted there (none: the 0.5 default,
    when those slices cannot fit one)."""
    run([sys.executable, 'tools/test.py', DET_CONFIG, str(det_ckpt), '--data-root', str(data),
         '--work-dir', str(out), '--cfg-options',
         'test_dataloader.dataset.ann_file=annotations/val.json'])
    metrics = out / 'metrics.json'
    fitted = (json.loads(metrics.read_text()).get('slice_scores', {}).get('any') or {}).get(
        'youden_thr')
    if fitted is None:
        print('[demo] the validation slices fit no slice threshold; using the default 0.5')
        return []
    print(f'[demo] slice threshold {fitted:.3f}: Youden on the validation patients\' slices')
    return ['--det-score-thr', str(metrics)]


def has_test_split(data: Path) -> bool:
    """Whether the converted cohort holds test patients (else val is the reported split)."""
    with open(data / 'clinical.csv', newline='') as handle:
        return any(row['split'] == 'test' for row in csv.DictReader(handle))


def held_out_patient(data: Path, work_dir: Path) -> tuple[str, Path]:
    """The first test patient (val without a test split) and a JSON of its clinical
    predictors (no outcomes)."""
    with open(data / 'clinical.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    split = 'test' if any(row['split'] == 'test' for row in rows) else 'val'
    rows = [row for row in rows if row['split'] == split]
    row = rows[0]
    values = {k: (v if v != '' else None) for k, v in row.items()
              if k not in OUTCOME_COLUMNS and k != 'patient_id'}
    path = work_dir / f'clinical_{row["patient_id"]}.json'
    path.write_text(json.dumps(values, indent=2) + '\n')
    return row['patient_id'], path


def main() -> None:
    args = parse_args()
    work_dir = Path(args.work_dir)
    work_dir = work_dir if work_dir.is_absolute() else REPO / work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    cohort, data = prepare_data(work_dir, args.patients, args.seed, args.test_fraction)
    dirs = {name: work_dir / name for name in ('det_cet1_tiny', 'msom_fusion_tiny',
                                               'msom_cet1_tiny', 'msom_maxslice_cet1_tiny',
                                               'clinical_baseline', 'end_to_end', 'comparison')}
    # tools/test.py evaluates the detector right after training: skip the same
    # evaluation at the end of training (val_begin past the last iteration)
    det_ckpt, det_metrics = train_and_test(DET_CONFIG, data, dirs['det_cet1_tiny'], args.seed,
                                           args.det_iters,
                                           extra_options=['train_cfg.val_begin=1000000'])
    det_thr = (fit_slice_threshold(det_ckpt, data, dirs['det_cet1_tiny'] / 'val')
               if has_test_split(data) else [])  # else val is reported: nothing to fit on
    cls_ckpt, cls_metrics = train_and_test(CLS_CONFIG, data, dirs['msom_fusion_tiny'], args.seed,
                                           args.cls_iters, ['--det-checkpoint', str(det_ckpt)])
    # baselines on the same patients: clinical variables alone, the image pathway alone,
    # the largest-slice CNN
    run([sys.executable, 'tools/clinical_baseline.py', '--data-root', str(data), '--config',
         CLS_CONFIG, '--work-dir', str(dirs['clinical_baseline'])])
    for config, name in ((IMAGE_ONLY_CONFIG, 'msom_cet1_tiny'),
                         (MAXSLICE_CONFIG, 'msom_maxslice_cet1_tiny')):
        train_and_test(config, data, dirs[name], args.seed, args.cls_iters,
                       ['--det-checkpoint', str(det_ckpt)])
    # what a user deploys: the detector chooses the slices; deployment cut-off on train
    # (tools/predict.py below takes the same slice threshold from the deployment.json)
    run([sys.executable, 'tools/test_end_to_end.py', CLS_CONFIG, str(cls_ckpt),
         '--det-checkpoint', str(det_ckpt), '--data-root', str(data),
         '--work-dir', str(dirs['end_to_end']), *det_thr])
    scores = lambda name, column='': f'{dirs[name] / "patient_scores.csv"}{column}'  # noqa: E731
    run([sys.executable, 'tools/compare_models.py', '--reference', 'fusion',
         '--model', f'fusion={scores("msom_fusion_tiny")}',
         '--model', f'clinical_only={scores("clinical_baseline")}',
         '--model', f'image_only={scores("msom_cet1_tiny")}',
         '--model', f'max_slice={scores("msom_maxslice_cet1_tiny")}',
         '--model', f'end_to_end={scores("end_to_end", ":end_to_end_score")}',
         '--eval-split', cls_metrics.get('eval_split', 'test'), '--out', str(dirs['comparison'])])
    patient_id, clinical_json = held_out_patient(data, work_dir)
    predict_dir = work_dir / f'predict_{patient_id}'
    run([sys.executable, 'tools/predict.py', str(cohort / patient_id), '--det-checkpoint',
         str(det_ckpt), '--cls-checkpoint', str(cls_ckpt), '--config', CLS_CONFIG,
         '--clinical', str(clinical_json), '--out', str(predict_dir), '--overwrite'],
        ok_codes=(0, 2))
    from mmnpc.demo_report import write_demo_report

    md, page = write_demo_report(work_dir, dirs, predict_dir, minutes=(time.time() - start) / 60)
    split = cls_metrics.get('eval_split')
    e2e = json.loads((dirs['end_to_end'] / 'metrics.json').read_text())
    print(f'\n[demo] done in {(time.time() - start) / 60:.1f} min.')
    print(f'  detector AP@0.5 ({det_metrics.get("split")})   : {det_metrics.get("mAP50")}')
    print(f'  slice threshold        : {e2e.get("det_score_thr")} '
          f'({e2e.get("det_score_thr_source")})')
    print(f'  classifier AUC ({split})    : {cls_metrics.get("auc")} '
          f'[{cls_metrics.get("auc_ci_low")}, {cls_metrics.get("auc_ci_high")}]')
    print(f'  end-to-end AUC ({split})    : {e2e.get("end_to_end_auc")} '
          f'[{e2e.get("end_to_end_auc_ci_low")}, {e2e.get("end_to_end_auc_ci_high")}]')
    print(f'  report                 : {md}\n                           {page}')


if __name__ == '__main__':
    main()
