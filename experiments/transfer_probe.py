"""The fair transfer test, frozen part: what do the detector's features know? (a script)

Issue 31, item 4. The fine-tuning comparison (``experiments/transfer.py``)
asks which initialisation trains better in a fixed budget; this one asks what
the frozen features hold. On one converter output (one patient split):

1. every arm turns each patient into one vector of frozen features
   (:mod:`mmnpc.inference.patient_features`; the mean over a slice's regions,
   then over the patient's slices, as the classifier's scores are averaged):

   * ``random_s<S>`` (one per ``--random-seeds``): the region classifier's
     backbone + FPN (``--config``, default ``configs/msom_cet1_cpu.py``) with
     random weights drawn with seed S, reading the config's lesion windows;
   * ``detector``: the same network initialised from the stage-1 checkpoint
     (``--det-checkpoint``, trained on the same training patients), same windows;
   * ``detector_roi``: the detector itself, RoIAlign of its FPN inside each
     lesion box + ``--margin-mm`` on the whole slice (the Mask R-CNN mechanism);
   * ``imagenet`` / ``coco`` when the user has the file (``--imagenet`` an
     ImageNet ResNet-50 checkpoint, ``--coco`` a COCO Mask R-CNN R50-FPN one);

2. each arm gets an L2 logistic regression on the training patients, its
   strength chosen by inner stratified cross-validation on those patients
   (:mod:`mmnpc.evaluation.linear_probe`, once per ``--inner-seeds`` fold
   assignment; the scores of the seeds are averaged);

3. the test patients are only scored: per arm the AUC with its DeLong 95% CI;
   every detector / pretrained arm against each random seed by the paired
   DeLong test; and the smallest AUC difference this test split could see
   (2.8 x the paired SE: 80% power at two-sided 5%), so that "no difference"
   can be read against what was detectable.

Writes WORK_DIR/features/<arm>.npz (resume: an arm whose file exists is not
re-extracted), WORK_DIR/<arm>/patient_scores.csv, WORK_DIR/transfer_probe.json
and .md.

    python experiments/transfer_probe.py --data-root DATA --det-checkpoint DET.pth \\
        --work-dir work_dirs/transfer_probe [--random-seeds 0 1 2 3 4]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DETECTOR_ARMS = ('detector', 'detector_roi', 'imagenet', 'coco')
POWER_FACTOR = 1.96 + 0.84  # two-sided 5%, 80% power


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='frozen detector vs random features, L2 probe')
    parser.add_argument('--data-root', required=True, help='converter output with a test split')
    parser.add_argument('--det-checkpoint', help='stage-1 checkpoint (same training patients)')
    parser.add_argument('--config', default='configs/msom_cet1_cpu.py',
                        help='region classifier config: its windows and backbone')
    parser.add_argument('--work-dir', required=True, type=Path)
    parser.add_argument('--random-seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument('--inner-seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4],
                        help='fold assignments of the inner cross-validation')
    parser.add_argument('--inner-folds', type=int, default=5)
    parser.add_argument('--eval-split', default='test', choices=('test', 'val'))
    parser.add_argument('--margin-mm', type=float, default=5.0,
                        help='margin around each box for detector_roi')
    parser.add_argument('--imagenet', help='ImageNet ResNet-50 checkpoint (optional)')
    parser.add_argument('--coco', help='COCO Mask R-CNN R50-FPN checkpoint (optional)')
    parser.add_argument('--regions-per-structure', type=int, default=4,
                        help="each patient's k largest sections of each structure (the "
                             "recipe scores 8; 4 halves the extraction time)")
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def arms_of(args: argparse.Namespace) -> list[str]:
    arms = [f'random_s{seed}' for seed in args.random_seeds]
    if args.det_checkpoint:
        arms += ['detector', 'detector_roi']
    arms += [name for name in ('imagenet', 'coco') if getattr(args, name)]
    return arms


def build_config(args: argparse.Namespace):
    from mmengine.config import Config

    from mmnpc.utils.data_root import set_data_root
    cfg = Config.fromfile(str(REPO / args.config) if not Path(args.config).is_absolute()
                          else args.config)
    set_data_root(cfg, args.data_root)
    return cfg


def build_dataset(cfg, eval_split: str, regions_per_structure: int | None = None):
    from mmdet.registry import DATASETS
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    dataset_cfg['ann_files'] = {'train': 'annotations/train.json',
                                eval_split: f'annotations/{eval_split}.json'}
    if regions_per_structure is not None:
        dataset_cfg['regions_per_structure'] = regions_per_structure
    return DATASETS.build(dataset_cfg)


def build_classifier(cfg, arm: str, args: argparse.Namespace):
    """The region classifier's network with the arm's weights, eval mode."""
    import torch
    from mmdet.registry import MODELS
    model_cfg = cfg.model.copy()
    if arm == 'detector':
        model_cfg['det_checkpoint'] = args.det_checkpoint
    elif arm == 'coco':
        model_cfg['det_checkpoint'] = args.coco
    elif arm == 'imagenet':
        model_cfg['backbone'] = dict(model_cfg['backbone'],
                                     init_cfg=dict(type='Pretrained', checkpoint=args.imagenet))
    seed = int(arm.removeprefix('random_s')) if arm.startswith('random_s') else 0
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model.eval()


def extract(arm: str, cfg, dataset, meta: list[dict], args: argparse.Namespace) -> np.ndarray:
    from mmnpc.inference.patient_features import roi_features, window_features
    progress = not args.no_progress
    if arm == 'detector_roi':
        from mmnpc.inference import SliceDetector
        detector = SliceDetector(Path(args.det_checkpoint))
        return roi_features(detector, meta, args.margin_mm, progress=progress, desc=arm)
    model = build_classifier(cfg, arm, args)
    return window_features(model, dataset, args.batch_size, progress=progress, desc=arm)


def _file_id(path) -> dict | None:
    if not path:
        return None
    stat = Path(path).stat()
    return {'path': str(Path(path).resolve()), 'bytes': stat.st_size, 'mtime': stat.st_mtime}


def fingerprint(arm: str, args: argparse.Namespace) -> str:
    """What an arm's features depend on besides the samples (config, weights, margin)."""
    config = REPO / args.config if not Path(args.config).is_absolute() else Path(args.config)
    record = {'arm': arm, 'config': _file_id(config),
              'regions_per_structure': args.regions_per_structure}
    if arm in ('detector', 'detector_roi'):
        record['weights'] = _file_id(args.det_checkpoint)
    elif arm in ('imagenet', 'coco'):
        record['weights'] = _file_id(getattr(args, arm))
    if arm == 'detector_roi':
        record['margin_mm'] = args.margin_mm
    return json.dumps(record, sort_keys=True)


