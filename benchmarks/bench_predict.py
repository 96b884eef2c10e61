"""Benchmark hook for prediction on new patients (issue item 4): not written yet.

To be measured: seconds per patient (one sequence, whole volume) of
``tools/predict.py`` on CPU with 2 threads for the tiny configs, where the
time goes (conversion, detector, classifier), the full-size figure, and the
peak memory (``common.run_in_child``). Until then this stage reports its
status and no figures.
"""
from __future__ import annotations

from pathlib import Path

from common import REPO

NEEDED = ('tools/predict.py',)


def run(work_dir: Path, log_file: Path | None = None) -> dict:
    """Status of the prediction benchmark (no figures are made up)."""
    missing = [path for path in NEEDED if not (REPO / path).is_file()]
    if missing:
        return {'status': 'not yet available', 'missing': missing}
    return {'status': 'not yet implemented',
            'note': 'tools/predict.py exists; its benchmark is still to be written here'}
