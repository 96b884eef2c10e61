"""Kaplan-Meier analysis of high vs low MSOM risk (DMFS and OS).

    python tools/km.py WORK_DIR/patient_scores.csv CLINICAL_CSV --out DIR
        [--cutoff X] [--split val|test|train|all]

The cut-off is X when given, else the one stage 2 fitted on the training
patients (``cutoff`` in WORK_DIR/metrics.json). DIR receives survival.json,
km_dmfs.csv / km_os.csv (curve points) and km_<endpoint>.png / .pdf.
"""
from __future__ import annotations

import argparse
import logging
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Kaplan-Meier curves, log-rank test and '
                                     'hazard ratio of high vs low MSOM risk')
    parser.add_argument('patient_scores', help='WORK_DIR/patient_scores.csv written by '
                        'tools/test.py for a classifier config')
    parser.add_argument('clinical', help='clinical.csv of the converted cohort')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--cutoff', type=float, default=None,
                        help='risk score cut-off (high if score >= cutoff); default: the '
                        'training cut-off in metrics.json next to patient_scores.csv')
    parser.add_argument('--split', choices=['val', 'test', 'train', 'all'], default='val',
                        help='patients to analyse (default: val)')
    return parser.parse_args(argv)


def _fmt(value: float | None, spec: str = '.3f') -> str:
    return 'n/a' if value is None else format(value, spec)


def print_report(report: dict) -> None:
    """One block per endpoint: groups, 3-year survival, median, log-rank, hazard ratio."""
    print(f'cut-off {report["cutoff"]:.6g} ({report["cutoff_source"]}), split '
          f'{report["split"]}: {report["n_high"]} high / {report["n_low"]} low risk')
    horizon = report['horizon_months']
    for endpoint, result in report['endpoints'].items():
        print(f'\n{endpoint.upper()}: {result["n"]} patients, {result["events"]} events '
              f'({result["n_excluded_missing"]} left out for missing time/event)')
        for group, stats in result['groups'].items():
            lo, hi = stats['survival_at_horizon_ci95']
            print(f'  {group:>4}: n={stats["n"]:<4} events={stats["events"]:<4} '
                  f'S({horizon:g} mo)={_fmt(stats["survival_at_horizon"])} '
                  f'[{_fmt(lo)}, {_fmt(hi)}]  median={_fmt(stats["median_months"], ".1f")} mo')
        logrank, hr = result['logrank'], result['hazard_ratio']
        print(f'  log-rank chi2={_fmt(logrank["chi2"])} p={_fmt(logrank["p_value"], ".3g")}; '
              f'HR high vs low={_fmt(hr["value"], ".2f")} '
              f'[{_fmt(hr["ci95"][0], ".2f")}, {_fmt(hr["ci95"][1], ".2f")}]')
        for note in result['notes']:
            print(f'  note: {note}')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    from mmnpc.survival import run_km

    try:
        report = run_km(args.patient_scores, args.clinical, args.out, cutoff=args.cutoff,
                        split=args.split)
    except ValueError as err:  # DataPrepError: bad input, message names file/patient
        print(f'error: {err}', file=sys.stderr)
        return 2
    print_report(report)
    print(f'\nwritten to {args.out}: survival.json, km_<endpoint>.csv/.png/.pdf')
    return 0


if __name__ == '__main__':
    sys.exit(main())
