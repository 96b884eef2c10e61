"""The run-folder contract: file names, last / chosen checkpoint, metrics, lock."""
from __future__ import annotations

import json
import os
import time

import pytest

from data_prep.folder_lock import FolderLockedError, lock_path
from mmnpc.runs import RunFolder, RunFolderError


def _train_folder(tmp_path, last='iter_20.pth', best=()):
    folder = tmp_path / 'run'
    folder.mkdir()
    for name in ('iter_10.pth', 'iter_20.pth', *best):
        (folder / name).write_bytes(b'x')
    (folder / 'last_checkpoint').write_text(str(folder / last) + '\n')
    return RunFolder(folder)


def test_file_names(tmp_path):
    run = RunFolder(str(tmp_path))
    assert run.metrics_path == tmp_path / 'metrics.json'
    assert run.patient_scores_path == tmp_path / 'patient_scores.csv'
    assert run.deployment_path == tmp_path / 'deployment.json'


def test_last_checkpoint_is_what_the_marker_names(tmp_path):
    run = _train_folder(tmp_path)
    assert run.last_checkpoint() == run.path / 'iter_20.pth'
    assert run.chosen_checkpoint() == (run.path / 'iter_20.pth', 'last')


def test_a_moved_folder_finds_its_checkpoint_by_name(tmp_path):
    run = _train_folder(tmp_path)
    moved = tmp_path / 'moved'
    run.path.rename(moved)  # the marker still names the old absolute path
    assert RunFolder(moved).last_checkpoint() == moved / 'iter_20.pth'


def test_no_finished_training_is_a_named_error(tmp_path):
    run = RunFolder(tmp_path / 'empty')
    assert run.find_last_checkpoint() is None
    assert run.chosen_checkpoint() == (None, '')
    with pytest.raises(RunFolderError, match='empty: no finished training'):
        run.last_checkpoint()
    gone = _train_folder(tmp_path, last='iter_30.pth')  # marker names a file that is not there
    with pytest.raises(RunFolderError, match='no finished training'):
        gone.last_checkpoint()


def test_the_newest_best_checkpoint_is_chosen_over_the_last(tmp_path):
    run = _train_folder(tmp_path, best=('best_msom_auc_iter_10.pth', 'best_msom_auc_iter_20.pth'))
    old = time.time() - 100
    os.utime(run.path / 'best_msom_auc_iter_10.pth', (old, old))
    assert run.chosen_checkpoint() == (run.path / 'best_msom_auc_iter_20.pth',
                                       'best on the validation split')
    assert run.last_checkpoint() == run.path / 'iter_20.pth'


def test_metrics_and_results(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.has_results()
    with pytest.raises(RunFolderError, match='no metrics.json'):
        run.metrics()
    run.metrics_path.write_text(json.dumps({'auc': 0.7}))
    assert run.metrics() == {'auc': 0.7}
    assert run.has_results() and not run.has_results('metrics.json', 'patient_scores.csv')


def test_lock_refuses_a_second_writer_and_is_gone_afterwards(tmp_path):
    import subprocess
    import sys
    run = RunFolder(tmp_path / 'work')
    holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        lock_path(run.path).write_text(json.dumps({
            'pid': holder.pid, 'host': __import__('socket').gethostname(),
            'command': 'tools/train.py A', 'started': 'now'}))
        with pytest.raises(FolderLockedError, match=f'process {holder.pid}'):
            with run.lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    with run.lock('tools/test.py B'):  # the dead holder's lock is taken over
        assert json.loads(lock_path(run.path).read_text())['command'] == 'tools/test.py B'
    assert not lock_path(run.path).exists()
