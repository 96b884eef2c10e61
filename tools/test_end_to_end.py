"""End-to-end evaluation: every patient gets the score tools/predict.py would give it.

    python tools/test_end_to_end.py CLS_CONFIG CLS_CKPT --det-checkpoint DET.pth \\
        --data-root DATA --work-dir DIR [--det-config CFG] [--det-score-thr 0.5|DET_VAL.json] \\
        [--coarse-step 4] [--device cpu] [--cfg-options k=v ...] [--no-deployment-file] \
        [--fallback-scores CLINICAL_ONLY/patient_scores.csv]

For the training patients and the evaluated split (test; val, with a note, for a
cohort converted without --test-fraction) of DATA, the detector chooses the slices
and the classifier scores them, exactly as for a new patient; beside it the
contour-based score of the same classifier. Writes to DIR:

* patient_scores.csv   one row per patient: split, label, contour_score,
                       end_to_end_score, detection counts, slice recall /
                       precision, tumour_found, risk_group (deployment cut-off)
* metrics.json         both AUCs with DeLong CIs, the paired DeLong test, the
                       deployment cut-off (Youden on the training patients'
                       end-to-end scores) and the statistics at it, detection
                       coverage, the intention-to-treat score (a patient in
                       whom nothing is detected gets the fallback score: the
                       --fallback-scores model's, else the training patients'
                       MSOM prevalence); every number recomputable from the CSV
* end_to_end_scores.csv, roc.png, survival/   the end-to-end risk groups
* deployment.json      the deployment cut-off and the slice threshold its scores
                       used, also written beside CLS_CKPT (unless
                       --no-deployment-file), where tools/predict.py finds both
* patient_rows/        each patient's row as soon as it is scored: a run that is
                       stopped (killed, out of time) and started again with the
                       same models, files and settings re-uses them and scores
                       only the rest (mmnpc/evaluation/row_store.py)
"""
from __future__ import annotations

import argparse
import math
import sys
from functools import partial
from pathlib import Path

from mmengine.config import DictAction

from _common import headless_matplotlib, work_dir_lock


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='end-to-end (detector-selected) evaluation')
    parser.add_argument('config', type=Path, help='stage-2 (msom_*) config')
    parser.add_argument('checkpoint', type=Path, help='stage-2 checkpoint')
    parser.add_argument('--det-checkpoint', required=True, type=Path, help='stage-1 checkpoint')
    parser.add_argument('--det-config', type=Path,
                        help='detector config (default: the one saved in the checkpoint)')
    parser.add_argument('--data-root', required=True, help='converter output folder')
    parser.add_argument('--work-dir', required=True, type=Path, help='output folder')
    parser.add_argument('--det-score-thr', metavar='THR|METRICS_JSON',
                        help='a slice is used when a GTV/GTVln detection scores >= this: a '
                        'number (default 0.5), or a detector metrics.json of the validation '
                        'patients (its fitted slice threshold; mmnpc.inference.det_threshold)')
    parser.add_argument('--coarse-step', type=int, default=4,
                        help='first every N-th slice, then near hits (4), as tools/predict.py')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='K=V',
                        help='overrides of the classifier config, as tools/test.py')
    parser.add_argument('--no-deployment-file', action='store_true',
                        help='do not write deployment.json beside the classifier checkpoint')
    parser.add_argument('--max-train-patients', type=int, metavar='N',
                        help='score only N training patients (drawn stratified by label with '
                             '--seed) for the deployment cut-off; on a large cohort the detector '
                             'pass over every training patient costs more than the cut-off '
                             'gains (default: all)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the --max-train-patients draw (default 0)')
    parser.add_argument('--fallback-scores', type=Path, metavar='CSV',
                        help='patient_scores.csv (patient_id, score) of a fallback model, e.g. '
                        'the clinical-only model of tools/clinical_baseline.py: the score of a '
                        'patient in whom nothing is detected, for the intention-to-treat AUC '
                        '(default: the training patients\' MSOM prevalence)')
    return parser.parse_args()