def arm_features(arm: str, cfg, dataset, meta: list[dict], args: argparse.Namespace
                 ) -> np.ndarray:
    """The arm's (samples, C) features, from WORK_DIR/features/<arm>.npz when it exists
    and was extracted from the same samples with the same config, weights and margin."""
    path = args.work_dir / 'features' / f'{arm}.npz'
    keys = np.array([f'{m["patient_id"]}|{m["img_path"]}|{m["region_box"]}' for m in meta])
    made_with = fingerprint(arm, args)
    if path.is_file():
        stored = np.load(path)
        if not np.array_equal(stored['keys'], keys):
            raise SystemExit(f'{path} was extracted from other samples; delete it to re-extract')
        if 'fingerprint' not in stored or str(stored['fingerprint']) != made_with:
            raise SystemExit(f'{path} was extracted with other settings (config, weights or '
                             f'margin) than {made_with}; delete it to re-extract')
        return stored['features']
    features = extract(arm, cfg, dataset, meta, args)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + '.tmp.npz')
    np.savez(tmp, features=features, keys=keys, fingerprint=np.array(made_with))
    tmp.replace(path)
    return features


def probe_scores(table: pd.DataFrame, matrix: np.ndarray, args: argparse.Namespace
                 ) -> tuple[pd.DataFrame, list[dict]]:
    """Fit on the training rows once per inner seed, score the eval rows; mean over seeds."""
    from mmnpc.evaluation.linear_probe import fit_linear_probe
    fit = (table['split'] == 'train').to_numpy()
    scored = (table['split'] == args.eval_split).to_numpy()
    scores, fits = [], []
    for seed in args.inner_seeds:
        probe = fit_linear_probe(matrix[fit], table['label'].to_numpy()[fit],
                                 folds=args.inner_folds, seed=seed)
        scores.append(probe.score(matrix[scored]))
        fits.append(probe.summary())
    out = table.loc[scored, ['patient_id', 'split', 'label']].reset_index(drop=True)
    out['score'] = np.mean(scores, axis=0)
    return out, fits


