"""Clinical-only baseline: train-only fitting, agreement with sklearn, and the CLI's files."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mmnpc.datasets import ClinicalEncoder, read_clinical_rows
from mmnpc.evaluation import evaluate_patient_table
from mmnpc.evaluation.clinical_baseline import clinical_logistic_scores

REPO = Path(__file__).resolve().parents[3]
TOOL = REPO / 'tools' / 'clinical_baseline.py'
COLUMNS = ['patient_id', 'age', 'sex', 'clinical_stage', 'pni', 'hgb', 'treatment',
           'gtv_dose_gy', 'cisplatin_dose_mg_m2', 'chemo_cycles', 'msom', 'split']
VARS = [dict(name='age', kind='numeric'),
        dict(name='sex', kind='categorical', categories=['F', 'M']),
        dict(name='pni', kind='numeric'),
        dict(name='clinical_stage', kind='categorical',
             categories=['I', 'II', 'III', 'IVA', 'IVB'])]


def _rows(n_train: int = 30, n_val: int = 15, n_test: int = 15, seed: int = 0) -> list[dict]:
    """Patients whose pni carries a strong MSOM signal; the other variables are noise."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    msom = np.tile([0, 1], n)[:n]  # both classes in every split
    rows = []
    for p in range(n):
        split = 'train' if p < n_train else 'val' if p < n_train + n_val else 'test'
        rows.append({
            'patient_id': f'P{p:03d}', 'age': f'{rng.normal(50, 10):.0f}',
            'sex': 'FM'[rng.integers(2)], 'clinical_stage': ['II', 'III', 'IVA'][rng.integers(3)],
            'pni': '' if p == 3 else f'{45 + 6 * msom[p] + rng.normal(0, 2):.1f}',
            'hgb': f'{rng.normal(130, 10):.0f}',
            'treatment': ['IMRT', 'IMRT+CCRT', 'IMRT+IC+CCRT'][rng.integers(3)],
            'gtv_dose_gy': '70', 'cisplatin_dose_mg_m2': f'{rng.choice([80, 100])}',
            'chemo_cycles': f'{rng.integers(1, 4)}', 'msom': str(msom[p]), 'split': split})
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    with open(path, 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _splits(rows: list[dict]) -> dict[str, str]:
    return {row['patient_id']: row['split'] for row in rows}


def test_scores_equal_a_direct_sklearn_fit_on_the_encoded_matrix(tmp_path):
    rows = _rows()
    csv_path = _write(tmp_path / 'clinical.csv', rows)
    table = clinical_logistic_scores(csv_path, VARS, _splits(rows))
    assert list(table.columns) == ['patient_id', 'split', 'score', 'label', 'n_slices']
    assert len(table) == len(rows) and (table['n_slices'] == 0).all()

    clinical = read_clinical_rows(csv_path)
    train = sorted(r['patient_id'] for r in rows if r['split'] == 'train')
    encoder = ClinicalEncoder(VARS).fit({p: clinical[p] for p in train})
    everyone = sorted(clinical)
    matrix = np.stack([encoder.encode(clinical[p], p) for p in everyone]).astype(np.float64)
    labels = np.array([int(clinical[p]['msom']) for p in everyone])
    in_train = np.isin(everyone, train)
    model = LogisticRegression(C=1.0, solver='lbfgs', max_iter=1000).fit(matrix[in_train],
                                                                        labels[in_train])
    expected = pd.Series(model.predict_proba(matrix)[:, 1], index=everyone)
    by_patient = table.set_index('patient_id')
    assert np.allclose(by_patient.loc[everyone, 'score'], expected, rtol=0, atol=1e-12)
    assert (by_patient.loc[everyone, 'label'].to_numpy() == labels).all()


def test_held_out_patients_do_not_move_the_training_fit(tmp_path):
    rows = _rows()
    before = clinical_logistic_scores(_write(tmp_path / 'a.csv', rows), VARS, _splits(rows))
    changed = [dict(row) for row in rows]
    for row in changed:
        if row['split'] in ('val', 'test'):  # extreme: would shift a mean / SD fitted on them
            row['pni'], row['age'] = '500', '1'
    after = clinical_logistic_scores(_write(tmp_path / 'b.csv', changed), VARS, _splits(changed))
    train = before['split'] == 'train'
    assert np.array_equal(before.loc[train, 'score'].to_numpy(),
                          after.loc[train, 'score'].to_numpy())
    assert not np.allclose(before.loc[~train, 'score'], after.loc[~train, 'score'])


def test_strong_signal_is_found_on_held_out_patients_and_evaluates_unchanged(tmp_path):
    rows = _rows()
    table = clinical_logistic_scores(_write(tmp_path / 'clinical.csv', rows), VARS, _splits(rows))
    held_out = table[table['split'] != 'train']
    assert roc_auc_score(held_out['label'], held_out['score']) > 0.9
    evaluation = evaluate_patient_table(table[table['split'] != 'val'], eval_split='test')
    assert evaluation.report['auc'] > 0.9 and evaluation.report['n_val_patients'] == 15
    assert evaluation.report['eval_split'] == 'test' and math.isfinite(evaluation.report['cutoff'])


def test_one_class_or_no_training_patients_are_refused(tmp_path):
    rows = _rows()
    for row in rows:
        if row['split'] == 'train':
            row['msom'] = '0'
    csv_path = _write(tmp_path / 'clinical.csv', rows)
    with pytest.raises(ValueError, match='both classes'):
        clinical_logistic_scores(csv_path, VARS, _splits(rows))
    held_out = {p: s for p, s in _splits(rows).items() if s != 'train'}
    with pytest.raises(ValueError, match="no 'train' patients"):
        clinical_logistic_scores(csv_path, VARS, held_out)
    with pytest.raises(ValueError, match='clinical_vars is empty'):
        clinical_logistic_scores(csv_path, [], _splits(rows))


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('clinical_baseline_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_the_three_files_for_the_test_split(tool, tmp_path, capsys):
    rows = _rows()
    _write(tmp_path / 'clinical.csv', rows)
    work_dir = tmp_path / 'work'
    status = tool.main(['--data-root', str(tmp_path), '--config',
                        str(REPO / 'configs' / 'msom_fusion.py'), '--work-dir', str(work_dir)])
    assert status == 0
    assert {p.name for p in work_dir.iterdir()} >= {'metrics.json', 'patient_scores.csv',
                                                     'roc.png'}
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    assert metrics['eval_split'] == 'test' and metrics['n_val_patients'] == 15
    assert metrics['n_train_patients'] == 30 and metrics['auc'] > 0.9
    assert len(metrics['clinical_vars']) == 9  # fusion_clinical_vars of the config
    scores = pd.read_csv(work_dir / 'patient_scores.csv')
    assert set(scores['split']) == {'train', 'test'}  # val patients are not in the table
    assert 'AUC' in capsys.readouterr().out
    from mmnpc.evaluation.clinical_baseline import ClinicalModel
    model = ClinicalModel.load(work_dir / 'clinical_model.json')  # for predict --late-fusion
    first = scores.iloc[0]
    row = next(r for r in rows if r['patient_id'] == first['patient_id'])
    assert model.score(row, row['patient_id']) == pytest.approx(first['score'])


def test_cli_falls_back_to_val_with_a_note(tool, tmp_path, capsys):
    rows = [row for row in _rows() if row['split'] != 'test']
    _write(tmp_path / 'clinical.csv', rows)
    work_dir = tmp_path / 'work'
    assert tool.main(['--data-root', str(tmp_path), '--config',
                      str(REPO / 'configs' / 'msom_fusion.py'), '--work-dir', str(work_dir)]) == 0
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    assert metrics['eval_split'] == 'val' and metrics['notes'][0] == tool.VAL_NOTE
    assert 'validation patients' in capsys.readouterr().out


def test_cli_refuses_an_image_only_config(tool, tmp_path, capsys):
    _write(tmp_path / 'clinical.csv', _rows())
    assert tool.main(['--data-root', str(tmp_path), '--config',
                      str(REPO / 'configs' / 'msom_cet1.py'), '--work-dir',
                      str(tmp_path / 'work')]) == 2
    assert 'clinical_vars' in capsys.readouterr().err


def test_the_fitted_model_scores_a_new_patient_like_the_table(tmp_path):
    """clinical_model.json (written by the tool) scores a patient from its clinical values
    alone exactly as the baseline's table scores it: late fusion at prediction uses it."""
    import json

    from mmnpc.evaluation.clinical_baseline import ClinicalModel, fit_clinical_model
    rows = _rows()
    csv_path = _write(tmp_path / 'clinical.csv', rows)
    model, table = fit_clinical_model(csv_path, VARS, _splits(rows))
    again = ClinicalModel.from_json(json.loads(json.dumps(model.to_json())))
    by_id = table.set_index('patient_id')['score']
    for row in rows[::7]:
        values = {k: v for k, v in row.items() if k not in ('msom', 'split')}
        assert again.score(values, row['patient_id']) == pytest.approx(by_id[row['patient_id']])
    assert again.score({'age': None, 'sex': None, 'pni': None, 'clinical_stage': None}) > 0
    bad = model.to_json() | {'coef': [0.0]}
    with pytest.raises(ValueError, match='coefficients'):
        ClinicalModel.from_json(bad)
