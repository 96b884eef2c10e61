"""experiments/region_comparison.py: arms, the per-structure fusion command, the table."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def comparison(load_experiment):
    module = load_experiment('region_comparison')
    return module


def test_per_structure_fusion_fuses_the_primary_and_nodes_models(comparison, monkeypatch,
                                                                   tmp_path):
    calls = []
    monkeypatch.setattr(comparison, 'run', lambda cmd: calls.append(cmd))
    args = comparison.parse_args(['--data-root', 'D', '--work-dir', str(tmp_path), '--arms',
                                  'primary', 'nodes'])
    comparison.per_structure_fusion(args)
    [cmd] = calls
    assert cmd[1] == 'tools/late_fusion.py'
    image = cmd[cmd.index('--image-scores') + 1:cmd.index('--clinical-scores')]
    assert image == [str(tmp_path / 'primary' / s / 'patient_scores.csv') for s in ('test', 'val')]
    more = cmd[cmd.index('--more-image-scores') + 1:]
    assert more == [f'nodes={tmp_path / "nodes" / s / "patient_scores.csv"}'
                    for s in ('test', 'val')]
    calls.clear()
    comparison.per_structure_fusion(comparison.parse_args(
        ['--data-root', 'D', '--work-dir', str(tmp_path), '--arms', 'primary']))
    assert calls == []  # needs both structures


def test_the_attention_arm_is_the_attention_config(comparison):
    config, changes = comparison.ARMS['attention']
    assert config.endswith('msom_cet1_cpu_attention.py') and changes == []
    assert (REPO / config).is_file()


def test_markdown_shows_the_per_structure_fusion(comparison):
    summary = {'vs_clinical-only': [], 'arms': {}, 'per_structure_fusion': {
        'auc': 0.81, 'ci': [0.77, 0.85], 'vs': [{'model': 'clinical-only',
                                                 'difference_vs_reference': 0.05,
                                                 'p_value': 0.002}]}}
    text = comparison.markdown(summary)
    assert '0.810 (0.770-0.850)' in text and 'minus clinical-only 0.050, p 0.002' in text
