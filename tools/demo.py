"""Run the whole method on the built-in synthetic cohort (``make demo``).

Each step is the command a user would type, printed before it runs, so the demo
doubles as a walk-through: synthesize 160 patients -> convert (56 training, 24
validation, 80 held-out test patients) -> train the CPU-recipe CE-T1WI detector
(``det_cet1_cpu.py``, its full 1300 iterations) -> test it on every 4th slice of
the validation patients (AP@0.5, slice scores; the slice threshold is fitted
there) and every 16th slice of the test patients (AP@0.5) -> stage 2 as the
region comparison recommends (docs/stage2_regions.md): the image-only region
classifier (``msom_cet1_cpu.py``: 64 mm windows around the lesions, patient-level
loss), initialised from the detector's backbone + FPN, tested on the test
patients with Grad-CAM (``--cam``: montages and the share of each map in GTV /
GTVln / ring / elsewhere) and scored on the validation patients -> the
clinical-only model on the same variables -> **late fusion** (a logistic
regression on the clinical and the image score, fitted on the validation
patients; ``tools/late_fusion.py``) -> the paired DeLong comparison of late
fusion, clinical-only and image-only on the test patients -> predict one test
patient from DICOM alone with the fused score and check its detections against
its own RTSTRUCT (tools/check_detections.py) -> WORK_DIR/report.md and
report.html.

The detector's training is most of the run (about 35 minutes on 2 CPU cores);
shorter schedules do not find the tumour cleanly (docs/detection.md, the
shortened schedule: at 500 iterations the demo patient had 73 of its 85 slices
marked); the region classifier's 300 iterations take about 20. What the run
trades instead, each step available by flag: the detector is tested on a share
of the slices (``--val-slice-step``, ``--test-slice-step``; 1 = all); the
end-to-end evaluation -- the detector choosing every training and test
patient's lesions, about 15-20 s per patient, 136 patients; a patient in whom it
finds nothing gets the clinical-only score in the intention-to-treat AUC --
runs with ``--end-to-end``; early fusion (``msom_fusion_cpu.py``: the clinical
vector beside the image features before one FC) and the whole-slice image-only
CNN (``msom_cet1_tiny.py``, the design before regions) with
``--cnn-baselines``. CPU only; every output lands under ``--work-dir``. The
cohort is SYNTHETIC (``python -m data_prep synth``), not patient data, and its
numbers only show that the pipeline works.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from _common import work_dir_lock
from mmnpc.runs import RunFolder, StepFailed, iteration_overrides, run_tool
from mmnpc.utils.eval_split import held_out_split

REPO = Path(__file__).resolve().parents[1]
DET_CONFIG = 'configs/det_cet1_cpu.py'
IMAGE_CONFIG = 'configs/msom_cet1_cpu.py'  # the region comparison's recommendation
EARLY_FUSION_CONFIG = 'configs/msom_fusion_cpu.py'  # its variables include plasma EBV DNA
CLINICAL_CONFIG_NO_EBV = 'configs/msom_fusion_tiny.py'  # the same variables without it
WHOLE_SLICE_CONFIG = 'configs/msom_cet1_tiny.py'
EBV_COLUMN = 'ebv_dna_copies_ml'
OUTCOME_COLUMNS = ('msom', 'msom_site', 'dmfs_months', 'dmfs_event', 'os_months', 'os_event',
                   'split')
DIR_NAMES = ('detector', 'msom_cet1_cpu', 'msom_cet1_cpu_val', 'clinical_baseline',
             'clinical_baseline_val', 'late_fusion', 'msom_fusion_cpu', 'msom_cet1_tiny',
             'end_to_end', 'comparison')


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
    parser.add_argument('--cls-iters', type=int,
                        help='stage-2 iterations (default: each recipe\'s own, 300 for the '
                        'region models)')
    parser.add_argument('--cam', type=int, default=4,
                        help='Grad-CAM of N test patients per outcome group (4)')
    parser.add_argument('--val-slice-step', type=int, default=4,
                        help='test the detector on every k-th slice of the validation patients, '
                        'where its slice threshold is fitted (4)')
    parser.add_argument('--test-slice-step', type=int, default=16,
                        help='test the detector on every k-th slice of the test patients (16)')
    parser.add_argument('--end-to-end', action='store_true',
                        help='also score every training and test patient end to end (the '
                        'detector chooses the lesions; about 15-20 s per patient)')
    parser.add_argument('--cnn-baselines', action='store_true',
                        help='also train and test early fusion (msom_fusion_cpu.py) and the '
                        'whole-slice image-only CNN (msom_cet1_tiny.py)')
    return parser.parse_args(argv)


def run(cmd: list[str], ok_codes: tuple[int, ...] = (0,)) -> None:
    """Run one step as a subprocess, echoing it; stop the demo on failure."""
    try:
        seconds = run_tool(cmd, ok_codes=ok_codes)
    except StepFailed as failed:
        sys.exit(f'demo step failed ({failed})')
    print(f'[demo] step finished in {seconds:.0f} s', flush=True)


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
        options += iteration_overrides(Config.fromfile(str(REPO / config)), iters)
    run([sys.executable, 'tools/train.py', config, '--data-root', str(data), '--work-dir',
         str(out), *extra_train, '--cfg-options', *options])
    return RunFolder(out).last_checkpoint()


def train_and_test(config: str, data: Path, out: Path, seed: int, iters: int | None,
                   extra_train: list[str] = (), extra_test: list[str] = ()) -> tuple[Path, dict]:
    """tools/train.py then tools/test.py on the last checkpoint; return it and metrics.json."""
    checkpoint = train(config, data, out, seed, iters, extra_train)
    run([sys.executable, 'tools/test.py', config, str(checkpoint), '--data-root', str(data),
         '--work-dir', str(out), *extra_test])
    return checkpoint, RunFolder(out).metrics()


def has_ebv_dna(data: Path) -> bool:
    """Whether the converted cohort's clinical.csv has plasma EBV DNA (generator version 2)."""
    with open(data / 'clinical.csv', newline='') as handle:
        return EBV_COLUMN in (csv.DictReader(handle).fieldnames or ())


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
    return RunFolder(out).metrics()


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
    split = held_out_split(row['split'] for row in rows)
    rows = [row for row in rows if row['split'] == split]
    row = rows[0]
    values = {k: (v if v != '' else None) for k, v in row.items()
              if k not in OUTCOME_COLUMNS and k != 'patient_id'}
    path = work_dir / f'clinical_{row["patient_id"]}.json'
    from mmnpc.utils.json_io import write_json
    write_json(path, values)
    return row['patient_id'], path


