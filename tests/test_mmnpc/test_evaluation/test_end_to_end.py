"""evaluate_end_to_end on hand-made rows: the deployment cut-off sees training patients only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmnpc.evaluation import delong_auc_ci, youden_cutoff
from mmnpc.evaluation.end_to_end import ROW_COLUMNS, deployment_record, evaluate_end_to_end


def rows(seed: int = 0, n_train: int = 12, n_test: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    label = np.array([i % 2 for i in range(n)])
    e2e = rng.uniform(size=n) * 0.6 + 0.3 * label
    e2e[3] = np.nan  # a training patient whose tumour the detector missed
    table = pd.DataFrame({
        'patient_id': [f'P{i:02d}' for i in range(n)],
        'split': ['train'] * n_train + ['test'] * n_test, 'label': label,
        'contour_score': rng.uniform(size=n), 'end_to_end_score': e2e, 'n_slices': 30,
        'n_slices_looked_at': 10, 'n_slices_detected': 4, 'n_slices_scored': 4,
        'n_tumour_slices': 5, 'n_tumour_slices_detected': 4, 'slice_recall': 0.8,
        'slice_precision': 1.0, 'tumour_found': ~np.isnan(e2e)})
    return table[list(ROW_COLUMNS)]


def test_deployment_cutoff_is_youden_on_the_scored_training_patients():
    table = rows()
    evaluation = evaluate_end_to_end(table)
    train = table[(table['split'] == 'train') & table['end_to_end_score'].notna()]
    cutoff = youden_cutoff(train['end_to_end_score'], train['label'])
    assert evaluation.report['end_to_end_cutoff'] == pytest.approx(cutoff)
    assert deployment_record(evaluation)['cutoff'] == pytest.approx(cutoff)
    test = table[table['split'] == 'test']
    assert evaluation.report['end_to_end_auc'] == pytest.approx(
        delong_auc_ci(test['end_to_end_score'], test['label']).auc)


@pytest.mark.parametrize('seed', range(5))
def test_nothing_about_the_test_patients_moves_the_cutoff(seed):
    table = rows()
    before = evaluate_end_to_end(table).report['end_to_end_cutoff']
    changed = table.copy()
    test = changed['split'] == 'test'
    rng = np.random.default_rng(100 + seed)
    changed.loc[test, 'end_to_end_score'] = rng.uniform(size=test.sum())
    changed.loc[test, 'label'] = rng.integers(0, 2, size=test.sum())
    changed.loc[changed.index[test][0], 'label'] = 0
    changed.loc[changed.index[test][1], 'label'] = 1
    after = evaluate_end_to_end(changed)
    assert after.report['end_to_end_cutoff'] == before  # exactly: fitted on train rows only
