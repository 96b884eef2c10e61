"""A tiny converter-like output for the classifier's data tests: COCO + clinical.csv."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mmnpc.testing import write_synthetic_coco

COLUMNS = ['patient_id', 'age', 'sex', 'clinical_stage', 'pni', 'hgb', 'treatment',
           'gtv_dose_gy', 'cisplatin_dose_mg_m2', 'chemo_cycles', 'msom', 'split']
N_PATIENTS, N_VAL, SLICES, TUMOUR_FRACTION = 6, 2, 4, 0.5  # SYN000-003 train, SYN004-005 val


def clinical_rows() -> list[dict]:
    """One row per synthetic patient; SYN001 lacks pni, odd patients have MSOM."""
    rows = []
    for p in range(N_PATIENTS):
        rows.append({
            'patient_id': f'SYN{p:03d}', 'age': str(40 + 5 * p), 'sex': 'MF'[p % 2],
            'clinical_stage': ['II', 'III', 'IVA'][p % 3], 'pni': '' if p == 1 else str(45 + p),
            'hgb': str(120 + 3 * p), 'treatment': 'IMRT+CCRT', 'gtv_dose_gy': '70',
            'cisplatin_dose_mg_m2': '100', 'chemo_cycles': str(2 + p % 2), 'msom': str(p % 2),
            'split': 'val' if p >= N_PATIENTS - N_VAL else 'train'})
    return rows


def write_clinical(path: Path, rows: list[dict]) -> Path:
    with open(path, 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def msom_root(tmp_path: Path) -> Path:
    """<root>/cet1/{images,annotations} (64 px slices) and <root>/clinical.csv."""
    write_synthetic_coco(tmp_path, ('cet1',), n_patients=N_PATIENTS, slices_per_patient=SLICES,
                         tumour_fraction=TUMOUR_FRACTION, n_val_patients=N_VAL, size=64, seed=0)
    write_clinical(tmp_path / 'clinical.csv', clinical_rows())
    return tmp_path


@pytest.fixture
def rewrite_clinical(msom_root: Path):
    """``rewrite(change)``: apply ``change(rows)`` to the default rows and rewrite clinical.csv."""
    def rewrite(change) -> list[dict]:
        rows = clinical_rows()
        change(rows)
        write_clinical(msom_root / 'clinical.csv', rows)
        return rows
    return rewrite
