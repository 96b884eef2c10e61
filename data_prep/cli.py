"""Command line of data_prep: argument parsing and printing only.

    python -m data_prep synth OUT_DIR [--patients N] [--seed S] [--matrix PX] [--pixel-mm MM]
                              [--slices N] [--slice-mm MM] [--generator-version {1,2}]
    python -m data_prep convert COHORT OUT [--val-fraction F] [--test-fraction F] [--seed S]
                                [--workers N] [--split-file F] [--mapping F] [--overwrite]
                                [--skip-bad-patients] [--sequences SEQ ...]
                                [--series-overrides F] [--masks DIR]
                                [--accept-poor-registration]
    python -m data_prep check COHORT [--mapping F] [--series-overrides F]
                              [--sequences SEQ ...] [--masks DIR] [--json F]

The work is done by ``data_prep.synth.synthesize_cohort``,
``data_prep.convert.convert_cohort`` and ``data_prep.check.check_cohort``; bad
input is reported as one ``error:`` line and exit status 1. ``check`` exits with
1 when any patient would not convert.
"""
from __future__ import annotations

import argparse
import json
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


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = float(text)
    if not 0 < value < float('inf'):
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m data_prep`` parser with its ``synth`` and ``convert`` commands."""
    parser = argparse.ArgumentParser(
        prog='python -m data_prep',
        description='Prepare MR + RTSTRUCT cohorts for mmnpc (JPEG slices + COCO annotations).')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true', help='log progress details')
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    add_synth_command(commands)
    add_convert_command(commands)
    add_check_command(commands)
    return parser


def add_synth_command(commands) -> None:
    synth = commands.add_parser(
        'synth', help='write a SYNTHETIC DICOM cohort (demo and tests, not patient data)',
        description='Write a synthetic cohort: clinical.csv + one DICOM folder per patient.')
    synth.add_argument('out_dir', type=Path, metavar='OUT_DIR', help='cohort folder to create')
    synth.add_argument('--patients', type=positive_int, default=24,
                       help='number of patients (default 24)')
    synth.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    synth.add_argument('--matrix', type=positive_int, default=128,
                       help='rows = columns of every image (default 128)')
    synth.add_argument('--pixel-mm', type=positive_float, default=1.8,
                       help='in-plane pixel size in mm (default 1.8; matrix x pixel = field '
                       'of view, 230 mm by default)')
    synth.add_argument('--slices', type=positive_int, default=22,
                       help='axial slices per series (default 22)')
    synth.add_argument('--slice-mm', type=positive_float, default=4.0,
                       help='slice spacing in mm (default 4.0); a quick, coarse cohort: '
                       '--matrix 48 --pixel-mm 4.8 --slices 6 --slice-mm 6')
    synth.add_argument('--generator-version', type=int, choices=(1, 2), default=2,
                       help='outcome and image model (default 2: noisy image signal in the '
                       'primary tumour and the nodes; 1: the cohorts made before 2026-12-07; '
                       'data_prep/synth.py says what each holds)')
    synth.add_argument('--no-progress', action='store_true', help='no progress bar')


def add_convert_command(commands) -> None:
    convert = commands.add_parser(
        'convert', help='convert a DICOM cohort into JPEG slices + COCO annotations',
        description='Convert COHORT (clinical.csv + one DICOM folder per patient) into OUT: '
                    '<seq>/images/*.jpg, <seq>/annotations/{train,val}.json (and test.json '
                    'with --test-fraction or test patients in --split-file), clinical.csv, '
                    'manifest.json. OUT appears only when everything succeeded; a failed run '
                    'keeps OUT.partial, and re-running the same command resumes from it. '
                    'While it runs, OUT.lock names its process: a second convert into the same '
                    'OUT is refused (a lock left by a killed run is taken over).')
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
    add_selection_arguments(convert)
    convert.add_argument('--no-progress', action='store_true', help='no progress bar')


def add_check_command(commands) -> None:
    check = commands.add_parser(
        'check', help='dry run: list what each patient folder holds and whether it would '
                      'convert (nothing is written)',
        description='For every patient of COHORT: the MR series found (description, folder, '
                    'files, orientation, frame of reference), the sequence each was chosen for '
                    'and why, each sequence\'s contour source and GTV/GTVln ROIs, and the '
                    'clinical-table problems. Reads headers only; writes nothing but --json. '
                    'Exit status 0 when every patient would convert, else 1.')
    check.add_argument('cohort', type=Path, metavar='COHORT', help='cohort folder')
    check.add_argument('--mapping', type=Path, metavar='F',
                       help='JSON mapping of series descriptions / ROI names '
                            '(see data_prep.options)')
    add_selection_arguments(check)
    check.add_argument('--json', type=Path, metavar='F', dest='json_out',
                       help='also write the records as JSON to F')


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """--sequences, --series-overrides, --masks, --accept-poor-registration (shared by
    ``convert`` and ``check``)."""
    parser.add_argument('--sequences', nargs='+', metavar='SEQ', default=None,
                        help='the sequences to convert, comma- or space-separated, among t1, '
                             't2, cet1 (default: all three)')
    parser.add_argument('--series-overrides', type=Path, metavar='F',
                        help='CSV patient_id,sequence,series naming the series to use where '
                             'several match (series = SeriesDescription, SeriesNumber or '
                             'folder relative to the patient folder)')
    parser.add_argument('--masks', type=Path, metavar='DIR',
                        help='folder of NIfTI/NRRD label maps named <patient_id>_<sequence>.nii.gz '
                             '(.nii, .nrrd, .nhdr; <patient_id>.nii.gz = drawn on cet1); default: '
                             '<patient>/masks/<sequence>.nii.gz. Label values: "label_values" '
                             'in --mapping (default GTV 1, GTVln 2)')
    parser.add_argument('--accept-poor-registration', action='store_true',
                        help='convert a sequence whose rigid registration to the contours\' '
                             'series fails its quality checks (a warning in manifest.json) '
                             'instead of failing the patient')


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (0 ok, 1 bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='data_prep: %(levelname)s: %(message)s')
    try:
        if args.command == 'synth':
            run_synth(args)
        elif args.command == 'check':
            return run_check(args)
        else:
            run_convert(args)
    except DataPrepError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


def options_from_args(args: argparse.Namespace):
    """PrepOptions from --mapping, --series-overrides and --sequences."""
    from data_prep.options import load_options

    return load_options(args.mapping, series_overrides=args.series_overrides,
                        sequences=args.sequences, masks=args.masks,
                        accept_poor_registration=args.accept_poor_registration)


def run_synth(args: argparse.Namespace) -> None:
    """``synth``: write the synthetic cohort and say where."""
    from data_prep.synth import synthesize_cohort

    try:
        cohort = synthesize_cohort(args.out_dir, args.patients, args.seed, matrix=args.matrix,
                                   pixel_mm=args.pixel_mm, n_slices=args.slices,
                                   slice_mm=args.slice_mm, progress=not args.no_progress,
                                   generator_version=args.generator_version)
    except FileExistsError as err:  # synth refuses a non-empty folder
        raise DataPrepError(str(err)) from err
    print(f'wrote a SYNTHETIC cohort of {args.patients} patients (seed {args.seed}, generator '
          f'version {args.generator_version}) to {cohort}')


def run_convert(args: argparse.Namespace) -> None:
    """``convert``: convert the cohort and print what was written."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from data_prep.convert import convert_cohort, staging_dir

    options = options_from_args(args)
    try:
        with logging_redirect_tqdm():  # log lines above the progress bar, not through it
            summary = convert_cohort(
                args.cohort, args.out, val_fraction=args.val_fraction,
                test_fraction=args.test_fraction, seed=args.seed,
                workers=args.workers, split_file=args.split_file,
                options=options, overwrite=args.overwrite,
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


def run_check(args: argparse.Namespace) -> int:
    """``check``: print the dry-run table (and write --json); 0 when all would convert."""
    from data_prep.check import check_cohort

    checks = check_cohort(args.cohort, options_from_args(args))
    if args.json_out is not None:
        records = {'patients': [c.to_json() for c in checks],
                   'would_convert': sum(c.would_convert for c in checks)}
        args.json_out.write_text(json.dumps(records, indent=2) + '\n', encoding='utf-8')
    print(format_check(checks))
    return 0 if all(c.would_convert for c in checks) else 1


def format_check(checks: list) -> str:
    """Readable report of ``check_cohort`` records: one block per patient."""
    lines = []
    for check in checks:
        lines.append(f'{check.patient_id}: '
                     f'{"would convert" if check.would_convert else "WOULD NOT CONVERT"}')
        if check.series:
            lines.append(f'  {"MR series":<28}{"folder":<24}{"files":>6}  {"orientation":<12}'
                         f'{"FoR":>4}  sequence')
        for s in check.series:
            assigned = s.assigned or '-'
            note = f' ({s.note})' if s.note else ''
            lines.append(f'  {_cut(repr(s.description), 27):<28}{_cut(s.folder + "/", 23):<24}'
                         f'{s.n_files:>6}  {s.orientation:<12}{s.frame_of_reference:>4}  '
                         f'{assigned}{note}')
        for rt in check.rtstructs:
            lines.append(f'  RTSTRUCT {rt.file} (FoR {rt.frame_of_reference}): refers to '
                         f'{rt.drawn_on + " series" if rt.drawn_on else "no chosen series"}')
        for seq in check.sequences:
            rejected = (seq.selection or {}).get('rejected', [])
            chosen = seq.series or 'no series'
            if rejected:
                chosen += (f' [{seq.selection["reason"]}; over '
                           f'{", ".join(repr(r["description"]) for r in rejected)}]')
            source = seq.contours + (f' {seq.rtstruct}' if seq.rtstruct else '')
            classes = '; '.join(f'{cls}: {", ".join(names)}'
                                for cls, names in seq.classes.items()) or '-'
            lines.append(f'  {seq.sequence:<5} {chosen}')
            registration = ('' if seq.registration == 'none'
                            else f'; registration: {seq.registration}')
            lines.append(f'        contours: {source}; classes: {classes}{registration}')
        lines.append('  clinical: ' + ('; '.join(check.clinical_problems) or 'ok'))
        for problem in check.problems:
            if problem not in check.clinical_problems:
                lines.append(f'  problem: {problem}')
    bad = [c.patient_id for c in checks if not c.would_convert]
    lines.append(f'{len(checks) - len(bad)} of {len(checks)} patients would convert'
                 + (f'; not: {", ".join(bad)}' if bad else ''))
    return '\n'.join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + '...'