def read_fallback(path: Path) -> dict:
    """patient_id -> score of a fallback model's patient table."""
    import pandas as pd

    table = pd.read_csv(path, dtype={'patient_id': str})
    missing = [c for c in ('patient_id', 'score') if c not in table]
    if missing:
        raise ValueError(f'--fallback-scores {path}: no column {missing}')
    return dict(zip(table['patient_id'], table['score'].astype(float)))


def _fmt(value, digits: int = 3) -> str:
    return 'undefined' if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f'{value:.{digits}f}'


def load_deployment(args: argparse.Namespace):
    """The classifier config pointed at DATA, the evaluated split and the two models
    (mmnpc.inference.deployment.Deployment); exits on a refused combination."""
    from mmengine.config import Config

    from mmnpc.inference.deployment import Deployment
    from mmnpc.inference.det_threshold import parse_det_threshold, refuse_reported_split
    from mmnpc.utils import resolve_test_split, set_data_root

    try:
        det_thr = parse_det_threshold(args.det_score_thr, args.det_checkpoint)
    except ValueError as error:
        sys.exit(str(error))
    cfg = Config.fromfile(str(args.config))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    set_data_root(cfg, args.data_root)
    eval_split, split_notes = resolve_test_split(cfg)
    try:
        refuse_reported_split(det_thr, eval_split)
    except ValueError as error:
        sys.exit(f'refused: {error}')
    try:
        deployment = Deployment.load(cfg, args.checkpoint, args.det_checkpoint, det_thr,
                                     args.det_config, args.device, args.coarse_step)
    except ValueError as error:
        sys.exit(str(error))
    return deployment, eval_split, split_notes


def cohort_of(args: argparse.Namespace, deployment, dataset: dict):
    """The splits' annotations, the patients' labels and clinical vectors; refuses a
    model trained on an evaluated patient. Returns (cohorts, labels, vectors, note)."""
    from mmengine.fileio import load

    from data_prep.types import DataPrepError
    from mmnpc.datasets.clinical_table import patient_labels, read_clinical_rows
    from mmnpc.evaluation.end_to_end import CohortInputs, sample_training_patients
    from mmnpc.models.detector_transfer import check_detector_patients

    data_root = Path(dataset['data_root'])
    cohorts = [CohortInputs(split, load(str(data_root / ann)), str(data_root / ann),
                            data_root / dataset['data_prefix']['img'],
                            tuple(dataset.get('tumour_classes', ('GTV', 'GTVln'))))
               for split, ann in dataset['ann_files'].items()]
    evaluated = sorted({im['patient_id'] for c in cohorts if c.split != 'train'
                        for im in c.coco['images']})
    try:  # neither model may have been trained on an evaluated patient
        check_detector_patients(str(args.det_checkpoint), evaluated)
        check_detector_patients(str(args.checkpoint), evaluated)
    except ValueError as error:
        sys.exit(f'refused: {error}')
    rows = read_clinical_rows(dataset['clinical_file'])
    patients = sorted({im['patient_id'] for c in cohorts for im in c.coco['images']})
    try:
        labels = patient_labels(rows, patients, dataset['clinical_file'])
    except DataPrepError as error:
        sys.exit(str(error))
    train_note = None
    if args.max_train_patients is not None:
        try:
            cohorts, train_note = sample_training_patients(cohorts, labels,
                                                           args.max_train_patients, args.seed)
        except ValueError as error:
            sys.exit(f'--max-train-patients: {error}')
        patients = sorted({im['patient_id'] for c in cohorts for im in c.coco['images']})
    encoder = deployment.encoder
    vectors = {p: encoder.encode(rows[p], p) if deployment.needs_clinical else None
               for p in patients}
    return cohorts, labels, vectors, train_note


