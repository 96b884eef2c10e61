"""Run a tool as one step of a longer job (demo, cross-validation, experiments).

One runner for every script that chains the tools: the command runs from the
repository root with this interpreter's environment; its output goes to the
terminal (echoed after a ``$ command`` line) or into a log file; a non-zero exit
raises :class:`StepFailed` with the command and, for a logged step, the log's
last lines. Library code raises; the scripts turn :class:`StepFailed` into their
own exit message.
"""
from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
TAIL_LINES = 30


class StepFailed(RuntimeError):
    """A step exited with a status it was not allowed; ``status`` holds it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def run_tool(command: Sequence[str], log: Optional[Path] = None, echo: bool = True,
             ok_codes: tuple[int, ...] = (0,), cwd: Path = REPO) -> float:
    """Run ``command`` from ``cwd`` (the repository root); return its wall time in s.

    Args:
        log: file for the step's stdout and stderr (overwritten); None: this terminal.
        echo: print ``$ command`` before a step that writes to the terminal.
        ok_codes: exit statuses that count as success.

    Raises:
        StepFailed: any other exit status.
    """
    command = [str(part) for part in command]
    start = time.time()
    if log is None:
        if echo:
            print(f'\n$ {shlex.join(command)}', flush=True)
        status = subprocess.run(command, cwd=cwd).returncode
    else:
        log = Path(log)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open('w') as handle:
            status = subprocess.run(command, cwd=cwd, stdout=handle,
                                    stderr=subprocess.STDOUT).returncode
    if status not in ok_codes:
        message = f'exit status {status}: {shlex.join(command)}'
        if log is not None:
            tail = ''.join(log.read_text(errors='replace').splitlines(keepends=True)[-TAIL_LINES:])
            message += f'\n--- last lines of {log} ---\n{tail}'
        raise StepFailed(message, status)
    return time.time() - start