def detector_stage(data: Path, dirs: dict, args: argparse.Namespace) -> dict:
    """Stage 1: train the detector, test it on validation slices (its slice threshold is
    fitted there) and on test slices; returns checkpoint, metrics and the threshold args."""
    # tools/test.py evaluates the detector below: no evaluation during training
    det_ckpt = train(DET_CONFIG, data, dirs['detector'], args.seed, args.det_iters,
                     extra_options=['train_cfg.val_begin=1000000'])
    val_dir, test_dir = dirs['detector'] / 'val', dirs['detector'] / 'test'
    det_val = test_detector(det_ckpt, data, val_dir, 'val', args.val_slice_step)
    det_thr = slice_threshold(det_val, RunFolder(val_dir).metrics_path)
    det_test = test_detector(det_ckpt, data, test_dir, 'test', args.test_slice_step, show=True)
    return {'checkpoint': det_ckpt, 'val': det_val, 'test': det_test, 'thr_args': det_thr}


def classifier_stage(data: Path, dirs: dict, det: dict, args: argparse.Namespace) -> dict:
    """Stage 2 and its comparison: the image-only region classifier from the detector's
    weights (checkpoint chosen on val, reported on test with Grad-CAM; its validation
    scores fit late fusion), the clinical-only model, late fusion, the optional baselines
    and end-to-end run, and the paired DeLong comparison."""
    det_ckpt = det['checkpoint']
    image_dir = dirs['msom_cet1_cpu']
    cls_ckpt, cls_metrics = train_and_test(
        IMAGE_CONFIG, data, image_dir, args.seed, args.cls_iters,
        ['--det-checkpoint', str(det_ckpt)], ['--cam', str(args.cam)])
    run([sys.executable, 'tools/test.py', IMAGE_CONFIG, str(cls_ckpt), '--data-root', str(data),
         '--work-dir', str(dirs['msom_cet1_cpu_val']), '--val-patients'])
    # the clinical-only model on the same variables (test, and val for the fusion's fit)
    clinical_config = EARLY_FUSION_CONFIG if has_ebv_dna(data) else CLINICAL_CONFIG_NO_EBV
    for name, split in (('clinical_baseline', 'test'), ('clinical_baseline_val', 'val')):
        run([sys.executable, 'tools/clinical_baseline.py', '--data-root', str(data), '--config',
             clinical_config, '--work-dir', str(dirs[name]), '--eval-split', split])
    scores = lambda name, column='': f'{RunFolder(dirs[name]).patient_scores_path}{column}'  # noqa: E731
    # late fusion: a logistic regression on the two scores, fitted on the validation patients
    run([sys.executable, 'tools/late_fusion.py', '--image-scores', scores('msom_cet1_cpu'),
         scores('msom_cet1_cpu_val'), '--clinical-scores', scores('clinical_baseline'),
         scores('clinical_baseline_val'), '--work-dir', str(dirs['late_fusion'])])
    models = [f'late_fusion={scores("late_fusion")}',
              f'clinical_only={scores("clinical_baseline")}',
              f'image_only={scores("msom_cet1_cpu")}']
    if args.cnn_baselines:
        models += cnn_baselines(data, dirs, det_ckpt, clinical_config, args)
    if args.end_to_end:
        # what a user deploys: the detector chooses the lesions; deployment cut-off on train;
        # a patient in whom nothing is found gets the clinical-only score (intention to treat)
        run([sys.executable, 'tools/test_end_to_end.py', IMAGE_CONFIG, str(cls_ckpt),
             '--det-checkpoint', str(det_ckpt), '--data-root', str(data),
             '--work-dir', str(dirs['end_to_end']), '--fallback-scores',
             scores('clinical_baseline'), *det['thr_args']])
        models.append(f'end_to_end={scores("end_to_end", ":end_to_end_score")}')
    run([sys.executable, 'tools/compare_models.py', '--reference', 'late_fusion',
         *[part for model in models for part in ('--model', model)],
         '--eval-split', cls_metrics.get('eval_split', 'test'), '--out', str(dirs['comparison'])])
    return {'checkpoint': cls_ckpt, 'metrics': cls_metrics}