def score_rows(args: argparse.Namespace, deployment, dataset: dict, cohorts, labels, vectors):
    """Every patient's row (patient_rows/ re-used when the models and settings match)."""
    from tqdm import tqdm

    from mmnpc.evaluation.end_to_end import score_cohort
    from mmnpc.evaluation.row_store import RowStore, file_identity, fingerprint_of

    data_root = Path(dataset['data_root'])
    store = RowStore(args.work_dir / 'patient_rows', fingerprint_of({
        'classifier': file_identity(args.checkpoint),
        'detector': file_identity(args.det_checkpoint),
        'det_config': None if args.det_config is None else file_identity(args.det_config),
        'classifier_config': file_identity(args.config), 'cfg_options': args.cfg_options,
        'det_score_thr': deployment.det_thr.value, 'coarse_step': args.coarse_step,
        'clinical': file_identity(dataset['clinical_file']),
        'annotations': [file_identity(data_root / a) for a in dataset['ann_files'].values()]}))
    done = store.load()
    if done or store.n_stale:
        print(f'[end-to-end] {len(done)} patients scored earlier with these models and settings '
              f're-used from {store.folder}; {store.n_stale} stored rows of others ignored')
    return score_cohort(
        cohorts, dataset, labels, done=done, on_row=store.save,
        score_fn_for=lambda p: partial(deployment.detect_and_score, clinical_vector=vectors[p]),
        score_units_fn_for=lambda p: partial(deployment.score_contour_units,
                                             clinical=vectors[p]),
        progress=lambda items: tqdm(list(items), desc='patients', unit='patient'))


def write_outputs(args: argparse.Namespace, deployment, table, evaluation,
                  eval_split: str) -> list[Path]:
    """patient_scores.csv, end_to_end_scores.csv, metrics.json, roc.png, deployment.json
    (returns where it went) and the survival analysis."""
    from mmnpc.evaluation import write_metrics_json
    from mmnpc.evaluation.end_to_end import deployment_record
    from mmnpc.evaluation.msom_report import MsomEvaluation, msom_summary
    from mmnpc.evaluation.roc_plot import plot_roc
    from mmnpc.inference.cutoff import DEPLOYMENT_FILE, checkpoint_fingerprint
    from mmnpc.utils.json_io import write_json

    out, det_thr = args.work_dir, deployment.det_thr
    out.mkdir(parents=True, exist_ok=True)
    e2e_table = evaluation.end_to_end.table
    risk = dict(zip(e2e_table['patient_id'], e2e_table['risk_group']))
    table['risk_group'] = table['patient_id'].map(risk).fillna('')
    table.to_csv(out / 'patient_scores.csv', index=False)
    e2e_table.to_csv(out / 'end_to_end_scores.csv', index=False)
    provenance = {'classifier_checkpoint': checkpoint_fingerprint(args.checkpoint),
                  'detector_checkpoint': checkpoint_fingerprint(args.det_checkpoint),
                  'classifier_config': str(args.config), 'det_score_thr': det_thr.value,
                  'det_score_thr_source': det_thr.source, 'coarse_step': args.coarse_step,
                  'sequence': deployment.cfg.sequence,
                  'max_train_patients': args.max_train_patients,
                  'train_sample_seed': args.seed if args.max_train_patients else None}
    summary = msom_summary(MsomEvaluation(evaluation.report, e2e_table, evaluation.notes))
    summary.update(provenance)
    write_metrics_json(summary, out / 'metrics.json')
    plot_roc(e2e_table, out / 'roc.png', cutoff=evaluation.report['end_to_end_cutoff'],
             splits=('train', eval_split), eval_split=eval_split)
    record = deployment_record(evaluation, **provenance)
    targets = [out / DEPLOYMENT_FILE]
    if not args.no_deployment_file:
        targets.append(args.checkpoint.parent / DEPLOYMENT_FILE)
    for target in targets:
        write_json(target, record)
    _survival(deployment.cfg, out, evaluation.report['end_to_end_cutoff'], eval_split)
    return targets


