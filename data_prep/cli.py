"""Command line of data_prep: argument parsing and printing only.

    python -m data_prep synth OUT_DIR [--patients N] [--seed S]
    python -m data_prep convert COHORT OUT [--val-fraction F] [--test-fraction F] [--seed S]
                                [--workers N] [--split-file F] [--mapping F] [--overwrite]
                                [--skip-bad-patients]

The work is done by ``data_prep.synth.synthesize_cohort`` and
``data_prep.convert.convert_cohort``; bad input is reported as one
``error:`` line and exit status 1.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from data_prep import __version__
from data_prep.types import DataPrepError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m data_prep`` parser with its ``synth`` and ``convert`` commands."""
    parser = argparse.ArgumentParser(
        prog='python -m data_prep',
        description='Prepare MR + RTSTRUCT cohorts for mmnpc (JPEG slices + COCO annotations).')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true', help='log progress details')
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    synth = commands.add_parser(
        'synth', help='write a SYNTHETIC DICOM cohort (demo and tests, not patient data)',
        description='Write a synthetic cohort: clinical.csv + one DICOM folder per patient.')
    synth.add_argument('out_dir', type=Path, metavar='OUT_DIR', help='cohort folder to create')
    synth.add_argument('--patients', type=positive_int, default=24,
                       help='number of patients (default 24)')
    synth.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    synth.add_argument('--no-progress', action='store_true', help='no progress bar')

    convert = commands.add_parser(
        'convert', help='convert a DICOM cohort into JPEG slices + COCO annotations',
        description='Convert COHORT (clinical.csv + one DICOM folder per patient) into OUT: '
                    '<seq>/images/*.jpg, <seq>/annotations/{train,val}.json (and test.json '
                    'with --test-fraction or test patients in --split-file), clinical.csv, '
                    'manifest.json. OUT appears only when everything succeeded; a failed run '
                    'keeps OUT.partial, and re-running the same command resumes from it.')
    convert.add_argument('cohort', type=Path, metavar='COHORT', help='cohort folder')
    convert.add_argument('out', type=Path, metavar='OUT', help='output folder (must not exist '
                         'unless --overwrite)')
    convert.add_argument('--val-fraction', type=float, default=0.25,
                         help='share of ALL patients in the val split (default 0.25)')
    convert.add_argument('--test-fraction', type=float, default=0.0,
                         help='share of ALL patients held out in a test split, drawn first '
                              '(stratified by msom) and written as test.json; val + test '
                              'must be below 1 (default 0: no test split)')
    convert.add_argument('--seed', type=int, default=0, help='split seed (default 0)')
    convert.add_argument('--workers', type=positive_int, default=1,
                         help='patients converted in parallel processes (default 1)')
    convert.add_argument('--split-file', type=Path, metavar='F',
                         help='CSV patient_id,split (train/val/test); overrides the '
                              'stratified split')
    convert.add_argument('--mapping', type=Path, metavar='F',
                         help='JSON mapping of series descriptions / ROI names '
                              '(see data_prep.options)')
    convert.add_argument('--overwrite', action='store_true',
                         help='replace OUT if it exists (only a previous data_prep output)')
    convert.add_argument('--skip-bad-patients', action='store_true',
                         help='leave out (and list in manifest.json under "skipped") each '
                              'patient whose images or clinical row are bad, instead of '
                              'stopping at the first one')
    convert.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (0 ok, 1 bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='data_prep: %(levelname)s: %(message)s')
    try:
        if args.command == 'synth':
            run_synth(args)
        else:
            run_convert(args)
    except DataPrepError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


def run_synth(args: argparse.Namespace) -> None:
    """``synth``: write the synthetic cohort and say where."""
    from data_prep.synth import synthesize_cohort

    try:
        cohort = synthesize_cohort(args.out_dir, args.patients, args.seed,
                                   progress=not args.no_progress)
    except FileExistsError as err:  # synth refuses a non-empty folder
        raise DataPrepError(str(err)) from err
    print(f'wrote a SYNTHETIC cohort of {args.patients} patients (seed {args.seed}) to {cohort}')


def run_convert(args: argparse.Namespace) -> None:
    """``convert``: convert the cohort and print what was written."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from data_prep.convert import convert_cohort, staging_dir
    from data_prep.options import load_options

    try:
        with logging_redirect_tqdm():  # log lines above the progress bar, not through it
            summary = convert_cohort(
                args.cohort, args.out, val_fraction=args.val_fraction,
                test_fraction=args.test_fraction, seed=args.seed,
                workers=args.workers, split_file=args.split_file,
                options=load_options(args.mapping), overwrite=args.overwrite,
                skip_bad_patients=args.skip_bad_patients, progress=not args.no_progress)
    except BaseException:
        staging = staging_dir(args.out)
        if staging.exists():
            print(f'note: partial work kept in {staging}; re-run the same command to resume '
                  'or delete that folder', file=sys.stderr)
        raise
    print(format_summary(summary))


def format_summary(summary: dict) -> str:
    """Human-readable report of a ``convert_cohort`` summary."""
    patients = summary['patients']
    per_split = ', '.join(f'{name} {count}' for name, count in patients.items())
    lines = [f'wrote {summary["out"]}',
             f'patients: {sum(patients.values())} ({per_split}); converted '
             f'{summary["converted_patients"]}, re-used {summary["reused_patients"]}',
             f'{"sequence":<9}{"split":<7}{"patients":>9}{"images":>8}{"w/ tumour":>10}'
             f'{"annotations":>12}']
    for sequence, by_split in summary['sequences'].items():
        for split, count in by_split.items():
            lines.append(f'{sequence:<9}{split:<7}{count["patients"]:>9}{count["images"]:>8}'
                         f'{count["images_with_annotations"]:>10}{count["annotations"]:>12}')
    out = Path(summary['out'])
    lines.append(f'clinical table: {out / "clinical.csv"}; manifest: {out / "manifest.json"}')
    if summary['skipped']:
        lines.append(f'SKIPPED {len(summary["skipped"])} patients (reasons in manifest.json '
                     f'under "skipped"): {", ".join(summary["skipped"])}')
    if summary['warnings']:
        lines.append(f'{len(summary["warnings"])} patients have conversion warnings '
                     '(listed per sequence in manifest.json)')
    return '\n'.join(lines)
