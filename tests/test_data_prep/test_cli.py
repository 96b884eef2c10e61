"""``python -m data_prep``: help, errors, a small synth + convert run, version, light import."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'data_prep', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('command, expected', [
    ((), ['synth', 'convert']),
    (('convert',), ['--val-fraction', '--seed', '--workers', '--split-file', '--mapping',
                    '--overwrite', '--skip-bad-patients', 'OUT.partial', 'OUT.lock']),
    (('synth',), ['--patients', '--seed', 'OUT_DIR']),
])
def test_help(command, expected):
    result = run_cli(*command, '--help')
    assert result.returncode == 0, result.stderr
    for word in expected:
        assert word in result.stdout


def test_bad_input_is_one_error_line(tmp_path):
    result = run_cli('convert', tmp_path / 'missing', tmp_path / 'out', '--no-progress')
    assert result.returncode == 1
    assert result.stderr.startswith('error: ') and 'cohort folder not found' in result.stderr
    assert 'Traceback' not in result.stderr


@pytest.fixture(scope='module')
def small_cohort(tmp_path_factory) -> Path:
    from data_prep.synth import synthesize_cohort

    return synthesize_cohort(tmp_path_factory.mktemp('cli') / 'cohort', 2, seed=1, matrix=48,
                             pixel_mm=4.8, n_slices=6, slice_mm=6.0, progress=False)


def test_convert_run_prints_what_it_wrote(small_cohort, tmp_path):
    out = tmp_path / 'data'
    result = run_cli('convert', small_cohort, out, '--val-fraction', '0.5', '--seed', '2',
                       '--no-progress')
    assert result.returncode == 0, result.stderr
    assert f'wrote {out}' in result.stdout
    assert 'patients: 2 (train 1, val 1)' in result.stdout
    manifest = json.loads((out / 'manifest.json').read_text())
    for sequence, by_split in manifest['counts'].items():
        for split, count in by_split.items():
            line = (f'{sequence:<9}{split:<7}{count["patients"]:>9}{count["images"]:>8}'
                    f'{count["images_with_annotations"]:>10}{count["annotations"]:>12}')
            assert line in result.stdout
            assert count['images'] > 0
    assert manifest['parameters']['seed'] == 2

    again = run_cli('convert', small_cohort, out, '--no-progress')
    assert again.returncode == 1 and 'already exists' in again.stderr, again.stderr


def test_convert_help_offers_a_test_split():
    result = run_cli('convert', '--help')
    assert result.returncode == 0, result.stderr
    assert '--test-fraction' in result.stdout and 'test.json' in result.stdout


def test_convert_prints_the_test_split(small_cohort, tmp_path):
    split_file = tmp_path / 'split.csv'
    split_file.write_text('patient_id,split\nNPC001,train\nNPC002,test\n')
    out = tmp_path / 'data'
    result = run_cli('convert', small_cohort, out, '--split-file', split_file, '--no-progress')
    assert result.returncode == 0, result.stderr
    assert 'patients: 2 (train 1, val 0, test 1)' in result.stdout
    assert f'{"cet1":<9}{"test":<7}{1:>9}' in result.stdout
    assert (out / 'cet1' / 'annotations' / 'test.json').is_file()


def test_convert_refuses_fractions_leaving_no_train(small_cohort, tmp_path):
    result = run_cli('convert', small_cohort, tmp_path / 'data', '--val-fraction', '0.5',
                     '--test-fraction', '0.5', '--no-progress')
    assert result.returncode == 1
    assert result.stderr.startswith('error: val_fraction + test_fraction must be below 1')
    assert not (tmp_path / 'data').exists()


def test_synth_command_writes_a_cohort(tmp_path):
    result = run_cli('synth', tmp_path / 'cohort', '--patients', '1', '--seed', '4',
                     '--no-progress')
    assert result.returncode == 0, result.stderr
    assert 'SYNTHETIC' in result.stdout
    assert (tmp_path / 'cohort' / 'clinical.csv').is_file()
    assert (tmp_path / 'cohort' / 'NPC001').is_dir()


def test_synth_geometry_options_reach_the_headers(tmp_path):
    import pydicom

    result = run_cli('synth', tmp_path / 'cohort', '--patients', '1', '--matrix', '40',
                     '--pixel-mm', '5.5', '--slices', '5', '--slice-mm', '6', '--no-progress')
    assert result.returncode == 0, result.stderr
    files = [p for p in (tmp_path / 'cohort' / 'NPC001').rglob('*') if p.is_file()]
    images = [d for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in files)
              if d.Modality == 'MR']
    assert {(d.Rows, d.Columns) for d in images} == {(40, 40)}
    assert {tuple(float(v) for v in d.PixelSpacing) for d in images} == {(5.5, 5.5)}
    z = sorted({float(d.ImagePositionPatient[2]) for d in images})
    assert len(z) == 5 and all(abs(b - a - 6.0) < 1e-6 for a, b in zip(z, z[1:]))
    assert run_cli('synth', tmp_path / 'other', '--slice-mm', '0').returncode == 2


def test_version_matches_pyproject():
    import data_prep as package

    pyproject = tomllib.loads((REPO / 'pyproject.toml').read_text())
    assert package.__version__ == pyproject['project']['version']
    assert run_cli('--version').stdout.strip() == f'python -m data_prep {package.__version__}'


def test_import_is_light_and_exports_resolve():
    code = ('import sys, data_prep; heavy = {"torch", "mmdet", "mmcv", "cv2", "SimpleITK", '
            '"pydicom", "sklearn"} & set(sys.modules); assert not heavy, heavy; '
            'from data_prep import convert_cohort, load_options, DataPrepError; '
            'assert callable(convert_cohort) and issubclass(DataPrepError, ValueError); '
            'assert "torch" not in sys.modules and "mmdet" not in sys.modules')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_help_lists_check_and_the_selection_options():
    assert 'check' in run_cli('--help').stdout
    for command in ('convert', 'check'):
        result = run_cli(command, '--help')
        assert result.returncode == 0, result.stderr
        assert '--sequences' in result.stdout and '--series-overrides' in result.stdout
    assert '--json' in run_cli('check', '--help').stdout


def test_convert_only_the_sequences_asked_for(tmp_path):
    """A cohort without T1/T2 converts with --sequences cet1 (comma or space separated)."""
    from data_prep.testing.tiny_cohorts import write_cet1_only_cohort

    cohort = write_cet1_only_cohort(tmp_path / 'cohort', 2)
    out = tmp_path / 'data'
    result = run_cli('convert', cohort, out, '--val-fraction', '0.5', '--sequences', 'cet1',
                     '--no-progress')
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ['cet1', 'clinical.csv', 'manifest.json']
    rows = [line.split()[0] for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in ('t1', 't2', 'cet1')]
    assert rows == ['cet1', 'cet1']  # train and val
    failed = run_cli('convert', cohort, tmp_path / 'x', '--sequences', 't1,', 'cet1',
                     '--no-progress')
    assert failed.returncode == 1 and 'no series matches t1' in failed.stderr
    overrides = tmp_path / 'o.csv'
    overrides.write_text('patient_id,sequence,series\nNPC001,cet1,SAG\n')
    wrong = run_cli('convert', cohort, tmp_path / 'z', '--sequences', 'cet1',
                    '--series-overrides', overrides, '--no-progress')
    assert wrong.returncode == 1 and f'series overrides file {overrides}' in wrong.stderr
    assert 'patient NPC001' in wrong.stderr and 'Traceback' not in wrong.stderr


def test_a_locked_output_is_one_error_line_naming_its_writer(small_cohort, tmp_path):
    import os
    import socket
    (tmp_path / 'out.lock').write_text(json.dumps({
        'pid': os.getpid(), 'host': socket.gethostname(), 'command': 'convert A into out',
        'started': '2026-12-07 10:00:00'}))  # this test's process: alive
    result = run_cli('convert', small_cohort, tmp_path / 'out', '--no-progress')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.startswith('error: ') and f'process {os.getpid()}' in result.stderr
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'out.partial').exists()
