"""One writer per output folder: the second is refused and told who, a dead one's lock is
taken over, and the lock goes when the writer is done."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_prep.folder_lock import FolderLockedError, acquire, folder_lock, lock_path

REPO = Path(__file__).resolve().parents[2]


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])


def _write_lock(folder: Path, pid: int, host: str | None = None) -> None:
    import socket
    lock_path(folder).write_text(json.dumps({'pid': pid, 'host': host or socket.gethostname(),
                                             'command': 'convert A into B',
                                             'started': '2026-12-07 10:00:00'}))


def test_the_lock_is_beside_the_folder_holds_its_owner_and_goes_on_exit(tmp_path):
    out = tmp_path / 'out'
    with folder_lock(out, command='convert X into out') as path:
        assert path == tmp_path / 'out.lock' and not out.exists()
        record = json.loads(path.read_text())
        assert record['pid'] == os.getpid() and record['command'] == 'convert X into out'
    assert not path.exists()
    with pytest.raises(ZeroDivisionError):  # released on an error too
        with folder_lock(out):
            1 / 0
    assert not lock_path(out).exists()


def test_a_second_writer_is_refused_and_told_who_holds_the_folder(tmp_path):
    out, ready = tmp_path / 'out', tmp_path / 'ready'
    holder = subprocess.Popen(
        [sys.executable, '-c',
         'import sys, time; from pathlib import Path; from data_prep.folder_lock import '
         'folder_lock\nwith folder_lock(Path(sys.argv[1]), "first run"):\n'
         '    Path(sys.argv[2]).touch(); time.sleep(60)', str(out), str(ready)],
        cwd=REPO)
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert holder.poll() is None and time.time() < deadline
            time.sleep(0.1)
        with pytest.raises(FolderLockedError) as error:
            acquire(out)
        assert f'process {holder.pid}' in str(error.value) and 'first run' in str(error.value)
        assert json.loads(lock_path(out).read_text())['pid'] == holder.pid  # untouched
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_process_that_is_gone_is_taken_over(tmp_path, caplog):
    out = tmp_path / 'out'
    gone = _sleeper()
    gone.kill()
    gone.wait()
    _write_lock(out, gone.pid)
    with caplog.at_level(logging.WARNING, logger='data_prep.folder_lock'):
        path = acquire(out)
    assert json.loads(path.read_text())['pid'] == os.getpid()
    assert f'process {gone.pid}' in caplog.text and 'no longer running' in caplog.text


def test_a_live_holder_or_one_on_another_host_counts_as_holding(tmp_path):
    live = _sleeper()
    try:
        _write_lock(tmp_path / 'a', live.pid)
        with pytest.raises(FolderLockedError, match=f'process {live.pid}'):
            acquire(tmp_path / 'a')
    finally:
        live.kill()
        live.wait()
    _write_lock(tmp_path / 'b', 1, host='another-machine')
    with pytest.raises(FolderLockedError, match='another-machine'):
        acquire(tmp_path / 'b')


def test_an_old_unreadable_lock_file_is_taken_over(tmp_path):
    path = lock_path(tmp_path / 'out')
    path.write_text('{"pid": ')  # a writer killed while writing it
    os.utime(path, (time.time() - 60, time.time() - 60))
    assert json.loads(acquire(tmp_path / 'out').read_text())['pid'] == os.getpid()
