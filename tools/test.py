"""Test (and evaluate) a detector or the MSOM classifier: MMDetection's tools/test.py
plus ``--data-root`` and the project's result files in WORK_DIR.

    python tools/test.py CONFIG CKPT --data-root DATA [--work-dir DIR]
        [--out preds.pkl] [--show] [--show-dir show] [--wait-time 2] [--tta]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

The reported patients are the held-out test split (annotations/test.json, from
data_prep convert --test-fraction); a cohort without one is evaluated on its
validation split, with a note in metrics.json that those figures are
optimistic (the checkpoint was selected on them). See mmnpc.utils.eval_split.

Detector configs: metrics.json holds AP@0.5 of GTV and GTVln and their mean,
for boxes and masks (see mmnpc.evaluation.summary); null marks a value that is
undefined because the split has no ground truth of that class. --show-dir
draws ground truth | prediction side by side for every test slice under
WORK_DIR/<timestamp>/SHOW_DIR.

Classifier configs (top-level ``task = 'msom'``; --show, --show-dir and --tta
do not apply): metrics.json holds the evaluated patients' AUC with its DeLong
95% CI, the cut-off chosen on the training patients and the precision,
recall, specificity and accuracy at it and at the median training score
(mmnpc.evaluation.msom_report); patient_scores.csv one row per patient
(patient_id, split, score, label, risk_group, n_slices); roc.png the ROC
curves. When the clinical table has dmfs_months/dmfs_event/os_months/os_event,
the Kaplan-Meier analysis of the risk groups goes to WORK_DIR/survival/
(mmnpc.survival.run_km).
"""
import argparse
import math
import os.path as osp
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Optional

from mmengine import ConfigDict
from mmengine.dist import is_main_process
from mmengine.runner import Runner

from _common import (add_common_arguments, export_local_rank, headless_matplotlib, load_config,
                     work_dir_lock)


VAL_PATIENTS_NOTE = ('--val-patients: the validation patients, who chose the checkpoint; '
                     'for fitting on them (late fusion), not a reported figure')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true')
    parser.add_argument('--val-patients', action='store_true',
                        help='classifier: score the validation patients (the config\'s val '
                        'loader) instead of the test patients, e.g. for late fusion '
                        '(tools/late_fusion.py); not a reported figure: they chose the checkpoint')
    parser.add_argument('--cam', type=int, nargs='?', const=4, default=0, metavar='N',
                        help='classifier: Grad-CAM of the samples of N evaluated patients per '
                        'outcome group (true/false positives/negatives; N = 4 without a '
                        'value) and the share of each map in GTV / GTVln / ring / elsewhere, '
                        'written to WORK_DIR/cam/ (mmnpc.evaluation.cam_report)')
    add_common_arguments(parser)
    args = parser.parse_args()
    export_local_rank(args)
    return args


def add_tta(cfg: ConfigDict) -> ConfigDict:
    """Wrap the model in test-time augmentation (flip), as MMDetection's test.py."""
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, '
                      'we will set it as default.')
        cfg.tta_model = dict(
            type='DetTTAModel',
            tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, '
                      'we will set it as default.')
        test_data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in test_data_cfg:
            test_data_cfg = test_data_cfg['dataset']
        cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
        flip_tta = dict(
            type='TestTimeAug',
            transforms=[
                [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                [dict(type='PackDetInputs',
                      meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                 'scale_factor', 'flip', 'flip_direction'))],
            ])
        cfg.tta_pipeline[-1] = flip_tta
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg


