"""What a run folder holds, in one place.

A run folder is the ``--work-dir`` of ``tools/train.py`` (checkpoints, MMEngine's
``last_checkpoint`` marker, a ``best_*.pth`` when the config saves the
validation-selected one) and of ``tools/test.py`` / ``tools/test_end_to_end.py``
(``metrics.json``, ``patient_scores.csv``, ``deployment.json``); the demo and the
cross-validation folds put both into one folder. Scripts that chain the tools
read each other's outputs through :class:`RunFolder` instead of spelling the
file names and the checkpoint rules again.

Checkpoint choice:

* :meth:`RunFolder.last_checkpoint` -- the file MMEngine's ``last_checkpoint``
  marker names (it holds an absolute path; a folder moved since is looked up
  by the file's name in the folder itself);
* :meth:`RunFolder.chosen_checkpoint` -- the newest ``best_*.pth`` (selected on
  the validation patients) if training saved one, else the last checkpoint.
  Test patients choose nothing.

Writers take the folder's lock (:meth:`RunFolder.lock`,
``data_prep.folder_lock``): a second command writing into the same folder stops
with an error naming the first one's process.
"""
from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from data_prep.folder_lock import folder_lock

from ..inference.cutoff import DEPLOYMENT_FILE  # where prediction looks for it

METRICS_FILE = 'metrics.json'
PATIENT_SCORES_FILE = 'patient_scores.csv'
LAST_CHECKPOINT_FILE = 'last_checkpoint'  # MMEngine's CheckpointHook writes it
BEST_CHECKPOINT_GLOB = 'best_*.pth'


class RunFolderError(RuntimeError):
    """A run folder lacks what was asked of it; the message names the folder and the file."""


@dataclass(frozen=True)
class RunFolder:
    """One run folder (``path`` need not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, 'path', Path(self.path))

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def patient_scores_path(self) -> Path:
        return self.path / PATIENT_SCORES_FILE

    @property
    def deployment_path(self) -> Path:
        return self.path / DEPLOYMENT_FILE

    def find_last_checkpoint(self) -> Optional[Path]:
        """The last checkpoint training wrote, or None (no marker, or its file is gone)."""
        marker = self.path / LAST_CHECKPOINT_FILE
        if not marker.is_file():
            return None
        last = Path(marker.read_text().strip())
        if not last.is_file():  # the folder was moved or copied since training
            last = self.path / last.name
        return last if last.is_file() else None

    def last_checkpoint(self) -> Path:
        """:meth:`find_last_checkpoint`, raising :class:`RunFolderError` when there is none."""
        last = self.find_last_checkpoint()
        if last is None:
            raise RunFolderError(f'{self.path}: no finished training (no {LAST_CHECKPOINT_FILE} '
                                 'file naming an existing checkpoint)')
        return last

    def chosen_checkpoint(self) -> tuple[Optional[Path], str]:
        """(checkpoint, how it was chosen): the newest ``best_*.pth`` if any, else the
        last; (None, '') when training did not finish."""
        best = sorted(self.path.glob(BEST_CHECKPOINT_GLOB), key=lambda p: p.stat().st_mtime)
        if best:
            return best[-1], 'best on the validation split'
        last = self.find_last_checkpoint()
        return (last, 'last') if last is not None else (None, '')

    def has_results(self, *names: str) -> bool:
        """Whether every named file (default: metrics.json) is in the folder."""
        return all((self.path / name).is_file() for name in (names or (METRICS_FILE,)))

    def metrics(self) -> dict:
        """The folder's metrics.json."""
        if not self.metrics_path.is_file():
            raise RunFolderError(f'{self.path}: no {METRICS_FILE} (was the test step run?)')
        return json.loads(self.metrics_path.read_text())

    def lock(self, command: Optional[str] = None) -> AbstractContextManager:
        """``with run.lock(): ...``: one writer at a time (``data_prep.folder_lock``)."""
        return folder_lock(self.path, command)
