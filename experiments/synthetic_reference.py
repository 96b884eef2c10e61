"""What the synthetic cohort holds: AUCs of its generator's own latents (a script, not a test).

``data_prep synth`` draws every patient's MSOM from hidden latents (see
``data_prep/synth.py``): ``z_img``, which sets the primary tumour's size,
texture, necrosis and rim enhancement, ``z_node`` (generator version 2), which
sets the nodes' necrosis and margins, and a clinical score; ``image_risk`` is
the weighted sum of the image latents (all the images hold) and
``oracle_risk`` adds the clinical one. A latent that is constant in a version
(``z_node`` in version 1) has AUC 0.5. No model can see them, so their AUCs on a split bound what an image
model, a clinical model and both together can reach on it. Nothing is fitted:
each latent is scored as it is, so the figures are honest on any split.

The cohort is re-planned from ``--patients`` and ``--seed`` (the ``synth``
command's; cheap, no images) and checked against the converted cohort's
``clinical.csv``: every patient's MSOM label must match, or the seed / size
were not the ones the cohort was made with.

    python experiments/synthetic_reference.py --data-root DATA --patients 160 --seed 0 \\
        [--generator-version 2] [--eval-split test]

Prints and writes ``--out`` (default DATA/synthetic_reference.json): per latent
the AUC with its DeLong 95% CI on the split's patients.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LATENTS = ('z_img', 'z_node', 'image_risk', 'clinical_score', 'oracle_risk')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="AUCs of the synthetic generator's latents")
    parser.add_argument('--data-root', required=True, type=Path, help='converter output')
    parser.add_argument('--patients', required=True, type=int, help="synth's --patients")
    parser.add_argument('--seed', required=True, type=int, help="synth's --seed")
    parser.add_argument('--generator-version', type=int, choices=(1, 2), default=2,
                        help="synth's --generator-version (default 2)")
    parser.add_argument('--eval-split', default='test', help='patients scored (default test)')
    parser.add_argument('--out', type=Path, help='JSON output (default DATA/synthetic_reference.json)')
    return parser.parse_args(argv)


def latent_aucs(rows: list[dict], plans: dict, eval_split: str) -> dict:
    """{latent: AUC record} over the ``eval_split`` rows of clinical.csv.

    Raises:
        ValueError: no such split, a patient unknown to the plan, or a label
            that differs from the plan's.
    """
    import numpy as np

    from mmnpc.evaluation import delong_auc_ci

    chosen = [row for row in rows if row.get('split') == eval_split]
    if not chosen:
        raise ValueError(f'no {eval_split!r} patient in clinical.csv '
                         f'(splits: {sorted({row.get("split") for row in rows})})')
    for row in rows:
        plan = plans.get(row['patient_id'])
        if plan is None:
            raise ValueError(f'patient {row["patient_id"]} is not in a cohort of {len(plans)} '
                             'patients: --patients does not match the cohort')
        if int(row['msom']) != int(plan.clinical['msom']):
            raise ValueError(f'patient {row["patient_id"]}: MSOM {row["msom"]} in clinical.csv, '
                             f'{plan.clinical["msom"]} in the re-planned cohort: --seed or '
                             '--patients (or --generator-version: 1 for cohorts made before 2026-12-07) is not '
                             'the one the cohort was made with')
    labels = np.array([int(row['msom']) for row in chosen])
    out = {}
    for latent in LATENTS:
        interval = delong_auc_ci(np.array([getattr(plans[row['patient_id']], latent)
                                           for row in chosen]), labels)
        out[latent] = {key: None if np.isnan(value) else float(value) for key, value in (
            ('auc', interval.auc), ('auc_ci_low', interval.ci_low),
            ('auc_ci_high', interval.ci_high))}  # None: undefined (one class only)
    return {'eval_split': eval_split, 'n_patients': len(chosen),
            'n_positive': int(labels.sum()), 'latents': out}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from data_prep.synth import plan_cohort

    with open(args.data_root / 'clinical.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    plans = {plan.patient_id: plan for plan in plan_cohort(
        args.patients, args.seed, generator_version=args.generator_version)}
    try:
        result = latent_aucs(rows, plans, args.eval_split)
    except ValueError as error:
        sys.exit(f'error: {error}')
    result.update(patients=args.patients, seed=args.seed,
                  generator_version=args.generator_version, data_root=str(args.data_root))
    out = args.out or args.data_root / 'synthetic_reference.json'
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + '\n')
    print(f'{args.eval_split} patients: {result["n_patients"]} ({result["n_positive"]} with MSOM)')
    for latent, r in result['latents'].items():
        if r['auc'] is None or r['auc_ci_low'] is None:
            print(f'  {latent:<15} AUC {r["auc"]} (undefined CI: a class has < 2 patients)')
            continue
        print(f'  {latent:<15} AUC {r["auc"]:.3f} (95% CI {r["auc_ci_low"]:.3f}-'
              f'{r["auc_ci_high"]:.3f})')
    print(f'written to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