def cnn_baselines(data: Path, dirs: dict, det_ckpt: Path, clinical_config: str,
                  args: argparse.Namespace) -> list[str]:
    """--cnn-baselines: early fusion (when the cohort has EBV DNA) and the whole-slice
    CNN; returns their ``name=scores`` arguments for the comparison."""
    models = []
    scores = lambda name: RunFolder(dirs[name]).patient_scores_path  # noqa: E731
    if clinical_config == EARLY_FUSION_CONFIG:
        train_and_test(EARLY_FUSION_CONFIG, data, dirs['msom_fusion_cpu'], args.seed,
                       args.cls_iters, ['--det-checkpoint', str(det_ckpt)])
        models.append(f'early_fusion={scores("msom_fusion_cpu")}')
    else:
        print(f'[demo] no {EBV_COLUMN} in clinical.csv (generator version 1): early fusion '
              f'({EARLY_FUSION_CONFIG}) not trained')
    train_and_test(WHOLE_SLICE_CONFIG, data, dirs['msom_cet1_tiny'], args.seed,
                   args.cls_iters, ['--det-checkpoint', str(det_ckpt)])
    models.append(f'whole_slice={scores("msom_cet1_tiny")}')
    return models


def predict_one_patient(cohort: Path, data: Path, work_dir: Path, dirs: dict, det: dict,
                        cls_ckpt: Path) -> Path:
    """One test patient from DICOM alone: the fused score at the late fusion's cut-off
    (Youden on the validation patients), the slice threshold fitted on the validation
    slices; then its detections checked against its own contours. Returns the folder."""
    patient_id, clinical_json = held_out_patient(data, work_dir)
    predict_dir = work_dir / f'predict_{patient_id}'
    run([sys.executable, 'tools/predict.py', str(cohort / patient_id), '--det-checkpoint',
         str(det['checkpoint']), '--cls-checkpoint', str(cls_ckpt), '--config', IMAGE_CONFIG,
         '--clinical', str(clinical_json), '--out', str(predict_dir), '--overwrite',
         '--late-fusion', str(dirs['late_fusion']), '--clinical-model',
         str(dirs['clinical_baseline'] / 'clinical_model.json'), *det['thr_args']],
        ok_codes=(0, 2))
    # the demo patient has contours: did the detector find its tumour?
    run([sys.executable, 'tools/check_detections.py', str(predict_dir), str(cohort / patient_id)])
    return predict_dir


