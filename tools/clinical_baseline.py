"""Clinical-only baseline of the MSOM classifier: logistic regression on the clinical vector.

    python tools/clinical_baseline.py --data-root DATA --config configs/msom_fusion.py \\
        --work-dir DIR [--eval-split test|val] [--seed 0]

The variables are the config's ``clinical_vars`` (``fusion_clinical_vars`` for
the fusion configs), encoded as the fusion classifier encodes them; the
encoder and the regression are fitted on the training patients of
DATA/clinical.csv (its ``split`` column), see
:mod:`mmnpc.evaluation.clinical_baseline`. Evaluation is the classifier's
(:func:`mmnpc.evaluation.evaluate_patient_table`): cut-off by Youden's J on
the training patients, statistics on the evaluated split. DIR receives
metrics.json, patient_scores.csv (training + evaluated patients) and roc.png,
as tools/test.py writes them for a classifier, and clinical_model.json (the
fitted encoder and coefficients: ``tools/predict.py --clinical-model`` scores a
new patient with it for late fusion). The evaluated split is 'test'
when clinical.csv has test patients, else 'val' (with a note: there is no
held-out test split).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

TRAIN_SPLIT = 'train'
VAL_NOTE = ('clinical.csv has no test patients (convert with --test-fraction): the figures are '
            'on the validation patients')


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Clinical-only logistic-regression baseline, '
                                     'evaluated like the MSOM classifier')
    parser.add_argument('--data-root', required=True,
                        help='converter output folder holding clinical.csv (with a split column)')
    parser.add_argument('--config', required=True,
                        help='classifier config whose `clinical_vars` lists the variables, '
                        'e.g. configs/msom_fusion.py')
    parser.add_argument('--work-dir', required=True,
                        help='output folder: metrics.json, patient_scores.csv, roc.png')
    parser.add_argument('--eval-split', choices=['test', 'val'], default=None,
                        help="split to evaluate (default: 'test' when clinical.csv has test "
                        "patients, else 'val')")
    parser.add_argument('--seed', type=int, default=0, help='random_state of the regression')
    return parser.parse_args(argv)


def config_clinical_vars(config: str) -> list:
    """The config's ``clinical_vars`` as plain dicts (its ``custom_imports`` are honoured)."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    variables = cfg.get('clinical_vars') or []
    return [dict(variable) for variable in variables]


def choose_eval_split(splits: dict, requested: Optional[str]) -> tuple[str, list]:
    """(split to evaluate, notes): ``requested``, else 'test' if any patient has it, else 'val'."""
    from mmnpc.utils.eval_split import held_out_split
    if requested is not None:
        return requested, []
    split = held_out_split(splits.values())
    return split, ([VAL_NOTE] if split == 'val' else [])


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    from mmnpc.datasets.clinical_table import SPLIT_COLUMN, read_clinical_rows
    from mmnpc.evaluation import evaluate_patient_table, write_msom_outputs
    from mmnpc.evaluation.clinical_baseline import MODEL_DESCRIPTION, fit_clinical_model

    clinical_csv = Path(args.data_root) / 'clinical.csv'
    clinical_vars = config_clinical_vars(args.config)
    if not clinical_vars:
        print(f'error: {args.config} has no clinical_vars (an image-only config?); use a fusion '
              'config such as configs/msom_fusion.py', file=sys.stderr)
        return 2
    try:
        rows = read_clinical_rows(clinical_csv, [SPLIT_COLUMN])
        splits = {p: row[SPLIT_COLUMN] for p, row in rows.items()}
        eval_split, notes = choose_eval_split(splits, args.eval_split)
        used = {p: s for p, s in splits.items() if s in (TRAIN_SPLIT, eval_split)}
        model, table = fit_clinical_model(clinical_csv, clinical_vars, used,
                                          fit_split=TRAIN_SPLIT, seed=args.seed)
        evaluation = evaluate_patient_table(table, train_split=TRAIN_SPLIT, eval_split=eval_split)
    except (ValueError, FileNotFoundError) as err:  # DataPrepError too: names file / patient
        print(f'error: {err}', file=sys.stderr)
        return 2
    for note in notes:
        print(f'note: {note}')
    evaluation.notes[:0] = notes
    evaluation.report['model'] = MODEL_DESCRIPTION
    evaluation.report['clinical_vars'] = [v['name'] for v in clinical_vars]
    paths = write_msom_outputs(evaluation, Path(args.work_dir))
    paths['clinical_model'] = Path(args.work_dir) / 'clinical_model.json'
    from mmnpc.utils.json_io import write_json
    write_json(paths['clinical_model'], model.to_json())

    report = evaluation.report
    print(f'clinical baseline ({len(clinical_vars)} variables), {eval_split}: '
          f'{report["n_val_patients"]} patients ({report["n_val_positive"]} MSOM); '
          f'AUC {report["auc"]:.3f} (95% CI {report["auc_ci_low"]:.3f}-'
          f'{report["auc_ci_high"]:.3f}); cut-off {report["cutoff"]:.4g} '
          f'({report["cutoff_rule"]}); train AUC {report["train_auc"]:.3f}')
    for note in evaluation.notes[len(notes):]:
        print(f'note: {note}')
    print('written: ' + ', '.join(str(path) for path in paths.values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
