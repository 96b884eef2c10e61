"""Run the whole method on the built-in synthetic cohort (``make demo``).

Each step is the command a user would type, printed before it runs, so the demo
doubles as a walk-through: synthesize 160 patients -> convert (56 training, 24
validation, 80 held-out test patients) -> train the CPU-recipe CE-T1WI detector
(``det_cet1_cpu.py``, its full 1300 iterations) -> test it on every 4th slice of
the validation patients (AP@0.5, slice scores; the slice threshold is fitted
there) and every 16th slice of the test patients (AP@0.5) -> train the tiny
fusion classifier from it and test it on the test patients (AUC with CI, ROC,
Kaplan-Meier) -> the clinical-only baseline and the paired DeLong comparison ->
predict one test patient from DICOM alone and check its detections against its
own RTSTRUCT (tools/check_detections.py) -> WORK_DIR/report.md and report.html.

The detector's training is most of the run (about 35 of 60 minutes on 2 CPU
cores); shorter schedules do not find the tumour cleanly (README "Stage 1", the
shortened schedule: at 500 iterations the demo patient had 73 of its 85 slices
marked). What the run trades instead, each step available by flag: the detector
is tested on a share of the slices (``--val-slice-step``, ``--test-slice-step``;
1 = all); the end-to-end evaluation of the whole cohort -- the detector choosing
every training and test patient's slices, about 10-15 s per patient, 136
patients -- runs with ``--end-to-end`` (then the deployment cut-off comes from
it), and the image-only and largest-slice CNN baselines with
``--cnn-baselines``. CPU only; every output lands under ``--work-dir``. The
cohort is SYNTHETIC (``python -m data_prep synth``), not patient data, and its
numbers only show that the pipeline works.
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
DET_CONFIG = 'configs/det_cet1_cpu.py'
CLS_CONFIG = 'configs/msom_fusion_tiny.py'
IMAGE_ONLY_CONFIG = 'configs/msom_cet1_tiny.py'
MAXSLICE_CONFIG = 'configs/msom_maxslice_cet1_tiny.py'
OUTCOME_COLUMNS = ('msom', 'msom_site', 'dmfs_months', 'dmfs_event', 'os_months', 'os_event',
                   'split')
DIR_NAMES = ('detector', 'msom_fusion_tiny', 'msom_cet1_tiny', 'msom_maxslice_cet1_tiny',
             'clinical_baseline', 'end_to_end', 'comparison')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mmnpc demo on the synthetic cohort')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where everything is written')
    parser.add_argument('--patients', type=int, default=160, help='synthetic patients (160)')
    parser.add_argument('--seed', type=int, default=0, help='seed of cohort, split and training')
    parser.add_argument('--generator-version', type=int, choices=(1, 2), default=2,
                        help='synthetic generator version (2; 1 made the figures measured '
                        'before 2026-12-07)')
    parser.add_argument('--val-fraction', type=float, default=0.15,
                        help='share of patients for validation (0.15)')
    parser.add_argument('--test-fraction', type=float, default=0.5,
                        help='share of patients held out as the reported test split (0.5)')
    parser.add_argument('--det-iters', type=int,
                        help='detector iterations (default: the recipe\'s 1300)')
    parser.add_argument('--cls-iters', type=int, default=500, help='classifier iterations (500)')
    parser.add_argument('--val-slice-step', type=int, default=4,
                        help='test the detector on every k-th slice of the validation patients, '
                        'where its slice threshold is fitted (4)')
    parser.add_argument('--test-slice-step', type=int, default=16,
                        help='test the detector on every k-th slice of the test patients (16)')
    parser.add_argument('--end-to-end', action='store_true',
                        help='also score every training and test patient end to end (the '
                        'detector chooses the slices; about 10-15 s per patient)')
    parser.add_argument('--cnn-baselines', action='store_true',
                        help='also train and test the image-only and largest-slice CNNs')
    return parser.parse_args(argv)


def run(cmd: list[str], ok_codes: tuple[int, ...] = (0,)) -> int:
    """Run one step as a subprocess, echoing it; stop the demo on failure."""
    print(f'\n$ {shlex.join(cmd)}', flush=True)
    start = time.time()
    code = subprocess.run(cmd, cwd=REPO).returncode
    if code not in ok_codes:
        sys.exit(f'demo step failed (exit {code}): {shlex.join(cmd)}')
    print(f'[demo] step finished in {time.time() - start:.0f} s', flush=True)
    return code


def prepare_data(work_dir: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """Synthesize the cohort and convert it; return (cohort, converter output)."""
    cohort, data = work_dir / 'cohort', work_dir / 'data'
    if not cohort.exists():
        run([sys.executable, '-m', 'data_prep', 'synth', str(cohort),
             '--patients', str(args.patients), '--seed', str(args.seed),
             '--generator-version', str(args.generator_version)])
    run([sys.executable, '-m', 'data_prep', 'convert', str(cohort), str(data),
         '--seed', str(args.seed), '--val-fraction', str(args.val_fraction),
         '--test-fraction', str(args.test_fraction), '--workers', '2', '--overwrite'])
    return cohort, data


def train(config: str, data: Path, out: Path, seed: int, iters: int | None,
          extra_train: list[str] = (), extra_options: list[str] = ()) -> Path:
    """tools/train.py; return the last checkpoint."""
    options = [f'randomness.seed={seed}', *extra_options]
    if iters:  # the LR milestones follow the length, as in tools/cross_validate.py
        from mmengine.config import Config

        from mmnpc.evaluation.cross_validation import iteration_overrides
        options += iteration_overrides(Config.fromfile(str(REPO / config)), iters)
    run([sys.executable, 'tools/train.py', config, '--data-root', str(data), '--work-dir',
         str(out), *extra_train, '--cfg-options', *options])
    return Path((out / 'last_checkpoint').read_text().strip())


def train_and_test(config: str, data: Path, out: Path, seed: int, iters: int | None,
                   extra_train: list[str] = ()) -> tuple[Path, dict]:
    """tools/train.py then tools/test.py on the last checkpoint; return it and metrics.json."""
    checkpoint = train(config, data, out, seed, iters, extra_train)
    run([sys.executable, 'tools/test.py', config, str(checkpoint), '--data-root', str(data),
         '--work-dir', str(out)])
    return checkpoint, json.loads((out / 'metrics.json').read_text())


def test_detector(det_ckpt: Path, data: Path, out: Path, split: str, step: int,
                  show: bool = False) -> dict:
    """tools/test.py on every ``step``-th slice of the ``split`` patients (all slices
    for step 1); return its metrics.json (the split is named ``<split>_step<k>``)."""
    from mmnpc.datasets.coco_subset import write_every_kth_slice

    ann = data / 'cet1' / 'annotations' / f'{split}.json'
    if step > 1:
        subset = out / f'{split}_step{step}.json'
        counts = write_every_kth_slice(ann, subset, step)
        print(f'[demo] detector on every {step}th slice of the {split} patients: '
              f'{counts["images"]} of {counts["of_images"]} slices, {counts["patients"]} '
              'patients', flush=True)
        ann = subset
    run([sys.executable, 'tools/test.py', DET_CONFIG, str(det_ckpt), '--data-root', str(data),
         '--work-dir', str(out), *(['--show-dir', 'show'] if show else []),
         '--cfg-options', f'test_dataloader.dataset.ann_file={ann}'])
    return json.loads((out / 'metrics.json').read_text())


def slice_threshold(metrics: dict, source: Path) -> list[str]:
    """The --det-score-thr arguments that deploy the slice threshold fitted on the
    validation patients' slices (none: the 0.5 default, when they fit none)."""
    fitted = (metrics.get('slice_scores', {}).get('any') or {}).get('youden_thr')
    if fitted is None:
        print('[demo] the validation slices fit no slice threshold; using the default 0.5')
        return []
    print(f'[demo] slice threshold {fitted:.3f}: Youden on the validation patients\' slices')
    return ['--det-score-thr', str(source)]


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
    if not (args.val_fraction > 0 and args.test_fraction > 0):
        sys.exit('the demo needs validation and test patients '
                 '(--val-fraction, --test-fraction > 0)')
    work_dir = Path(args.work_dir)
    work_dir = work_dir if work_dir.is_absolute() else REPO / work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    cohort, data = prepare_data(work_dir, args)
    dirs = {name: work_dir / name for name in DIR_NAMES}
    # stage 1; tools/test.py evaluates the detector below: no evaluation during training
    det_ckpt = train(DET_CONFIG, data, dirs['detector'], args.seed, args.det_iters,
                     extra_options=['train_cfg.val_begin=1000000'])
    val_dir, test_dir = dirs['detector'] / 'val', dirs['detector'] / 'test'
    det_val = test_detector(det_ckpt, data, val_dir, 'val', args.val_slice_step)
    det_thr = slice_threshold(det_val, val_dir / 'metrics.json')
    det_test = test_detector(det_ckpt, data, test_dir, 'test', args.test_slice_step, show=True)
    # stage 2 from the detector's weights, checkpoint chosen on val, reported on test
    cls_ckpt, cls_metrics = train_and_test(CLS_CONFIG, data, dirs['msom_fusion_tiny'], args.seed,
                                           args.cls_iters, ['--det-checkpoint', str(det_ckpt)])
    # baselines on the same patients: clinical variables alone (and, by flag, the image
    # pathway alone and the largest-slice CNN)
    run([sys.executable, 'tools/clinical_baseline.py', '--data-root', str(data), '--config',
         CLS_CONFIG, '--work-dir', str(dirs['clinical_baseline'])])
    scores = lambda name, column='': f'{dirs[name] / "patient_scores.csv"}{column}'  # noqa: E731
    models = [f'fusion={scores("msom_fusion_tiny")}',
              f'clinical_only={scores("clinical_baseline")}']
    if args.cnn_baselines:
        for config, name in ((IMAGE_ONLY_CONFIG, 'msom_cet1_tiny'),
                             (MAXSLICE_CONFIG, 'msom_maxslice_cet1_tiny')):
            train_and_test(config, data, dirs[name], args.seed, args.cls_iters,
                           ['--det-checkpoint', str(det_ckpt)])
        models += [f'image_only={scores("msom_cet1_tiny")}',
                   f'max_slice={scores("msom_maxslice_cet1_tiny")}']
    if args.end_to_end:
        # what a user deploys: the detector chooses the slices; deployment cut-off on train
        # (tools/predict.py below takes it and the slice threshold from deployment.json)
        run([sys.executable, 'tools/test_end_to_end.py', CLS_CONFIG, str(cls_ckpt),
             '--det-checkpoint', str(det_ckpt), '--data-root', str(data),
             '--work-dir', str(dirs['end_to_end']), *det_thr])
        models.append(f'end_to_end={scores("end_to_end", ":end_to_end_score")}')
    run([sys.executable, 'tools/compare_models.py', '--reference', 'fusion',
         *[part for model in models for part in ('--model', model)],
         '--eval-split', cls_metrics.get('eval_split', 'test'), '--out', str(dirs['comparison'])])
    # one test patient from DICOM alone; without --end-to-end, prediction takes the
    # contour-based cut-off of the classifier's metrics.json (it says so) and the slice
    # threshold fitted on the validation slices
    patient_id, clinical_json = held_out_patient(data, work_dir)
    predict_dir = work_dir / f'predict_{patient_id}'
    run([sys.executable, 'tools/predict.py', str(cohort / patient_id), '--det-checkpoint',
         str(det_ckpt), '--cls-checkpoint', str(cls_ckpt), '--config', CLS_CONFIG,
         '--clinical', str(clinical_json), '--out', str(predict_dir), '--overwrite',
         *([] if args.end_to_end else det_thr)], ok_codes=(0, 2))
    # the demo patient has contours: did the detector find its tumour?
    run([sys.executable, 'tools/check_detections.py', str(predict_dir), str(cohort / patient_id)])
    from mmnpc.demo_report import write_demo_report

    md, page = write_demo_report(work_dir, dirs, predict_dir, minutes=(time.time() - start) / 60,
                                 settings=vars(args))
    split = cls_metrics.get('eval_split')
    check = json.loads((predict_dir / 'detection_check.json').read_text())['classes']['GTV']
    print(f'\n[demo] done in {(time.time() - start) / 60:.1f} min.')
    for name, metrics in (('validation', det_val), ('test', det_test)):
        print(f'  detector AP@0.5 ({name:10s}): GTV {metrics.get("GTV_AP50"):.3f}, GTVln '
              f'{metrics.get("GTVln_AP50"):.3f} ({metrics.get("split")})')
    print(f'  slice threshold          : '
          f'{(det_val.get("slice_scores", {}).get("any") or {}).get("youden_thr")}')
    print(f'  classifier AUC ({split})    : {cls_metrics.get("auc")} '
          f'[{cls_metrics.get("auc_ci_low")}, {cls_metrics.get("auc_ci_high")}]')
    print(f'  patient {patient_id} GTV     : slice recall {check["slice_recall"]:.2f}, '
          f'precision {check["slice_precision"]}, centroid distance median '
          f'{check["centroid_distance_mm"]["median"]} mm')
    print(f'  report                   : {md}\n                             {page}')


if __name__ == '__main__':
    main()
