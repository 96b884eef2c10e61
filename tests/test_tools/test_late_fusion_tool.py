"""tools/late_fusion.py: two or more image models fused with the clinical-only model."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tool(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / 'tools'))
    import late_fusion
    return late_fusion


def _write(path: Path, frame: pd.DataFrame, split: str) -> Path:
    frame[frame['split'] == split].to_csv(path, index=False)
    return path


def test_a_model_per_structure_is_one_more_input(tool, tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    ids = [f'P{i:03d}' for i in range(n)]
    split = np.array(['val', 'test'] * (n // 2))
    clinical_z, primary_z, node_z = rng.normal(size=(3, n))
    label = (rng.uniform(size=n) < expit(clinical_z + primary_z + node_z)).astype(int)

    def table(z):
        return pd.DataFrame({'patient_id': ids, 'split': split, 'label': label,
                             'score': expit(z + rng.normal(0, 0.3, n)), 'n_slices': 1})
    files = {}
    for name, z in (('clinical', clinical_z), ('primary', primary_z), ('nodes', node_z)):
        frame = table(z)
        if name == 'nodes':  # four patients without nodes: not scored by the nodes model
            frame = frame.iloc[4:]
        files[name] = [_write(tmp_path / f'{name}_{s}.csv', frame, s) for s in ('test', 'val')]
    out = tmp_path / 'fused'
    assert tool.main(['--image-scores', *map(str, files['primary']),
                      '--clinical-scores', *map(str, files['clinical']), '--work-dir', str(out),
                      '--more-image-scores', *(f'nodes={p}' for p in files['nodes'])]) == 0
    coefficients = json.loads((out / 'late_fusion.json').read_text())
    assert set(coefficients['coef_extra']) == {'nodes'} and coefficients['coef_extra']['nodes'] > 0
    comparison = pd.read_csv(out / 'comparison.csv').set_index('model')
    assert set(comparison.index) == {'late fusion', 'clinical-only', 'image-only', 'nodes-only'}
    assert comparison.loc['late fusion', 'auc'] > comparison.loc['image-only', 'auc'] + 0.05
    assert comparison.loc['late fusion', 'n_patients'] == n // 2 - 2  # P000-P003: 2 test
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['late_fusion_not_scored_by_every_model'] == {'val': 2, 'test': 2}
    with pytest.raises(ValueError, match='NAME=FILE'):
        tool.named_files(['nodes'])
