"""tools/km.py: argument handling, printed summary, exit status on bad input."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

KM_TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'km.py'


@pytest.fixture(scope='module')
def km_tool():
    spec = importlib.util.spec_from_file_location('km_tool', KM_TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def record_plots(monkeypatch):
    """Skip drawing (tested in tests/test_mmnpc/test_survival); keep the paths."""
    from mmnpc.survival import km_plot
    monkeypatch.setattr(km_plot, 'plot_km', lambda fitters, out_stem, **kw: [])


def _cohort(root: Path, metrics: dict | None) -> tuple[Path, Path]:
    """12 validation patients: high risk (score >= 0.5) relapse early, low risk late/never."""
    work_dir = root / 'work_dir'
    work_dir.mkdir()
    ids = [f'P{i:02d}' for i in range(12)]
    scores = [0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.45]
    months = [5, 9, 14, 20, 40, 44, 30, 48, 50, 60, 62, 70]
    events = [1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    pd.DataFrame({'patient_id': ids, 'split': 'val', 'score': scores, 'label': events,
                  'risk_group': 'low'}).to_csv(work_dir / 'patient_scores.csv', index=False)
    if metrics is not None:
        (work_dir / 'metrics.json').write_text(json.dumps(metrics))
    pd.DataFrame({'patient_id': ids, 'dmfs_months': months, 'dmfs_event': events,
                  'os_months': months, 'os_event': events, 'split': 'val'}).to_csv(
        root / 'clinical.csv', index=False)
    return work_dir / 'patient_scores.csv', root / 'clinical.csv'


def test_runs_as_a_script():
    result = subprocess.run([sys.executable, str(KM_TOOL), '--help'], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0
    assert '--cutoff' in result.stdout and '--split' in result.stdout


def test_writes_results_and_prints_summary(km_tool, tmp_path, capsys):
    scores, clinical = _cohort(tmp_path, {'cutoff': 0.5})
    out = tmp_path / 'km'
    assert km_tool.main([str(scores), str(clinical), '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / 'survival.json').read_text())
    assert report['cutoff'] == 0.5 and report['n_high'] == 6
    assert 'DMFS: 12 patients, 6 events' in printed
    p_value = report['endpoints']['dmfs']['logrank']['p_value']
    assert f'p={p_value:.3g}' in printed
    assert (out / 'km_dmfs.csv').is_file() and (out / 'km_os.csv').is_file()


def test_cutoff_option_overrides_metrics(km_tool, tmp_path, capsys):
    scores, clinical = _cohort(tmp_path, {'cutoff': 0.5})
    assert km_tool.main([str(scores), str(clinical), '--out', str(tmp_path / 'km'),
                         '--cutoff', '0.25', '--split', 'all']) == 0
    report = json.loads((tmp_path / 'km' / 'survival.json').read_text())
    assert (report['cutoff'], report['n_high'], report['split']) == (0.25, 9, 'all')
    assert 'given by the user' in capsys.readouterr().out


def test_missing_cutoff_is_a_clear_error(km_tool, tmp_path, capsys):
    scores, clinical = _cohort(tmp_path, metrics=None)
    assert km_tool.main([str(scores), str(clinical), '--out', str(tmp_path / 'km')]) == 2
    error = capsys.readouterr().err
    assert 'metrics.json not found' in error and '--cutoff' in error
    assert not (tmp_path / 'km').exists()
