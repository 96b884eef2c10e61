"""A hand-made cohort whose KM, log-rank and Cox results are worked out in the tests."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

# (patient, score, dmfs_months, dmfs_event); all times distinct, so Efron = Breslow.
HIGH = [('H1', 0.90, 6, 1), ('H2', 0.80, 12, 1), ('H3', 0.70, 18, 0), ('H4', 0.95, 24, 1),
        ('H5', 0.60, 30, 1), ('H6', 0.85, 40, 0), ('H7', 0.75, 48, 1), ('H8', 0.50, 50, 0)]
LOW = [('L1', 0.10, 8, 0), ('L2', 0.20, 15, 1), ('L3', 0.30, 20, 0), ('L4', 0.40, 28, 0),
       ('L5', 0.05, 36, 1), ('L6', 0.15, 42, 0), ('L7', 0.25, 45, 1), ('L8', 0.35, 60, 0),
       ('L9', 0.45, 66, 0), ('L10', 0.49, 70, 0)]
CUTOFF = 0.5  # H8 scores exactly 0.5: high, as the rule says score >= cutoff


def write_cohort(root: Path, rows=None, *, cutoff: float | None = CUTOFF, split='val',
                 os_same_as_dmfs: bool = True) -> tuple[Path, Path]:
    """Write WORK_DIR/patient_scores.csv (+ metrics.json) and clinical.csv under ``root``."""
    rows = rows if rows is not None else HIGH + LOW
    work_dir = root / 'work_dir'
    work_dir.mkdir(parents=True, exist_ok=True)
    scores = pd.DataFrame({'patient_id': [r[0] for r in rows], 'split': split,
                           'score': [r[1] for r in rows], 'label': 0,
                           'risk_group': 'ignored'})
    scores.to_csv(work_dir / 'patient_scores.csv', index=False)
    if cutoff is not None:
        (work_dir / 'metrics.json').write_text(json.dumps({'cutoff': cutoff, 'auc': 0.7}))
    clinical = pd.DataFrame({'patient_id': [r[0] for r in rows], 'age': 50,
                             'dmfs_months': [r[2] for r in rows],
                             'dmfs_event': [r[3] for r in rows]})
    clinical['os_months'] = clinical['dmfs_months'] if os_same_as_dmfs else 80
    clinical['os_event'] = clinical['dmfs_event'] if os_same_as_dmfs else 0
    clinical['split'] = split
    clinical_path = root / 'clinical.csv'
    clinical.to_csv(clinical_path, index=False)
    return work_dir / 'patient_scores.csv', clinical_path


@pytest.fixture
def cohort(tmp_path: Path) -> tuple[Path, Path]:
    return write_cohort(tmp_path)


@pytest.fixture(autouse=True)
def skip_plot_drawing(request, monkeypatch):
    """Drawing costs ~1 s per endpoint: tests that do not ask for ``real_plots`` record
    the plot call instead of drawing (the statistics do not depend on the plot)."""
    if 'real_plots' in request.fixturenames:
        return
    from mmnpc.survival import km_plot

    def record(fitters, out_stem, **kwargs):
        assert fitters, 'plot_km called without a group'
        return [Path(f'{out_stem}.png'), Path(f'{out_stem}.pdf')]

    monkeypatch.setattr(km_plot, 'plot_km', record)


@pytest.fixture
def real_plots():
    """Request this to let run_km draw its PNG/PDF plots."""
