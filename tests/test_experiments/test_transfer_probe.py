"""experiments/transfer_probe.py: the probe per arm, the comparison table, the feature cache.

Feature extraction is replaced by known features (the models are tested in
tests/test_mmnpc/test_inference/test_patient_features.py); the probe's scores,
AUCs and paired tests are checked against figures computed here independently.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mmnpc.evaluation import delong_paired_test
from mmnpc.evaluation.linear_probe import fit_linear_probe

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def probe_script(load_experiment):
    module = load_experiment('transfer_probe')
    return module


def _patients(n_train=80, n_test=60, seed=0):
    rng = np.random.default_rng(seed)
    split = ['train'] * n_train + ['test'] * n_test
    label = (np.arange(n_train + n_test) % 3 == 0).astype(int)
    table = pd.DataFrame({'patient_id': [f'P{i:03d}' for i in range(len(split))],
                          'split': split, 'label': label})
    return table, rng


def test_probe_scores_fit_on_training_rows_and_average_the_inner_seeds(probe_script):
    table, rng = _patients()
    matrix = rng.normal(size=(len(table), 6))
    matrix[:, 0] += 1.5 * table['label'].to_numpy()
    args = probe_script.parse_args(['--data-root', 'x', '--work-dir', 'w', '--inner-seeds', '0',
                                    '1', '--inner-folds', '4'])
    scores, fits = probe_script.probe_scores(table, matrix, args)
    train = (table['split'] == 'train').to_numpy()
    expected = np.mean([fit_linear_probe(matrix[train], table['label'][train], folds=4,
                                         seed=s).score(matrix[~train]) for s in (0, 1)], axis=0)
    assert scores['score'].to_numpy() == pytest.approx(expected)
    assert list(scores['patient_id']) == list(table['patient_id'][~train])
    assert [f['n_fit_patients'] for f in fits] == [80, 80]
    # changing every test row (features and labels) moves nothing fitted
    changed = matrix.copy()
    changed[~train] = rng.normal(size=changed[~train].shape)
    table2 = table.assign(label=np.where(train, table['label'], 1 - table['label']))
    _, fits2 = probe_script.probe_scores(table2, changed, args)
    assert [f['C'] for f in fits2] == [f['C'] for f in fits]


def test_comparison_table_against_independent_figures(probe_script):
    table, rng = _patients(0, 90)
    labels = table['label'].to_numpy()
    scores = {arm: table.assign(score=rng.normal(size=90) + shift * labels)
              for arm, shift in (('random_s0', 0.2), ('random_s1', 0.4), ('detector', 1.0))}
    fits = {arm: [{'C': 0.1, 'inner_cv_auc': 0.6, 'n_fit_patients': 80}] for arm in scores}
    args = probe_script.parse_args(['--data-root', 'x', '--work-dir', 'w', '--random-seeds', '0',
                                    '1'])
    summary = probe_script.compare(scores, fits, args)
    for arm, frame in scores.items():
        assert summary['arms'][arm]['auc'] == pytest.approx(roc_auc_score(labels, frame['score']))
    randoms = [roc_auc_score(labels, scores[a]['score']) for a in ('random_s0', 'random_s1')]
    assert summary['random_auc_mean'] == pytest.approx(np.mean(randoms))
    assert summary['random_auc_sd'] == pytest.approx(np.std(randoms, ddof=1))
    [first, second] = summary['comparisons']['detector']
    test = delong_paired_test(scores['detector']['score'], scores['random_s1']['score'], labels)
    assert second['against'] == 'random_s1'
    assert second['difference'] == pytest.approx(test.difference)
    assert second['p_value'] == pytest.approx(test.p_value)
    assert second['detectable_difference'] == pytest.approx(2.8 * test.se)
    text = probe_script.markdown(summary)
    assert 'detector | random_s1' in text and f'{test.difference:.3f}' in text


def test_cached_features_of_other_samples_or_settings_are_refused(probe_script, tmp_path):
    det = tmp_path / 'det.pth'
    det.write_bytes(b'weights')
    args = probe_script.parse_args(['--data-root', 'x', '--work-dir', str(tmp_path),
                                    '--det-checkpoint', str(det)])
    meta = [{'patient_id': 'A', 'img_path': 'a.jpg', 'region_box': [0, 0, 1, 1]}]
    key = np.array(['A|a.jpg|[0, 0, 1, 1]'])
    cache = tmp_path / 'features' / 'detector_roi.npz'
    cache.parent.mkdir()
    made_with = np.array(probe_script.fingerprint('detector_roi', args))
    np.savez(cache, features=np.zeros((1, 2)), keys=np.array(['B|b.jpg|[0, 0, 1, 1]']),
             fingerprint=made_with)
    with pytest.raises(SystemExit, match='other samples'):
        probe_script.arm_features('detector_roi', None, None, meta, args)
    np.savez(cache, features=np.ones((1, 2)), keys=key, fingerprint=made_with)
    assert probe_script.arm_features('detector_roi', None, None, meta, args).tolist() == [[1, 1]]
    for change in (['--margin-mm', '8'], ['--det-checkpoint', str(tmp_path / 'other.pth')]):
        (tmp_path / 'other.pth').write_bytes(b'other weights')
        other = probe_script.parse_args(['--data-root', 'x', '--work-dir', str(tmp_path),
                                         '--det-checkpoint', str(det), *change])
        with pytest.raises(SystemExit, match='other settings'):
            probe_script.arm_features('detector_roi', None, None, meta, other)
    np.savez(cache, features=np.ones((1, 2)), keys=key)  # no fingerprint: refused too
    with pytest.raises(SystemExit, match='other settings'):
        probe_script.arm_features('detector_roi', None, None, meta, args)
