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


def test_a_written_fusion_is_loaded_and_applied_to_a_prediction(tool, tmp_path):
    """tools/predict.py --late-fusion: the fused score of a new patient is the regression
    tools/late_fusion.py fitted, on the clinical model's and the image model's scores."""
    from types import SimpleNamespace

    from mmnpc.evaluation.late_fusion import load_late_fusion
    from mmnpc.inference.predict_patient import apply_late_fusion
    rng = np.random.default_rng(1)
    n = 200
    ids = [f'P{i:03d}' for i in range(n)]
    split = np.array(['val', 'test'] * (n // 2))
    clinical_z, image_z = rng.normal(size=(2, n))
    label = (rng.uniform(size=n) < expit(clinical_z + image_z)).astype(int)
    files = {}
    for name, z in (('clinical', clinical_z), ('image', image_z)):
        frame = pd.DataFrame({'patient_id': ids, 'split': split, 'label': label,
                              'score': expit(z), 'n_slices': 1})
        files[name] = [_write(tmp_path / f'{name}_{s}.csv', frame, s) for s in ('test', 'val')]
    out = tmp_path / 'fused'
    assert tool.main(['--image-scores', *map(str, files['image']), '--clinical-scores',
                      *map(str, files['clinical']), '--work-dir', str(out)]) == 0
    fusion, cutoff = load_late_fusion(out)
    assert cutoff == json.loads((out / 'metrics.json').read_text())['cutoff']
    clinical_model = SimpleNamespace(score=lambda values, patient_id: 0.3)
    pred = SimpleNamespace(patient_id='NEW', msom_score=0.8, risk_group=None)
    used = apply_late_fusion(pred, fusion, clinical_model, {'age': 50}, cutoff)
    z = fusion.intercept + fusion.coef_clinical * np.log(0.3 / 0.7) + fusion.coef_image * np.log(4)
    assert pred.msom_score == pytest.approx(expit(z))
    assert pred.risk_group == ('high' if pred.msom_score >= cutoff else 'low')
    assert used['image_score'] == 0.8 and used['clinical_score'] == 0.3
    assert used['late_fusion_coefficients']['weights_fitted'] is fusion.weights_fitted is True
    with pytest.raises(ValueError, match='no late fusion'):
        load_late_fusion(tmp_path)
