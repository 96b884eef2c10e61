"""Models compared on the same patients with the paired DeLong test."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmnpc.evaluation import delong_auc_ci, delong_paired_test
from mmnpc.evaluation.model_comparison import common_patients, compare_models

REPO = Path(__file__).resolve().parents[3]


def _tables(seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f'P{i:02d}' for i in range(40)]
    labels = rng.integers(0, 2, 40)
    splits = ['train'] * 10 + ['test'] * 30
    good = labels + rng.normal(0, 0.8, 40)
    weak = labels + rng.normal(0, 2.0, 40)
    a = pd.DataFrame({'patient_id': ids, 'split': splits, 'label': labels, 'score': good})
    b = pd.DataFrame({'patient_id': ids, 'split': splits, 'label': labels, 'score': weak})
    b.loc[5 + 10, 'score'] = np.nan  # one test patient the second model could not score
    return a, b


def test_models_are_compared_on_the_common_test_patients():
    a, b = _tables()
    result = compare_models({'fusion': a, 'baseline': b}, 'fusion', 'test')
    keep = a['split'].eq('test') & b['score'].notna()
    assert list(result['model']) == ['fusion', 'baseline']
    assert (result['n_patients'] == keep.sum()).all()
    assert result['auc'][0] == pytest.approx(delong_auc_ci(a['score'][keep], a['label'][keep]).auc)
    test = delong_paired_test(a['score'][keep], b['score'][keep], a['label'][keep])
    assert result['difference_vs_reference'][1] == pytest.approx(test.difference)
    assert result['p_value'][1] == pytest.approx(test.p_value)
    assert np.isnan(result['p_value'][0])


def test_different_labels_mean_different_cohorts():
    a, b = _tables()
    b.loc[20, 'label'] = 1 - b.loc[20, 'label']
    with pytest.raises(ValueError, match='different labels'):
        common_patients({'a': a, 'b': b}, 'test')


def test_the_tool_writes_csv_and_json(tmp_path):
    a, b = _tables(1)
    a.to_csv(tmp_path / 'a.csv', index=False)
    b.rename(columns={'score': 'end_to_end_score'}).to_csv(tmp_path / 'b.csv', index=False)
    result = subprocess.run(
        [sys.executable, 'tools/compare_models.py', '--reference', 'fusion',
         '--model', f'fusion={tmp_path / "a.csv"}', '--model',
         f'e2e={tmp_path / "b.csv"}:end_to_end_score', '--out', str(tmp_path / 'out')],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / 'out' / 'comparison.json').read_text())
    assert [m['model'] for m in record['models']] == ['fusion', 'e2e']
    assert record['models'][0]['p_value'] is None and 0 <= record['models'][1]['p_value'] <= 1
    assert 'vs fusion: p =' in result.stdout


def test_a_model_that_scored_nobody_keeps_a_row_and_does_not_empty_the_comparison():
    a, b = _tables()
    nothing = b.assign(score=np.nan)  # an end-to-end score where the detector found nothing
    result = compare_models({'fusion': a, 'baseline': b, 'end_to_end': nothing}, 'fusion')
    assert list(result['model']) == ['fusion', 'baseline', 'end_to_end']
    assert result['n_patients'][2] == 0 and np.isnan(result['auc'][2])
    assert 'left out' in result['note'][2] and result['note'][0] == ''
    assert result['n_patients'][0] == result['n_patients'][1] > 0
    with pytest.raises(ValueError, match='scored no test patient'):
        compare_models({'fusion': nothing, 'baseline': b}, 'fusion')