def compare(scores: dict[str, pd.DataFrame], fits: dict[str, list[dict]],
            args: argparse.Namespace) -> dict:
    from mmnpc.evaluation import delong_auc_ci, delong_paired_test
    patients = sorted(set.intersection(*(set(t['patient_id']) for t in scores.values())))
    aligned = {arm: t.set_index('patient_id').loc[patients] for arm, t in scores.items()}
    labels = next(iter(aligned.values()))['label'].to_numpy()
    arms = {}
    for arm, table in aligned.items():
        ci = delong_auc_ci(table['score'], labels)
        arms[arm] = {'auc': ci.auc, 'auc_ci_low': ci.ci_low, 'auc_ci_high': ci.ci_high,
                     'C': [f['C'] for f in fits[arm]],
                     'inner_cv_auc': [f['inner_cv_auc'] for f in fits[arm]]}
    randoms = [a for a in aligned if a.startswith('random_s')]
    comparisons = {}
    for arm in (a for a in aligned if a in DETECTOR_ARMS):
        rows = []
        for other in randoms:
            test = delong_paired_test(aligned[arm]['score'], aligned[other]['score'], labels)
            rows.append({'against': other, 'difference': test.difference, 'ci_low': test.ci_low,
                         'ci_high': test.ci_high, 'p_value': test.p_value,
                         'detectable_difference': POWER_FACTOR * test.se})
        comparisons[arm] = rows
    random_aucs = [arms[a]['auc'] for a in randoms]
    return {
        'eval_split': args.eval_split, 'n_patients': len(patients),
        'n_positive': int(labels.sum()),
        'n_train_patients': fits[next(iter(fits))][0]['n_fit_patients'],
        'inner_folds': args.inner_folds, 'inner_seeds': list(args.inner_seeds),
        'random_seeds': list(args.random_seeds), 'config': args.config,
        'det_checkpoint': args.det_checkpoint, 'margin_mm': args.margin_mm,
        'regions_per_structure': args.regions_per_structure,
        'arms': arms,
        'random_auc_mean': statistics.fmean(random_aucs) if random_aucs else math.nan,
        'random_auc_sd': statistics.stdev(random_aucs) if len(random_aucs) > 1 else math.nan,
        'comparisons': comparisons,
    }


def _f(value: float, digits: int = 3) -> str:
    return '-' if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f'{value:.{digits}f}'


def markdown(summary: dict) -> str:
    lines = [f'Frozen features + L2 logistic regression (C by {summary["inner_folds"]}-fold inner '
             f'CV on {summary["n_train_patients"]} training patients), '
             f'{summary["n_patients"]} {summary["eval_split"]} patients '
             f'({summary["n_positive"]} MSOM)', '',
             '| arm | AUC (95% CI) | C chosen (per inner seed) | inner-CV AUC |', '|---|---|---|---|']
    for arm, row in summary['arms'].items():
        cs = ', '.join(f'{c:g}' for c in row['C'])
        inner = statistics.fmean(row['inner_cv_auc'])
        lines.append(f'| {arm} | {_f(row["auc"])} ({_f(row["auc_ci_low"])}-'
                     f'{_f(row["auc_ci_high"])}) | {cs} | {_f(inner)} |')
    lines += ['', f'random initialisation, mean +- SD over {len(summary["random_seeds"])} seeds: '
              f'{_f(summary["random_auc_mean"])} +- {_f(summary["random_auc_sd"])}', '']
    if summary['comparisons']:
        lines += ['| arm minus | random seed | difference (95% CI) | p | detectable (80% power) |',
                  '|---|---|---|---|---|']
        for arm, rows in summary['comparisons'].items():
            for row in rows:
                lines.append(f'| {arm} | {row["against"]} | {_f(row["difference"])} '
                             f'({_f(row["ci_low"])} to {_f(row["ci_high"])}) | '
                             f'{_f(row["p_value"], 3)} | {_f(row["detectable_difference"])} |')
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    import mmnpc  # noqa: F401  registers the project's modules
    from mmnpc.inference.patient_features import patient_means, region_meta
    init_default_scope('mmdet')
    args.work_dir.mkdir(parents=True, exist_ok=True)
    cfg = build_config(args)
    dataset = build_dataset(cfg, args.eval_split, args.regions_per_structure)
    meta = region_meta(dataset)
    scores, fits = {}, {}
    for arm in arms_of(args):
        features = arm_features(arm, cfg, dataset, meta, args)
        table, matrix = patient_means(meta, features)
        scores[arm], fits[arm] = probe_scores(table, matrix, args)
        (args.work_dir / arm).mkdir(exist_ok=True)
        scores[arm].to_csv(args.work_dir / arm / 'patient_scores.csv', index=False)
        print(f'{arm}: C {[f["C"] for f in fits[arm]]}', flush=True)
    summary = compare(scores, fits, args)
    from mmnpc.utils.json_io import write_json
    write_json(args.work_dir / 'transfer_probe.json', summary)
    (args.work_dir / 'transfer_probe.md').write_text(markdown(summary))
    print(markdown(summary))


if __name__ == '__main__':
    main()
