"""experiments/transfer.py: the runs it launches and the table it builds from their outputs.

The tools it calls (tools/train.py, tools/test.py) are replaced by a fake that
writes what they write (last_checkpoint, metrics.json, patient_scores.csv) with
known scores, so the aggregation -- AUC per run, mean +- SD per arm, paired
DeLong per seed -- is checked against figures computed here independently.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[2]
N_PATIENTS = 40


@pytest.fixture
def transfer(load_experiment):
    module = load_experiment('transfer')
    return module


def fake_scores(run_dir: Path, seed: int) -> pd.DataFrame:
    """Test-split scores: the detector arm separates the labels better than random init."""
    rng = np.random.default_rng(seed)
    labels = np.arange(N_PATIENTS) % 2
    signal = 1.5 if 'random' not in run_dir.parts else 0.3
    score = 1 / (1 + np.exp(-(signal * labels + rng.normal(0, 1, N_PATIENTS))))
    return pd.DataFrame({'patient_id': [f'NPC{i:03d}' for i in range(N_PATIENTS)],
                         'split': 'test', 'label': labels, 'score': score})


def fake_run(calls: list):
    def run(cmd: list[str]) -> float:
        calls.append(cmd)
        out = Path(cmd[cmd.index('--work-dir') + 1])
        out.mkdir(parents=True, exist_ok=True)
        if cmd[1] == 'tools/train.py':
            (out / 'iter_7.pth').write_bytes(b'weights')
            (out / 'last_checkpoint').write_text(str(out / 'iter_7.pth') + '\n')
            return 12.5
        seed = int(out.name.removeprefix('seed'))
        table = fake_scores(out, seed)
        table.to_csv(out / 'patient_scores.csv', index=False)
        (out / 'metrics.json').write_text(json.dumps({
            'eval_split': 'test', 'auc': roc_auc_score(table['label'], table['score']),
            'auc_ci_low': 0.1, 'auc_ci_high': 0.9, 'n_val_patients': N_PATIENTS,
            'n_val_positive': N_PATIENTS // 2, 'train_auc': 0.8}))
        return 3.0
    return run


def test_runs_both_arms_per_seed_and_summarises(tmp_path, monkeypatch, transfer):
    calls: list = []
    monkeypatch.setattr(transfer, 'run', fake_run(calls))
    det = tmp_path / 'det.pth'
    det.write_bytes(b'')
    argv = ['--data-root', str(tmp_path / 'data'), '--det-checkpoint', str(det),
            '--configs', 'configs/msom_fusion_tiny.py', '--seeds', '0', '1', '2',
            '--iters', '7', '--work-dir', str(tmp_path / 'w'), '--tag', 'frozen',
            '--detector-options', 'model.backbone.frozen_stages=4']
    transfer.main(argv)

    trains = [c for c in calls if c[1] == 'tools/train.py']
    assert len(trains) == 6 and len(calls) == 12
    with_det = [c for c in trains if '--det-checkpoint' in c]
    assert len(with_det) == 3
    assert all('model.backbone.frozen_stages=4' in c for c in with_det)
    assert not any('model.backbone.frozen_stages=4' in c for c in trains if c not in with_det)
    assert sorted(c[c.index('--cfg-options') + 1] for c in trains) == \
        ['randomness.seed=0'] * 2 + ['randomness.seed=1'] * 2 + ['randomness.seed=2'] * 2

    summary = json.loads((tmp_path / 'w' / 'transfer_frozen.json').read_text())
    assert summary['eval_split'] == 'test' and summary['caveat'] is None
    entry = summary['configs']['msom_fusion_tiny']
    for arm in ('frozen', 'random'):
        aucs = []
        for seed in (0, 1, 2):
            table = fake_scores(tmp_path / 'w' / 'msom_fusion_tiny' / arm / f'seed{seed}', seed)
            aucs.append(roc_auc_score(table['label'], table['score']))
            assert entry['arms'][arm]['runs'][str(seed)]['auc'] == pytest.approx(aucs[-1])
        assert entry['arms'][arm]['auc_mean'] == pytest.approx(statistics.fmean(aucs))
        assert entry['arms'][arm]['auc_sd'] == pytest.approx(statistics.stdev(aucs))
        assert entry['arms'][arm]['n_defined'] == 3
    assert entry['arms']['frozen']['auc_mean'] > entry['arms']['random']['auc_mean']

    for seed in (0, 1, 2):
        a = fake_scores(tmp_path / 'frozen', seed)
        b = fake_scores(tmp_path / 'random', seed)
        test = entry['paired_delong'][str(seed)]
        assert test['n_patients'] == N_PATIENTS
        assert test['difference'] == pytest.approx(
            roc_auc_score(a['label'], a['score']) - roc_auc_score(b['label'], b['score']))
        assert 0 < test['p_value'] < 1
    table = (tmp_path / 'w' / 'transfer_frozen.md').read_text()
    assert table.count('| `msom_fusion_tiny` |') == 8  # 2 arms x (3 seeds + mean)
    for seed in (0, 1, 2):  # the table's p-values are the JSON's
        p = entry['paired_delong'][str(seed)]['p_value']
        assert f'| `msom_fusion_tiny` | frozen | {seed} |' in table
        row = next(line for line in table.splitlines()
                   if line.startswith(f'| `msom_fusion_tiny` | frozen | {seed} |'))
        assert row.endswith(f'| {p:.3f} |')


def test_resumes_finished_runs(tmp_path, monkeypatch, transfer):
    calls: list = []
    monkeypatch.setattr(transfer, 'run', fake_run(calls))
    det = tmp_path / 'det.pth'
    det.write_bytes(b'')
    argv = ['--data-root', str(tmp_path), '--det-checkpoint', str(det), '--configs',
            'configs/msom_cet1_tiny.py', '--seeds', '0', '1', '--work-dir', str(tmp_path / 'w')]
    transfer.main(argv)
    first = len(calls)
    transfer.main(argv)
    assert first == 8 and len(calls) == first


def test_validation_only_cohort_says_so(tmp_path, transfer):
    args = transfer.parse_args(['--data-root', 'd', '--det-checkpoint', 'c', '--configs', 'x.py',
                                '--seeds', '0'])
    run = {'eval_split': 'val', 'auc': 0.6}
    summary = transfer.summarise({'x': {'detector': {0: run}, 'random': {0: run}}},
                                 {'x': {0: {'p_value': None}}}, args)
    assert summary['caveat'] and 'validation' in summary['caveat']
    assert summary['configs']['x']['arms']['random']['auc_sd'] is None


def test_a_resume_with_other_settings_or_an_untagged_variant_is_refused(tmp_path, monkeypatch,
                                                                         transfer):
    calls: list = []
    monkeypatch.setattr(transfer, 'run', fake_run(calls))
    det = tmp_path / 'det.pth'
    det.write_bytes(b'')
    argv = ['--data-root', str(tmp_path), '--det-checkpoint', str(det), '--configs',
            'configs/msom_cet1_tiny.py', '--seeds', '0', '--work-dir', str(tmp_path / 'w')]
    transfer.main(argv)
    with pytest.raises(SystemExit, match='other settings'):
        transfer.main([*argv, '--iters', '9'])
    with pytest.raises(SystemExit, match='--tag'):
        transfer.main([*argv, '--detector-options', 'model.backbone.frozen_stages=4'])