def print_summary(dirs: dict, det: dict, cls_metrics: dict, predict_dir: Path,
                  minutes: float, report: tuple[Path, Path]) -> None:
    split = cls_metrics.get('eval_split')
    fused = RunFolder(dirs['late_fusion']).metrics()
    clinical = RunFolder(dirs['clinical_baseline']).metrics()
    check = json.loads((predict_dir / 'detection_check.json').read_text())['classes']['GTV']
    print(f'\n[demo] done in {minutes:.1f} min.')
    for name, metrics in (('validation', det['val']), ('test', det['test'])):
        print(f'  detector AP@0.5 ({name:10s}): GTV {metrics.get("GTV_AP50"):.3f}, GTVln '
              f'{metrics.get("GTVln_AP50"):.3f} ({metrics.get("split")})')
    print(f'  slice threshold          : '
          f'{(det["val"].get("slice_scores", {}).get("any") or {}).get("youden_thr")}')
    for name, metrics in (('image only', cls_metrics), ('clinical only', clinical),
                          ('late fusion', fused)):
        print(f'  {name:13s} AUC ({split}): {metrics.get("auc")} '
              f'[{metrics.get("auc_ci_low")}, {metrics.get("auc_ci_high")}]')
    print(f'  patient {predict_dir.name[len("predict_"):]} GTV     : slice recall '
          f'{check["slice_recall"]:.2f}, precision {check["slice_precision"]}, centroid '
          f'distance median {check["centroid_distance_mm"]["median"]} mm')
    md, page = report
    print(f'  report                   : {md}\n                             {page}')


def run_demo(work_dir: Path, args: argparse.Namespace) -> None:
    start = time.time()
    cohort, data = prepare_data(work_dir, args)
    dirs = {name: work_dir / name for name in DIR_NAMES}
    det = detector_stage(data, dirs, args)
    cls = classifier_stage(data, dirs, det, args)
    predict_dir = predict_one_patient(cohort, data, work_dir, dirs, det, cls['checkpoint'])
    from mmnpc.demo_report import write_demo_report

    report = write_demo_report(work_dir, dirs, predict_dir, minutes=(time.time() - start) / 60,
                               settings=vars(args))
    print_summary(dirs, det, cls['metrics'], predict_dir, (time.time() - start) / 60, report)


def main() -> None:
    args = parse_args()
    if not (args.val_fraction > 0 and args.test_fraction > 0):
        sys.exit('the demo needs validation and test patients '
                 '(--val-fraction, --test-fraction > 0)')
    work_dir = Path(args.work_dir)
    work_dir = work_dir if work_dir.is_absolute() else REPO / work_dir
    with work_dir_lock(work_dir):  # one demo per folder
        work_dir.mkdir(parents=True, exist_ok=True)
        run_demo(work_dir, args)


if __name__ == '__main__':
    main()