def print_report(evaluation, eval_split: str, targets: list[Path]) -> None:
    r = evaluation.report
    print(f'[end-to-end] {eval_split} patients: contour-based AUC {_fmt(r["contour_auc"])} '
          f'({_fmt(r["contour_auc_ci_low"])}-{_fmt(r["contour_auc_ci_high"])}); end-to-end AUC '
          f'{_fmt(r["end_to_end_auc"])} ({_fmt(r["end_to_end_auc_ci_low"])}-'
          f'{_fmt(r["end_to_end_auc_ci_high"])}), paired DeLong p {_fmt(r["paired_p_value"])}')
    print(f'[end-to-end] tumour found in {_fmt(r[f"{eval_split}_tumour_found_share"])} of '
          f'{r[f"{eval_split}_n_patients"]} {eval_split} patients, mean slice recall '
          f'{_fmt(r[f"{eval_split}_slice_recall_mean"])}; deployment cut-off '
          f'{_fmt(r["end_to_end_cutoff"], 4)} (training patients) written to '
          + ', '.join(str(t) for t in targets))
    print(f'[end-to-end] intention-to-treat AUC {_fmt(r["itt_auc"])} '
          f'({_fmt(r["itt_auc_ci_low"])}-{_fmt(r["itt_auc_ci_high"])}): '
          f'{r[f"{eval_split}_n_fallback"]} of {r[f"{eval_split}_n_patients"]} {eval_split} '
          f'patients with nothing detected scored by the fallback ({r["itt_fallback"]})')
    for note in evaluation.notes:
        print(f'note: {note}')


def main() -> int:
    args = parse_args()
    headless_matplotlib()
    import mmnpc  # noqa: F401  registers modules, trusted checkpoint loading
    from mmnpc.evaluation.end_to_end import evaluate_end_to_end
    from mmnpc.utils.data_root import innermost_datasets

    deployment, eval_split, split_notes = load_deployment(args)
    dataset = innermost_datasets(deployment.cfg.test_dataloader.dataset)[0]
    cohorts, labels, vectors, train_note = cohort_of(args, deployment, dataset)
    n_patients = len({im['patient_id'] for c in cohorts for im in c.coco['images']})
    det_thr = deployment.det_thr
    print(f'[end-to-end] {n_patients} patients ({", ".join(c.split for c in cohorts)}); '
          f'detector {args.det_checkpoint}, score >= {det_thr.value:.3f} ({det_thr.source}), '
          f'coarse step {args.coarse_step}')
    with work_dir_lock(args.work_dir):  # one writer per work dir (its row store too)
        table = score_rows(args, deployment, dataset, cohorts, labels, vectors)
        try:
            fallback = read_fallback(args.fallback_scores) if args.fallback_scores else None
            evaluation = evaluate_end_to_end(
                table, eval_split=eval_split, fallback=fallback,
                fallback_name=f'scores of {args.fallback_scores}' if fallback else None)
        except ValueError as error:
            sys.exit(str(error))
        evaluation.notes[:0] = split_notes + ([train_note] if train_note else [])
        targets = write_outputs(args, deployment, table, evaluation, eval_split)
    print_report(evaluation, eval_split, targets)
    return 0


def _survival(cfg, out: Path, cutoff: float, split: str) -> None:
    """Kaplan-Meier of the end-to-end risk groups, when the table allows it."""
    from mmnpc.survival import has_survival_columns, run_km

    clinical = Path(cfg.test_dataloader.dataset.clinical_file)
    if not math.isfinite(cutoff) or not has_survival_columns(clinical):
        print('survival analysis skipped: no deployment cut-off or no survival columns')
        return
    try:
        run_km(out / 'end_to_end_scores.csv', clinical, out / 'survival', cutoff=cutoff,
               split=split)
    except ValueError as error:
        print(f'survival analysis not written: {error}')
        return
    print(f'survival analysis written to {out / "survival"}')


if __name__ == '__main__':
    sys.exit(main())
