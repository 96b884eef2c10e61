"""One writer per work dir: tools/train.py and tools/test.py refuse a folder another live
process is writing, naming it, before they write anything; a dead holder's lock is taken
over (data_prep/folder_lock.py; tests/test_data_prep/test_folder_lock.py tests the lock)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.folder_lock import lock_path

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_tool(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode in ok, f'{args[0]} exited {result.returncode}:\n{result.stderr[-3000:]}'
    return result


@pytest.fixture
def holder():
    process = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])
    yield process
    process.kill()
    process.wait()


def _hold(work, pid):
    lock_path(work).write_text(json.dumps({'pid': pid, 'host': socket.gethostname(),
                                           'command': 'tools/train.py (the first one)',
                                           'started': '2026-12-07 10:00:00'}))


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_a_second_command_into_a_busy_work_dir_is_refused(tool, converted_cohort, tmp_path,
                                                           holder):
    work = tmp_path / 'work'
    _hold(work, holder.pid)
    args = ['tools/train.py', 'configs/msom_cet1_tiny.py'] if tool == 'train' else \
        ['tools/test.py', 'configs/msom_cet1_tiny.py', str(tmp_path / 'none.pth')]
    result = run_tool(*args, '--data-root', str(converted_cohort.data), '--work-dir', str(work),
                      ok=(1,))
    assert f'refused: {work} is being written by process {holder.pid}' in result.stderr
    assert 'tools/train.py (the first one)' in result.stderr
    assert not work.exists()  # nothing written into it


def test_a_dead_holders_lock_is_taken_over_and_released(converted_cohort, tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    work = tmp_path / 'work'
    _hold(work, dead.pid)
    run_tool('tools/train.py', 'configs/msom_cet1_tiny.py', '--data-root',
             str(converted_cohort.data), '--work-dir', str(work), '--cfg-options',
             'train_cfg.max_iters=1', 'train_cfg.val_interval=1',
             'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=1')
    assert (work / 'last_checkpoint').is_file()
    assert not lock_path(work).exists()
