"""Benchmark hook for the MSOM classifier (issue item 3): not written yet.

To be measured: seconds per training iteration of ``configs/msom_fusion_tiny.py``
(and the full ``configs/msom_fusion.py`` on a GPU) and the share of each
iteration spent waiting for data (MMEngine's ``data_time`` / ``time``), with the
peak memory of the training process (``common.run_in_child``). Until then this
stage reports its status and no figures.
"""
from __future__ import annotations

from pathlib import Path

from common import REPO

NEEDED = ('configs/msom_fusion_tiny.py',)


def run(work_dir: Path, log_file: Path | None = None) -> dict:
    """Status of the classifier benchmark (no figures are made up)."""
    missing = [path for path in NEEDED if not (REPO / path).is_file()]
    if missing:
        return {'status': 'not yet available', 'missing': missing}
    return {'status': 'not yet implemented',
            'note': 'the classifier exists; its benchmark is still to be written here'}
