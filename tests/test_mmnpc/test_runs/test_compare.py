"""Two run folders compared: the same run made elsewhere is equal; any change in a figure,
a table cell, a file or a weight is found; timing is left out."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from mmnpc.runs.compare import compare_run_folders

REPO = Path(__file__).resolve().parents[3]


def _run(root: Path, auc: float = 0.71, score: str = '0.25', weight: float = 1.0,
         minutes: float = 3.0) -> Path:
    stamp = '20261207_101010' if minutes == 3.0 else '20261208_090909'
    (root / 'cls' / stamp).mkdir(parents=True)
    (root / 'cls' / stamp / 'x.log').write_text('anything')
    (root / 'cls' / 'metrics.json').write_text(json.dumps({
        'auc': auc, 'n': 10, 'data_root': str(root / 'data'), 'seconds': minutes * 60,
        'nested': {'values': [1, 2.5, None]}}))
    (root / 'cls' / 'patient_scores.csv').write_text(
        f'patient_id,score,wall_s\nNPC001,{score},{minutes}\nNPC002,0.75,1\n')
    (root / 'report.md').write_text(f'# Report\n\ndone in {minutes} min\n\nAUC {auc:.3f}\n')
    (root / 'roc.png').write_bytes(b'\x89PNG' + bytes([int(weight)]))
    torch.save({'state_dict': {'w': torch.full((2,), weight)}, 'meta': {'time': minutes}},
               root / 'cls' / 'iter_1.pth')
    (root / 'cls.lock').write_text('{}')
    (root / 'cls' / 'last_checkpoint').write_text(str(root / 'cls' / 'iter_1.pth'))
    (root / 'cls' / stamp / 'vis_data').mkdir(parents=True, exist_ok=True)
    (root / 'cls' / stamp / 'vis_data' / f'{stamp}.json').write_text(
        json.dumps({'loss': 0.5, 'time': minutes}) + '\n' + json.dumps({'loss': 0.4}) + '\n')
    (root / 'report.html').write_text(f'<img src="cls/{stamp}/show/a.png">')
    (root / 'deployment.json').write_text(json.dumps({'checkpoint': {'bytes': int(minutes)}}))
    (root / 'km.pdf').write_bytes(b'%PDF /CreationDate (D:2026120' + str(minutes).encode()
                                  + b') body')
    return root


def test_the_same_run_elsewhere_is_equal_whatever_the_timing(tmp_path):
    a = _run(tmp_path / 'a')
    b = _run(tmp_path / 'b', minutes=9.0)  # other timestamps, durations, file sizes
    assert compare_run_folders(a, b) == []


def test_every_kind_of_change_is_found(tmp_path):
    a = _run(tmp_path / 'a')
    b = _run(tmp_path / 'b', auc=0.72, score='0.26', weight=2.0)
    (b / 'extra.json').write_text('{}')
    found = {(d.path, d.where) for d in compare_run_folders(a, b)}
    assert found == {('extra.json', ''), ('cls/metrics.json', 'auc'),
                     ('cls/patient_scores.csv', 'row 1 column score'),
                     ('report.md', 'line 5'), ('roc.png', ''), ('cls/iter_1.pth', 'w')}
    assert compare_run_folders(a, _run(tmp_path / 'c', auc=0.71 + 1e-12), rel_tol=1e-9) == []
    assert {d.path for d in compare_run_folders(a, b, exclude=['cls/*', '*.png'])} == {
        'extra.json', 'report.md'}


def test_a_changed_training_curve_or_picture_inside_a_timestamped_folder_is_found(tmp_path):
    a = _run(tmp_path / 'a')
    b = _run(tmp_path / 'b', minutes=9.0)
    scalars = b / 'cls' / '20261208_090909' / 'vis_data' / '20261208_090909.json'
    scalars.write_text(scalars.read_text().replace('0.4', '0.41'))
    (b / 'km.pdf').write_bytes((b / 'km.pdf').read_bytes() + b'x')
    found = {(d.path, d.where) for d in compare_run_folders(a, b)}
    assert found == {('cls/<T0>/vis_data/<T0>.json', '[1].loss'), ('km.pdf', '')}


def test_the_tool_exits_1_and_prints_the_differences(tmp_path):
    a = _run(tmp_path / 'a')
    shutil.copytree(a, tmp_path / 'b')
    (tmp_path / 'b' / 'cls' / 'metrics.json').write_text(
        (tmp_path / 'b' / 'cls' / 'metrics.json').read_text().replace('0.71', '0.7'))
    result = subprocess.run([sys.executable, 'tools/compare_runs.py', str(a), str(tmp_path / 'b')],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert "cls/metrics.json [auc]: 0.71 against 0.7" in result.stdout
    same = subprocess.run([sys.executable, 'tools/compare_runs.py', str(a), str(a)], cwd=REPO,
                          capture_output=True, text=True)
    assert same.returncode == 0 and 'the same run' in same.stdout


def test_dicom_files_are_compared_by_content_but_for_fresh_uids(tmp_path):
    import numpy as np

    from data_prep.dicom_writer import PatientHeader, write_mr_series
    from mmnpc.runs.compare import compare_dicom

    def series(folder, seed, value):
        volume = np.full((1, 4, 4), value, dtype=float)
        return write_mr_series(folder, volume, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0),
                               description='T1', patient=PatientHeader(), study_uid='1.2.3',
                               frame_of_reference_uid='1.2.4', file_names=['a.dcm'],
                               instance_numbers=[1], rng=np.random.default_rng(seed)).files[0]

    first, again = series(tmp_path / 'a', 0, 100.0), series(tmp_path / 'b', 1, 100.0)
    assert first.read_bytes() != again.read_bytes()  # other SOP instance / series UIDs
    assert list(compare_dicom(first, again)) == []
    other = series(tmp_path / 'c', 0, 101.0)
    assert {where for where, _ in compare_dicom(first, other)} >= {'PixelData'}