def write_summary(cfg: ConfigDict, metrics: dict, split: str = 'test',
                  split_notes: tuple = (), checkpoint: Optional[str] = None) -> None:
    """Write WORK_DIR/metrics.json from the CocoAP50Metric results (main process only);
    ``split`` names the evaluated patients, ``split_notes`` say why it is not ``test``;
    the checkpoint's fingerprint ties the fitted slice threshold to it
    (mmnpc.inference.det_threshold)."""
    from mmnpc.evaluation import detection_summary, write_metrics_json
    from mmnpc.inference.cutoff import checkpoint_fingerprint

    if not is_main_process():
        return
    classes = cfg.test_dataloader.dataset.metainfo['classes']
    try:
        summary = detection_summary(metrics, classes)
    except KeyError as error:
        print(f'metrics.json not written: {error}')
        return
    summary['split'] = split
    if checkpoint is not None and osp.isfile(checkpoint):
        summary['checkpoint'] = checkpoint_fingerprint(Path(checkpoint))
    summary['notes'] = list(split_notes) + list(summary['notes'])
    path = osp.join(cfg.work_dir, 'metrics.json')
    write_metrics_json(summary, path)
    print(f'metrics written to {path}')
    for note in summary['notes']:
        print(f'note: {note}')


def is_classifier(cfg: ConfigDict) -> bool:
    """A stage-2 (MSOM classifier) config: its top-level ``task`` is ``'msom'``."""
    return cfg.get('task') == 'msom'


def check_classifier_args(args: argparse.Namespace) -> None:
    """Refuse the detector-only flags for a classifier config."""
    used = [flag for flag, value in (('--show', args.show), ('--show-dir', args.show_dir),
                                     ('--tta', args.tta)) if value]
    if used:
        raise SystemExit(f'{", ".join(used)}: detector options, not available for a '
                         "classifier config (task = 'msom')")


def clinical_table(cfg: ConfigDict) -> Optional[Path]:
    """The test dataset's ``clinical_file``, else ``<data_root>/../clinical.csv``."""
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    if dataset.get('clinical_file'):
        return Path(dataset['clinical_file'])
    data_root = dataset.get('data_root') or cfg.get('data_root')
    return Path(data_root).parent / 'clinical.csv' if data_root else None


def write_classifier_results(cfg: ConfigDict, runner: Runner, split_notes: tuple = ()) -> None:
    """Write metrics.json, patient_scores.csv, roc.png (and survival/) from PatientAUCMetric;
    ``split_notes`` (why the evaluated split is not ``test``) go first among the notes."""
    from mmnpc.evaluation import PatientAUCMetric, msom_summary, write_msom_outputs

    if not is_main_process():
        return
    metrics = [metric for metric in runner.test_evaluator.metrics
               if isinstance(metric, PatientAUCMetric) and metric.last_evaluation is not None]
    if not metrics:
        print('metrics.json not written: use PatientAUCMetric as test_evaluator')
        return
    evaluation = metrics[0].last_evaluation
    evaluation.notes[:0] = list(split_notes)
    paths = write_msom_outputs(evaluation, Path(cfg.work_dir))
    summary = msom_summary(evaluation)
    print(f'metrics written to {paths["metrics"]}; patient scores to '
          f'{paths["patient_scores"]}; ROC curves to {paths["roc"]}')
    print(f'{summary["eval_split"]} patients: {summary["n_val_patients"]}, '
          f'AUC {_fmt(summary["auc"])} (95% CI {_fmt(summary["auc_ci_low"])}-'
          f'{_fmt(summary["auc_ci_high"])}, DeLong); cut-off {_fmt(summary["cutoff"], 4)} '
          f'({summary["cutoff_rule"]}): precision {_fmt(summary["precision"])}, recall '
          f'{_fmt(summary["recall"])}, specificity {_fmt(summary["specificity"])}, accuracy '
          f'{_fmt(summary["accuracy"])}')
    for note in summary['notes']:
        print(f'note: {note}')
    run_survival(cfg, paths['patient_scores'], evaluation.report['cutoff'],
                 evaluation.report['eval_split'])


