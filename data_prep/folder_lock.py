"""One writer per output folder: a lock file beside the folder.

Two commands writing into one folder (two ``data_prep convert`` runs into one
output, a second training started into a running one's work dir) would mix
their files. :func:`folder_lock` makes the second one stop with
:class:`FolderLockedError`, which names the first one's process, command and
start time. The lock is the file ``<folder>.lock`` next to the folder (the
folder itself may not exist yet, or be renamed into place at the end), created
atomically (``O_CREAT | O_EXCL``) and holding JSON: ``pid``, ``host``,
``command``, ``started``. A lock left by a process that is no longer running
on this host (a killed run) is taken over, with a log line; a lock from another
host cannot be checked and counts as held. The lock is removed on exit from the
``with`` block, whatever the outcome, when it is still this process's.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

logger = logging.getLogger(__name__)

LOCK_SUFFIX = '.lock'


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock; the message names it."""


def lock_path(folder: Path) -> Path:
    """The lock file of ``folder``: ``<folder>.lock`` beside it."""
    folder = Path(folder)
    return folder.with_name(folder.name + LOCK_SUFFIX)


def _alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0 or -1, ...) would mean a process group, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None  # vanished, or half-written by a process killed while writing it


def _holder(record: Optional[dict]) -> str:
    if not record:
        return 'an unknown process (unreadable lock file)'
    return (f'process {record.get("pid")} on {record.get("host")} '
            f'(started {record.get("started")}: {record.get("command")})')


def _create(path: Path, record: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        json.dump(record, handle)
    return True


def acquire(folder: Path, command: Optional[str] = None) -> Path:
    """Take ``folder``'s lock (see the module docstring); return the lock file.

    Raises:
        FolderLockedError: a live process (or one on another host) holds it.
    """
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {'pid': os.getpid(), 'host': socket.gethostname(),
              'command': command if command is not None else ' '.join(sys.argv),
              'started': time.strftime('%Y-%m-%d %H:%M:%S')}
    for _ in range(3):  # a stale lock removed by a concurrent taker-over: try again
        if _create(path, record):
            return path
        other = _read(path)
        live = (other is None or other.get('host') != record['host']
                or _alive(int(other.get('pid', -1))))
        if other is not None and live:
            raise FolderLockedError(f'{folder} is being written by {_holder(other)}; wait for '
                                    f'it to finish, or remove {path} if that process is gone')
        if other is None and path.exists():
            if time.time() - path.stat().st_mtime < 5:  # being written right now
                time.sleep(0.5)
                continue
        logger.warning('%s: taking over the lock of %s, which is no longer running',
                       folder, _holder(other))
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    raise FolderLockedError(f'{folder}: could not take the lock {path} (another process keeps '
                            'taking it)')


def release(path: Path) -> None:
    """Remove the lock file when it is still this process's."""
    record = _read(path)
    if record and record.get('pid') == os.getpid() and record.get('host') == socket.gethostname():
        try:
            path.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def folder_lock(folder: Path, command: Optional[str] = None) -> Iterator[Path]:
    """``with folder_lock(out): ...`` -- :func:`acquire`, then :func:`release` on exit."""
    path = acquire(folder, command)
    try:
        yield path
    finally:
        release(path)
