"""Per-patient rows kept on disk as they are scored, so a long evaluation resumes.

``tools/test_end_to_end.py`` spends 15-20 s a patient on 2 CPU cores (the
detector on a patient's slices); a cohort of several hundred patients takes
hours, and a killed run used to lose all of it. A :class:`RowStore` is a folder
with one JSON file per scored patient (``<split>__<patient_id>.json``, written
to a temporary name and renamed, so a file is whole or absent), each carrying
the ``fingerprint`` of what made it (models, their files, settings). A new run
with the same fingerprint re-uses those rows; a row of another fingerprint is
ignored (and counted) and scored again.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple


def fingerprint_of(record: Mapping[str, Any]) -> str:
    """A short hash of ``record`` (JSON, keys sorted): what the rows depend on."""
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def file_identity(path: Path) -> dict:
    """A file as a fingerprint sees it: resolved path, size and modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    return {'path': str(path), 'bytes': stat.st_size, 'mtime_ns': stat.st_mtime_ns}


class RowStore:
    """Rows of one fingerprint in ``folder`` (created on the first save)."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.n_stale = 0

    def _path(self, split: str, patient_id: str) -> Path:
        return self.folder / f'{split}__{patient_id}.json'

    def load(self) -> Dict[Tuple[str, str], dict]:
        """(split, patient_id) -> row of every stored row of this fingerprint;
        ``n_stale`` counts the files of another fingerprint (or unreadable)."""
        rows: Dict[Tuple[str, str], dict] = {}
        self.n_stale = 0
        for path in sorted(self.folder.glob('*__*.json')) if self.folder.is_dir() else []:
            try:
                record = json.loads(path.read_text(encoding='utf-8'))
                row = record['row']
                fresh = record['fingerprint'] == self.fingerprint
            except (OSError, ValueError, KeyError, TypeError):
                fresh = False
            if fresh:
                rows[(row['split'], row['patient_id'])] = row
            else:
                self.n_stale += 1
        return rows

    def save(self, row: Mapping[str, Any]) -> None:
        """Store ``row`` (needs ``split`` and ``patient_id``), atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(str(row['split']), str(row['patient_id']))
        tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
        tmp.write_text(json.dumps({'fingerprint': self.fingerprint, 'row': dict(row)},
                                  default=_plain), encoding='utf-8')
        os.replace(tmp, path)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (NaN stays NaN: json writes and reads it back)."""
    if hasattr(value, 'item'):
        return value.item()
    raise TypeError(f'not JSON serialisable: {value!r}')
