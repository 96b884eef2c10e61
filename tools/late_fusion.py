"""Late fusion of an image-only classifier with the clinical-only model (mmnpc.evaluation.late_fusion).

    python tools/late_fusion.py --image-scores IMG_TEST/patient_scores.csv IMG_VAL/patient_scores.csv \\
        --clinical-scores CLINICAL/patient_scores.csv --work-dir DIR [--fit-split val] \\
        [--eval-split test] [--more-image-scores NAME=FILE ...]

``--image-scores``: the image classifier's patient tables from ``tools/test.py``
(its test run lists training + test patients; the validation patients' scores
come from a run pointed at them, e.g. ``--cfg-options
"test_dataloader.dataset.ann_files={train:annotations/train.json,val:annotations/val.json}"
test_evaluator.eval_split=val``); a patient listed twice must have the same
score. ``--clinical-scores``: ``tools/clinical_baseline.py --eval-split val``
and ``--eval-split test`` outputs, likewise. The two-input regression is fitted
on the ``--fit-split`` patients (validation: out-of-sample for both models;
an L2 penalty centred on weights of 1; below 10 events per input the weights
stay at 1 and only the intercept is fitted, and the console says so), its
cut-off is Youden's J there, and the ``--eval-split`` patients are only scored. DIR receives metrics.json, patient_scores.csv, roc.png (as tools/test.py
writes them), late_fusion.json (the coefficients) and comparison.csv: fused,
clinical-only and image-only AUCs with DeLong CIs on the same patients, and the
paired DeLong test of each against the fused score.

``--more-image-scores nodes=N_TEST.csv nodes=N_VAL.csv primary=...``: more
image models, one regression input each (e.g. one model per structure:
``region_classes=[GTV]`` and ``[GTVln]``, so that a nodal and a primary-tumour
signal are both used); the fused table keeps the patients every model scored.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='late fusion: LR on the clinical-only and '
                                     'image-only scores, fitted on validation patients')
    parser.add_argument('--image-scores', nargs='+', required=True, type=Path,
                        help="image-only classifier's patient_scores.csv file(s)")
    parser.add_argument('--clinical-scores', nargs='+', required=True, type=Path,
                        help="clinical-only model's patient_scores.csv file(s)")
    parser.add_argument('--work-dir', required=True, type=Path, help='output folder')
    parser.add_argument('--fit-split', default='val',
                        help='patients the regression and cut-off are fitted on (val)')
    parser.add_argument('--eval-split', default='test', help='patients evaluated (test)')
    parser.add_argument('--prior-weight', type=float, default=1.0,
                        help='centre of the L2 penalty on every weight (1: the sum of logits; '
                        "0: scikit-learn's LogisticRegression)")
    parser.add_argument('--min-events-per-input', type=float, default=10,
                        help='fewer fit-split events of the rarer label per input: weights '
                        'stay at 1, only the intercept is fitted (10)')
    parser.add_argument('--more-image-scores', nargs='+', default=[], metavar='NAME=FILE',
                        help='more image models, NAME=patient_scores.csv (a name repeated for '
                        'its test and val files)')
    return parser.parse_args(argv)


def named_files(items) -> dict:
    """NAME=FILE items -> {name: [files]}."""
    out: dict = {}
    for item in items:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise ValueError(f'--more-image-scores takes NAME=FILE, got {item!r}')
        out.setdefault(name, []).append(Path(path))
    return out


def read_tables(paths) -> 'pd.DataFrame':
    """The patient tables concatenated, one row per patient (a repeat must agree)."""
    import pandas as pd

    table = pd.concat([pd.read_csv(p, dtype={'patient_id': str}) for p in paths],
                      ignore_index=True)
    groups = table.groupby('patient_id')
    differ = [p for p, g in groups if g['score'].nunique() > 1 or g['split'].nunique() > 1]
    if differ:
        raise ValueError(f'{[str(p) for p in paths]}: patients {differ[:5]} appear with '
                         'different scores or splits (files of different models?)')
    return table.drop_duplicates('patient_id', ignore_index=True)


def dropped_patients(clinical, table, splits) -> dict:
    """split -> clinical-table patients of that split the fused table lacks."""
    kept = set(table['patient_id'])
    return {split: int(sum(1 for p, s in zip(clinical['patient_id'], clinical['split'])
                           if s == split and str(p) not in kept)) for split in splits}


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    from mmnpc.evaluation import evaluate_patient_table, write_msom_outputs
    from mmnpc.evaluation.late_fusion import (fit_late_fusion, fused_patient_table,
                                              inverted_inputs, late_fusion_table,
                                              weights_note)
    from mmnpc.evaluation.model_comparison import compare_models

    try:
        extra = {name: read_tables(paths)
                 for name, paths in named_files(args.more_image_scores).items()}
        image, clinical = read_tables(args.image_scores), read_tables(args.clinical_scores)
        table = late_fusion_table(image, clinical, extra)
        dropped = dropped_patients(clinical, table, (args.fit_split, args.eval_split))
        table = table[table['split'].isin([args.fit_split, args.eval_split])]
        model = fit_late_fusion(table, fit_split=args.fit_split,
                                prior_weight=args.prior_weight,
                                min_events_per_input=args.min_events_per_input)
        fused = fused_patient_table(table, model)
        evaluation = evaluate_patient_table(fused, train_split=args.fit_split,
                                            eval_split=args.eval_split)
        # printed below, in metrics.json
        evaluation.notes[:0] = weights_note(model) + inverted_inputs(table, model)
        single = {name: fused.assign(score=table[column].to_numpy())
                  for name, column in (('clinical-only', 'clinical_score'),
                                       ('image-only', 'image_score'),
                                       *((f'{e}-only', f'{e}_score') for e in extra))}
        comparison = compare_models({'late fusion': fused, **single}, 'late fusion',
                                    eval_split=args.eval_split)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    how = (f'L2 (C=1) centred on weights of {args.prior_weight:g}' if model.weights_fitted else
           'weights fixed at 1 (too few events), intercept fitted')
    evaluation.report['model'] = (f'late fusion: logistic regression ({how}) on logit(clinical-'
                                  'only score) and logit(image score)'
                                  + ''.join(f', logit({e} score)' for e in extra)
                                  + f', fitted on the {args.fit_split} patients')
    evaluation.report.update({f'late_fusion_{k}': v for k, v in model.as_dict().items()})
    evaluation.report['late_fusion_not_scored_by_every_model'] = dropped
    paths = write_msom_outputs(evaluation, args.work_dir)
    from mmnpc.utils.json_io import write_json
    write_json(args.work_dir / 'late_fusion.json', model.as_dict())
    comparison.to_csv(args.work_dir / 'comparison.csv', index=False)
    print(f'late fusion {"fitted" if model.weights_fitted else "(intercept only) fitted"} on '
          f'{model.n_fit_patients} {args.fit_split} patients '
          f'({model.n_fit_positive} MSOM): {model.intercept:+.3f} '
          f'{model.coef_clinical:+.3f} x logit(clinical) {model.coef_image:+.3f} x logit(image)'
          + ''.join(f' {c:+.3f} x logit({e})' for e, c in model.coef_extra.items()))
    for row in comparison.itertuples():
        extra = '' if row.model == 'late fusion' else (
            f'; fused - this {row.difference_vs_reference:+.3f} '
            f'({row.difference_ci_low:+.3f} to {row.difference_ci_high:+.3f}), '
            f'paired DeLong p {row.p_value:.3g}')
        print(f'{args.eval_split} {row.model}: AUC {row.auc:.3f} ({row.auc_ci_low:.3f}-'
              f'{row.auc_ci_high:.3f}), {row.n_patients} patients{extra}')
    for split, count in dropped.items():
        if count:
            print(f'note: {count} {split} patients of the clinical table lack a score of some '
                  'image model and are left out of the fusion (e.g. no nodes for a nodes-only '
                  'model): the fused AUC is on the others')
    for note in evaluation.notes:
        print(f'note: {note}')
    print('written: ' + ', '.join(str(p) for p in [*paths.values(), args.work_dir / 'late_fusion.json',
                                                   args.work_dir / 'comparison.csv']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
