"""Compare models on the same held-out patients: AUC + DeLong CI each, paired DeLong p.

    python tools/compare_models.py --reference fusion \\
        --model fusion=W/msom_fusion_tiny/patient_scores.csv \\
        --model clinical=W/clinical_baseline/patient_scores.csv \\
        --model max_slice=W/msom_maxslice/patient_scores.csv \\
        --model end_to_end=W/end_to_end/patient_scores.csv:end_to_end_score \\
        [--eval-split test] --out W/comparison

Each --model is NAME=CSV[:COLUMN]: a per-patient table with patient_id, split,
label and a score column (default `score`). Only the patients of --eval-split
that every model scored are compared. Writes OUT/comparison.csv and
OUT/comparison.json (mmnpc.evaluation.model_comparison).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='paired DeLong comparison of models')
    parser.add_argument('--model', action='append', required=True, metavar='NAME=CSV[:COLUMN]',
                        help='a model: its name, its per-patient CSV and the score column')
    parser.add_argument('--reference', required=True, help='the model the others are tested against')
    parser.add_argument('--eval-split', default='test', help='patients compared (default test)')
    parser.add_argument('--out', required=True, type=Path, help='output folder')
    return parser.parse_args()


def read_model(spec: str):
    """NAME=CSV[:COLUMN] -> (name, table with patient_id, split, label, score)."""
    import pandas as pd

    if '=' not in spec:
        raise ValueError(f'--model {spec!r}: expected NAME=CSV[:COLUMN]')
    name, rest = spec.split('=', 1)
    path, _, column = rest.partition(':') if not Path(rest).is_file() else (rest, '', '')
    column = column or 'score'
    table = pd.read_csv(path, dtype={'patient_id': str})
    missing = [c for c in ('patient_id', 'split', 'label', column) if c not in table]
    if missing:
        raise ValueError(f'{path}: no column(s) {missing}')
    return name, table.rename(columns={column: 'score'}) if column != 'score' else table


def main() -> int:
    args = parse_args()
    from mmnpc.evaluation.model_comparison import compare_models

    try:
        tables = dict(read_model(spec) for spec in args.model)
        result = compare_models(tables, args.reference, args.eval_split)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f'error: {error}')
    args.out.mkdir(parents=True, exist_ok=True)
    result.to_csv(args.out / 'comparison.csv', index=False)
    from mmnpc.utils.json_io import json_ready, write_json
    records = json_ready(result.to_dict(orient='records'))  # an undefined figure as None
    write_json(args.out / 'comparison.json', {
        'eval_split': args.eval_split, 'reference': args.reference,
        'test': 'paired DeLong (1988), two-sided; difference = AUC(reference) - AUC(model)',
        'models': records})
    print(f'{args.eval_split} patients scored by every model: {int(result["n_patients"].iloc[0])} '
          f'({int(result["n_positive"].iloc[0])} with MSOM)')
    for row in records:
        p = '' if row['p_value'] is None else f', vs {args.reference}: p = {row["p_value"]:.3g}'
        ci = ('undefined' if row['auc_ci_low'] is None
              else f'{row["auc_ci_low"]:.3f}-{row["auc_ci_high"]:.3f}')
        auc = 'undefined' if row['auc'] is None else f'{row["auc"]:.3f}'
        print(f'  {row["model"]:<14} AUC {auc} (95% CI {ci}){p}')
    print(f'written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
