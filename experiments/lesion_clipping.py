"""How much of each lesion the intensity normalisation saturates (a script, not a test).

Converts every patient of a cohort folder in memory (``data_prep.prepare_patient``)
under the rule before 2026-12-07 (upper limit = the volume's 99.5th percentile)
and the current one (upper limit = the 27th brightest voxel; ``data_prep.intensity``)
and prints, per sequence and structure, the median and 90th percentile over
patients of the share of contour voxels at 255 (the manifest's
``intensity.contour_clip_shares.<class>.high``).

    python -m data_prep synth /tmp/clip24 --patients 24 --seed 0
    python experiments/lesion_clipping.py /tmp/clip24
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RULES = {'p99.5 (before)': None, '27th brightest voxel (now)': 27}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='share of lesion voxels clipped at 255')
    parser.add_argument('cohort', type=Path, help='cohort folder (one folder per patient)')
    args = parser.parse_args(argv)
    from data_prep.options import PrepOptions
    from data_prep.patient import prepare_patient

    result = {}
    for rule, top in RULES.items():
        shares: dict[str, list[float]] = {}
        for folder in sorted(p for p in args.cohort.iterdir() if p.is_dir()):
            prepared = prepare_patient(folder, folder.name, PrepOptions(intensity_top_voxels=top))
            for sequence, item in prepared.items():
                for name, share in item.info['intensity']['contour_clip_shares'].items():
                    shares.setdefault(f'{sequence} {name}', []).append(share['high'])
        result[rule] = {key: {'median': round(float(np.median(v)), 3),
                              'p90': round(float(np.percentile(v, 90)), 3), 'patients': len(v)}
                        for key, v in sorted(shares.items())}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
