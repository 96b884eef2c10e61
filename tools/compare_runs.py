"""Are two run folders the same run? Lists every difference (mmnpc/runs/compare.py).

    python tools/compare_runs.py work_dirs/demo_before work_dirs/demo_after [--rel-tol 0]

Made for issue 32's check that a refactor keeps ``make demo``'s outputs: run the demo
with the same seeds before and after into two folders and compare them. What only
records when or how long (timestamped log folders, logs, durations) is left out;
numbers are compared exactly unless ``--rel-tol`` is given. Exit status 0 when the
folders hold the same run, 1 when anything differs (each difference printed).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='compare two run folders')
    parser.add_argument('first', type=Path)
    parser.add_argument('second', type=Path)
    parser.add_argument('--rel-tol', type=float, default=0.0,
                        help='relative tolerance of numbers (default 0: exactly equal)')
    parser.add_argument('--most', type=int, default=50, help='differences printed (50)')
    parser.add_argument('--exclude', nargs='+', default=[], metavar='GLOB',
                        help="relative names left out, e.g. 'cohort/*' 'data/*' (a demo's "
                        'synthetic DICOM and converted slices: tens of thousands of files)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for folder in (args.first, args.second):
        if not folder.is_dir():
            sys.exit(f'{folder}: no such folder')
    from mmnpc.runs.compare import compare_run_folders, run_files

    differences = compare_run_folders(args.first, args.second, args.rel_tol, args.exclude)
    n_files = len(run_files(args.first, args.exclude))
    for d in differences[:args.most]:
        print(f'{d.path}' + (f' [{d.where}]' if d.where else '') + f': {d.what}')
    if len(differences) > args.most:
        print(f'... {len(differences) - args.most} more')
    print(f'[compare] {n_files} files compared: '
          + ('the same run' if not differences else f'{len(differences)} differences'))
    return 1 if differences else 0


if __name__ == '__main__':
    sys.exit(main())
