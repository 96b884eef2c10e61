"""Tiny DICOM cohorts for tests of the converter (seconds to write and convert)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.clinical import CLINICAL_COLUMNS
from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct


def write_cet1_only_cohort(root: Path, n_patients: int = 4) -> Path:
    """``root``/clinical.csv + NPC001.. with one CE-T1 series ('T1_FS_TRA_POST', 5 axial
    slices of 24 x 24 px at 2 x 2 x 3 mm, in ``MR/``) and an RTSTRUCT (``RS.dcm``: GTVnx
    and GTVnd) each; no T1, no T2. msom is 1 for even patient numbers."""
    rows = []
    for i in range(1, n_patients + 1):
        pid = f'NPC{i:03d}'
        rng = np.random.default_rng(i)
        series = write_mr_series(root / pid / 'MR', rng.normal(300, 30, (5, 24, 24)).clip(0),
                                 spacing=(2.0, 2.0, 3.0), origin=(-24.0, -24.0, -6.0),
                                 description='T1_FS_TRA_POST', patient=PatientHeader(), rng=rng)
        write_rtstruct(root / pid / 'RS.dcm', series,
                       {'GTVnx': [ellipse_contour((0.0, 0.0, 0.0), (8.0, 6.0), 32)],
                        'GTVnd': [ellipse_contour((14.0, 10.0, 3.0), (3.0, 3.0), 16)]},
                       patient=PatientHeader(), rng=rng)
        rows.append({'patient_id': pid, 'age': '50', 'msom': str(1 - i % 2)})
    pd.DataFrame(rows).reindex(columns=CLINICAL_COLUMNS).to_csv(root / 'clinical.csv',
                                                                 index=False)
    return root