def write_cam(cfg: ConfigDict, runner: Runner, split: str, per_group: int) -> None:
    """Grad-CAM report of ``per_group`` evaluated patients per outcome group (--cam)."""
    import pandas as pd
    from mmengine.fileio import load
    from tqdm import tqdm

    from mmnpc.evaluation.cam_report import write_cam_report
    from mmnpc.inference.predict_patient import region_spec
    from mmnpc.utils.data_root import innermost_datasets

    if not is_main_process():
        return
    leaf = innermost_datasets(cfg.test_dataloader.dataset)[0]
    root = Path(leaf['data_root'])
    scores = pd.read_csv(Path(cfg.work_dir) / 'patient_scores.csv', dtype={'patient_id': str})
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    out = Path(cfg.work_dir) / 'cam'
    summary = write_cam_report(
        model, runner.test_dataloader.dataset, scores, split,
        lambda name: load(str(root / leaf['ann_files'][name])), region_spec(cfg), out,
        per_group=per_group, progress=lambda items: tqdm(items, desc='Grad-CAM', unit='sample'))
    shares = summary['groups']['all']['mean_over_patients']
    print(f'Grad-CAM of {summary["groups"]["all"]["n_patients"]} {split} patients written to '
          f'{out}: mean share of each map in ' + ', '.join(
              f'{part} {"-" if v is None else f"{100 * v:.0f}%"}' for part, v in shares.items()))


def run_survival(cfg: ConfigDict, patient_scores_csv: Path, cutoff: float, split: str) -> None:
    """Kaplan-Meier analysis into WORK_DIR/survival/ when the clinical table allows it."""
    clinical = clinical_table(cfg)
    if clinical is None or not clinical.is_file():
        print(f'survival analysis skipped: no clinical table ({clinical})')
        return
    try:
        from mmnpc.survival import has_survival_columns, run_km
    except ModuleNotFoundError as error:
        if error.name != 'mmnpc.survival':
            raise
        print('survival analysis skipped: mmnpc.survival is not installed')
        return
    if not has_survival_columns(clinical):
        print(f'survival analysis skipped: {clinical} has no dmfs/os time and event columns')
        return
    if not math.isfinite(cutoff):
        print('survival analysis skipped: no cut-off, so no risk groups')
        return
    out_dir = Path(cfg.work_dir) / 'survival'
    try:
        run_km(patient_scores_csv, clinical, out_dir, cutoff=cutoff, split=split)
    except ValueError as error:  # DataPrepError: the data do not allow the analysis
        print(f'survival analysis not written: {error}')
        return
    print(f'survival analysis written to {out_dir}')


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return 'undefined' if value is None else f'{value:.{digits}f}'


def main() -> None:
    args = parse_args()
    headless_matplotlib(args.show)
    from mmdet.engine.hooks.utils import trigger_visualization_hook
    from mmdet.evaluation import DumpDetResults
    from mmdet.registry import RUNNERS
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.evaluator import DumpResults

    # Reduce the number of repeated compilations and improve testing speed.
    setup_cache_size_limit_of_dynamo()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    from mmnpc.utils import resolve_test_split
    if args.val_patients:
        if not is_classifier(cfg):
            raise SystemExit('--val-patients: a classifier option')
        cfg.test_dataloader = deepcopy(cfg.val_dataloader)
        cfg.test_evaluator = deepcopy(cfg.val_evaluator)
    split, split_notes = resolve_test_split(cfg)
    if args.val_patients:
        split_notes = [VAL_PATIENTS_NOTE]
    print(f'evaluating the {split} split' + ''.join(f'\nnote: {n}' for n in split_notes))
    classifier = is_classifier(cfg)
    if classifier:
        check_classifier_args(args)

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        cfg = add_tta(cfg)

    with work_dir_lock(cfg.work_dir):  # one writer per work dir
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)

        # add `DumpResults` dummy metric
        if args.out is not None:
            assert args.out.endswith(('.pkl', '.pickle')), \
                'The dump file must be a pkl file.'
            dump = DumpResults if classifier else DumpDetResults
            runner.test_evaluator.metrics.append(dump(out_file_path=args.out))

        metrics = runner.test()
        if classifier:
            write_classifier_results(cfg, runner, split_notes)
            if args.cam:
                write_cam(cfg, runner, split, args.cam)
        else:
            write_summary(cfg, metrics, split, split_notes, args.checkpoint)


if __name__ == '__main__':
    main()
