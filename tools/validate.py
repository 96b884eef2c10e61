"""``make validate``: the model-quality bars, checked on a finished ``make demo``.

    python tools/validate.py [--work-dir work_dirs/demo] [--no-run] [--out FILE]

Runs ``tools/demo.py --work-dir WORK_DIR`` first unless WORK_DIR already holds
a finished demo (its report.md), then prints every figure beside its bar
(mmnpc.evaluation.quality_bars), writes FILE (default WORK_DIR/validation.json) and exits 1
if any bar is missed (2 when there is no finished demo to check). Not part of ``make test`` (CI): the demo trains the CPU
detector recipe, about an hour on 2 cores. Run it before a release and after
changing a model, a recipe, the converter or the generator.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='model-quality checks on the demo outputs')
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/demo'),
                        help='the demo folder (default work_dirs/demo; made by the demo when '
                        'it holds no finished demo)')
    parser.add_argument('--no-run', action='store_true',
                        help='never run the demo: fail when WORK_DIR holds no finished demo')
    parser.add_argument('--out', type=Path,
                        help='JSON of the checks (default WORK_DIR/validation.json)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmnpc.evaluation.quality_bars import demo_checks, failed

    work_dir = args.work_dir if args.work_dir.is_absolute() else REPO / args.work_dir
    if not (work_dir / 'report.md').is_file():
        if args.no_run:
            print(f'{work_dir} holds no finished demo (no report.md); run make demo',
                  file=sys.stderr)
            return 2
        print(f'[validate] no finished demo in {work_dir}: running tools/demo.py (about an '
              'hour on 2 CPU cores)', flush=True)
        code = subprocess.run([sys.executable, 'tools/demo.py', '--work-dir', str(work_dir)],
                              cwd=REPO).returncode
        if code:
            sys.exit(f'the demo failed (exit {code}); nothing to validate')
    checks = demo_checks(work_dir)
    width = max(len(c.name) for c in checks)
    print(f'[validate] {work_dir} ({time.strftime("%Y-%m-%d %H:%M")})')
    for check in checks:
        value = f'{check.value:.3f}' if isinstance(check.value, float) else str(check.value)
        verdict = {True: 'PASS', False: 'FAIL', None: '    '}[check.passed]
        print(f'  {verdict}  {check.name:<{width}}  {value:>22}   bar: {check.bar}')
    missed = failed(checks)
    out = args.out or work_dir / 'validation.json'
    from mmnpc.utils.json_io import write_json
    write_json(out, {'date': time.strftime('%Y-%m-%d'), 'passed': not missed,
                     'checks': [c._asdict() for c in checks]})
    print(f'[validate] {len(missed)} of {sum(c.passed is not None for c in checks)} bars missed; '
          f'written to {out}')
    return 1 if missed else 0


if __name__ == '__main__':
    sys.exit(main())
