"""Which input should stage 2 read? Region variants vs the whole slice, one split (a script).

Every arm is an image-only classifier trained with ``tools/train.py`` from the
contours (random initialisation, one seed), tested with ``tools/test.py`` on the
held-out test patients (cut-off fitted on the training patients) and on the
validation patients (for late fusion). Then, on the same test patients:

* each arm's AUC with its DeLong 95% CI and the paired DeLong test against the
  whole-slice arm and against the clinical-only model (``tools/clinical_baseline.py``);
* late fusion of each arm with the clinical-only model (``tools/late_fusion.py``:
  the two-input regression fitted on the validation patients) and its paired test
  against clinical-only;
* the generator's image latent on the same patients when the cohort is synthetic
  (``--synth-patients`` / ``--synth-seed``: ``experiments/synthetic_reference.py``).

Arms (``--arms``; all of them by default):

* ``whole_slice``: today's slice model (configs/msom_cet1_tiny.py, 256 px, batch 2,
  per-slice loss) with ``--whole-slice-iters`` iterations (default 1200: about the
  CPU time of the region recipe);
* ``window``: configs/msom_cet1_cpu.py (64 mm windows around each GTV / GTVln
  section, patient-level loss);
* ``lesion``: the window masked to the box + 5 mm; ``ring``: the 5 mm margin only;
* ``nodes``: windows of GTVln sections only; ``primary``: GTV sections only;
* ``attention``: the window arm with attention pooling (configs/msom_cet1_cpu_attention.py).

With both ``primary`` and ``nodes``, a model per structure is also fused late with the
clinical-only model (three inputs, ``tools/late_fusion.py --more-image-scores``):
``per_structure_fusion`` in the summary.

Runs whose ``metrics.json`` exists are not repeated (resume after an interruption).
Writes WORK_DIR/<arm>/{train,test,val,late_fusion}/ and WORK_DIR/region_comparison.json
/ .md. Takes about 30 min per arm on 2 CPU cores at 300 training patients.

    python experiments/region_comparison.py --data-root DATA --work-dir work_dirs/regions \\
        [--arms whole_slice window ...] [--synth-patients 900 --synth-seed 7]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from mmnpc.runs import RunFolder, StepFailed
from mmnpc.runs import run_tool as run

REPO = Path(__file__).resolve().parents[1]

WINDOW = 'configs/msom_cet1_cpu.py'
ARMS = {
    'whole_slice': ('configs/msom_cet1_tiny.py', []),
    'window': (WINDOW, []),
    'lesion': (WINDOW, ['region.keep=lesion']),
    'ring': (WINDOW, ['region.keep=ring']),
    'nodes': (WINDOW, ['region_classes=[GTVln]']),
    'primary': (WINDOW, ['region_classes=[GTV]']),
    'attention': ('configs/msom_cet1_cpu_attention.py', []),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='stage-2 input regions vs the whole slice')
    parser.add_argument('--data-root', required=True, help='converter output with a test split')
    parser.add_argument('--work-dir', required=True, type=Path)
    parser.add_argument('--arms', nargs='+', choices=list(ARMS), default=list(ARMS))
    parser.add_argument('--whole-slice-iters', type=int, default=1200)
    parser.add_argument('--no-late-fusion', action='store_true',
                        help='test patients only: no validation scores, no late fusion '
                        '(saves the validation pass; arms run before keep theirs)')
    parser.add_argument('--clinical-config', default='configs/msom_fusion_cpu.py',
                        help='config naming the clinical variables of the clinical-only model')
    parser.add_argument('--synth-patients', type=int, help="synth's --patients (reference AUCs)")
    parser.add_argument('--synth-seed', type=int, help="synth's --seed")
    parser.add_argument('--synth-generator-version', type=int, choices=(1, 2), default=2,
                        help="synth's --generator-version (default 2; the figures measured "
                        "before 2026-12-07 used 1)")
    return parser.parse_args(argv)


def arm_options(arm: str, args: argparse.Namespace) -> list[str]:
    """--cfg-options of an arm (region changes are written into every pipeline's CropRegion)."""
    config, changes = ARMS[arm]
    if arm == 'whole_slice':
        n = args.whole_slice_iters
        return [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
                f'default_hooks.checkpoint.interval={n}']
    options = []
    for change in changes:
        key, value = change.split('=', 1)
        if key == 'region.keep':
            options += [f'{loader}.dataset.pipeline.1.keep={value}'
                        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
        else:
            options += [f'{loader}.dataset.{key}={value}'
                        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    return options


def checkpoint_of(train_dir: Path) -> Path:
    return RunFolder(train_dir).last_checkpoint()


def run_arm(arm: str, args: argparse.Namespace) -> dict:
    """Train, test (test and val patients) and late-fuse one arm; returns its file paths."""
    config, _ = ARMS[arm]
    out = args.work_dir / arm
    options = arm_options(arm, args)
    timing = {}
    if RunFolder(out / 'train').find_last_checkpoint() is None:
        timing['train_s'] = run([sys.executable, 'tools/train.py', config, '--data-root',
                                 args.data_root, '--work-dir', str(out / 'train'),
                                 *(['--cfg-options', *options] if options else [])])
        (out / 'train_seconds.json').write_text(json.dumps(timing) + '\n')
    checkpoint = checkpoint_of(out / 'train')
    splits = (('test', []),) if args.no_late_fusion else (('test', []),
                                                          ('val', ['--val-patients']))
    for split, extra in splits:
        if not (out / split / 'metrics.json').is_file():
            run([sys.executable, 'tools/test.py', config, str(checkpoint), '--data-root',
                 args.data_root, '--work-dir', str(out / split), *extra,
                 *(['--cfg-options', *options] if options else [])])
    if not args.no_late_fusion and not (out / 'late_fusion' / 'metrics.json').is_file():
        clinical = args.work_dir / 'clinical'
        run([sys.executable, 'tools/late_fusion.py', '--image-scores',
             str(out / 'test' / 'patient_scores.csv'), str(out / 'val' / 'patient_scores.csv'),
             '--clinical-scores', str(clinical / 'test' / 'patient_scores.csv'),
             str(clinical / 'val' / 'patient_scores.csv'), '--work-dir', str(out / 'late_fusion')])
    return {'test': out / 'test', 'late_fusion': out / 'late_fusion'}


def per_structure_fusion(args: argparse.Namespace) -> None:
    """The primary-tumour and the nodes models fused late with the clinical-only model."""
    out = args.work_dir / 'per_structure_fusion'
    if args.no_late_fusion or (out / 'metrics.json').is_file() or \
            not {'primary', 'nodes'} <= set(args.arms):
        return
    scores = {arm: [str(args.work_dir / arm / split / 'patient_scores.csv')
                    for split in ('test', 'val')] for arm in ('primary', 'nodes')}
    clinical = args.work_dir / 'clinical'
    run([sys.executable, 'tools/late_fusion.py', '--image-scores', *scores['primary'],
         '--clinical-scores', str(clinical / 'test' / 'patient_scores.csv'),
         str(clinical / 'val' / 'patient_scores.csv'), '--work-dir', str(out),
         '--more-image-scores', *(f'nodes={path}' for path in scores['nodes'])])


def clinical_baseline(args: argparse.Namespace) -> None:
    for split in ('test', 'val'):
        if not (args.work_dir / 'clinical' / split / 'metrics.json').is_file():
            run([sys.executable, 'tools/clinical_baseline.py', '--data-root', args.data_root,
                 '--config', args.clinical_config, '--work-dir',
                 str(args.work_dir / 'clinical' / split), '--eval-split', split])


def compare(arms: list[str], args: argparse.Namespace) -> dict:
    """Every arm's test AUC, its paired tests, and late fusion vs clinical-only."""
    import pandas as pd

    from mmnpc.evaluation.model_comparison import compare_models

    def table(path: Path) -> 'pd.DataFrame':
        return pd.read_csv(path / 'patient_scores.csv', dtype={'patient_id': str})

    tables = {'clinical-only': table(args.work_dir / 'clinical' / 'test')}
    tables.update({arm: table(args.work_dir / arm / 'test') for arm in arms})
    summary: dict = {'data_root': str(args.data_root), 'arms': {}}
    for reference in [r for r in ('whole_slice', 'clinical-only') if r in tables]:
        rows = compare_models(tables, reference, eval_split='test')
        summary[f'vs_{reference}'] = json.loads(rows.to_json(orient='records'))
    for arm in arms:
        seconds = args.work_dir / arm / 'train_seconds.json'
        summary['arms'][arm] = {
            'config': ARMS[arm][0], 'cfg_options': arm_options(arm, args),
            'train_seconds': json.loads(seconds.read_text()).get('train_s')
            if seconds.is_file() else None}
        fused_dir = args.work_dir / arm / 'late_fusion'
        if (fused_dir / 'metrics.json').is_file():  # not with --no-late-fusion
            fused = json.loads((fused_dir / 'metrics.json').read_text())
            late = pd.read_csv(fused_dir / 'comparison.csv')
            summary['arms'][arm].update(
                late_fusion_auc=fused['auc'],
                late_fusion_ci=[fused['auc_ci_low'], fused['auc_ci_high']],
                late_fusion_vs=json.loads(late.to_json(orient='records')))
    structures = args.work_dir / 'per_structure_fusion'
    if (structures / 'metrics.json').is_file():
        fused = json.loads((structures / 'metrics.json').read_text())
        summary['per_structure_fusion'] = {
            'auc': fused['auc'], 'ci': [fused['auc_ci_low'], fused['auc_ci_high']],
            'vs': json.loads(pd.read_csv(structures / 'comparison.csv').to_json(orient='records'))}
    if args.synth_patients is not None:
        reference = args.work_dir / 'synthetic_reference.json'
        if not reference.is_file():
            run([sys.executable, 'experiments/synthetic_reference.py', '--data-root',
                 args.data_root, '--patients', str(args.synth_patients), '--seed',
                 str(args.synth_seed), '--generator-version', str(args.synth_generator_version),
                 '--eval-split', 'test', '--out', str(reference)])
        summary['synthetic_reference'] = json.loads(reference.read_text())
    return summary


def markdown(summary: dict) -> str:
    def f(v, d=3):
        return '-' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.{d}f}'

    def neg(v):  # compare_models gives reference - model; the table shows model - reference
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else -v

    lines = ['| model | test AUC (95% CI) | minus whole slice, p | minus clinical-only, p '
             '| late fusion AUC (95% CI) | late fusion minus clinical-only, p |',
             '|---|---|---|---|---|---|']
    whole = {r['model']: r for r in summary.get('vs_whole_slice', [])}
    clinical = {r['model']: r for r in summary.get('vs_clinical-only', [])}
    for name, row in clinical.items():
        w = whole.get(name, {})
        arm = summary['arms'].get(name, {})
        late = {r['model']: r for r in arm.get('late_fusion_vs', [])}.get('clinical-only', {})
        lines.append(
            f'| {name} | {f(row["auc"])} ({f(row["auc_ci_low"])}-{f(row["auc_ci_high"])}) '
            f'| {f(neg(w.get("difference_vs_reference")))}, {f(w.get("p_value"), 3)} '
            f'| {f(neg(row["difference_vs_reference"]))}, {f(row["p_value"])} '
            f'| {f(arm.get("late_fusion_auc"))} ({f((arm.get("late_fusion_ci") or [None])[0])}-'
            f'{f((arm.get("late_fusion_ci") or [None, None])[1])}) '
            f'| {f(late.get("difference_vs_reference"))}, {f(late.get("p_value"))} |')
    structures = summary.get('per_structure_fusion')
    if structures:
        vs = {r['model']: r for r in structures['vs']}.get('clinical-only', {})
        lines += ['', f'Late fusion of a primary-tumour model and a nodes model with the '
                  f'clinical-only model: {f(structures["auc"])} ({f(structures["ci"][0])}-'
                  f'{f(structures["ci"][1])}); minus clinical-only '
                  f'{f(vs.get("difference_vs_reference"))}, p {f(vs.get("p_value"))}']
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    clinical_baseline(args)
    for arm in args.arms:
        run_arm(arm, args)
    per_structure_fusion(args)
    summary = compare(args.arms, args)
    (args.work_dir / 'region_comparison.json').write_text(json.dumps(summary, indent=2) + '\n')
    (args.work_dir / 'region_comparison.md').write_text(markdown(summary))
    print(markdown(summary))


if __name__ == '__main__':
    try:
        main()
    except StepFailed as failed:
        sys.exit(f'experiment step failed ({failed})')
