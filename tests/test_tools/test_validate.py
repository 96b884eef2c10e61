"""tools/validate.py (make validate) on demo folders it must not re-run: prints, writes, exits."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('validate_tool', REPO / 'tools' / 'validate.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_passing_demo_prints_each_figure_beside_its_bar(tool, demo_folder, tmp_path, capsys):
    work = demo_folder(tmp_path / 'demo')
    (work / 'report.md').write_text('# demo\n')
    assert tool.main(['--work-dir', str(work), '--no-run']) == 0
    out = capsys.readouterr().out
    assert 'PASS  detector GTV box AP@0.5 (test_step16)' in out and 'bar: >= 0.75' in out
    assert '0 of 12 bars missed' in out
    record = json.loads((work / 'validation.json').read_text())
    assert record['passed'] is True and len(record['checks']) == 13


def test_a_missed_bar_exits_1_and_says_which(tool, demo_folder, tmp_path, capsys):
    work = demo_folder(tmp_path / 'demo', gtv__slice_precision=0.3)
    (work / 'report.md').write_text('# demo\n')
    assert tool.main(['--work-dir', str(work), '--no-run']) == 1
    out = capsys.readouterr().out
    assert 'FAIL  NPC001: slice precision' in out and '1 of 12 bars missed' in out
    assert json.loads((work / 'validation.json').read_text())['passed'] is False


def test_no_finished_demo_with_no_run_is_refused(tool, tmp_path, capsys):
    assert tool.main(['--work-dir', str(tmp_path), '--no-run']) == 2
    assert 'no finished demo' in capsys.readouterr().err
    assert not (tmp_path / 'validation.json').exists()
