"""Measuring helpers shared by the benchmark stages: timers, child processes, peak memory.

Every measurement that needs its own peak memory runs in a fresh child process
(``run_in_child``): ``python benchmarks/common.py MODULE:FUNCTION KWARGS_JSON
RESULT_JSON`` imports ``MODULE`` from this folder, calls ``FUNCTION(**kwargs)``
and writes the dict it returns to ``RESULT_JSON``. The parent collects the
child's resource usage with ``os.wait4``: peak resident memory (the largest of
the child and the processes it waited for, e.g. conversion workers) and CPU
time. The parent itself imports nothing heavy, so a child's peak is its own.

Figures are meant to be compared within one run (ratios), not across machines.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


@dataclass
class ChildRun:
    """What a child process returned and what it cost.

    value: the dict returned by the child's function.
    wall_s: seconds from start to exit, interpreter start and imports included.
    cpu_s: user + system CPU seconds of the child and the processes it waited for.
    peak_rss_mib: peak resident memory in MiB of the largest single process among
        the child and its waited-for children (not a sum over parallel workers).
    """

    value: dict
    wall_s: float
    cpu_s: float
    peak_rss_mib: float


@dataclass
class Timer:
    """Wall and CPU seconds of a ``with`` block (CPU: this process, all threads,
    plus the child processes that ended inside the block, e.g. pool workers)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    _start: tuple[float, float] = field(default=(0.0, 0.0), repr=False)

    def __enter__(self) -> Timer:
        self._start = (time.perf_counter(), _cpu_seconds())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s += time.perf_counter() - self._start[0]
        self.cpu_s += _cpu_seconds() - self._start[1]


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its ended children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_in_child(target: str, log_file: Path | None = None, **kwargs: object) -> ChildRun:
    """Run ``MODULE:FUNCTION(**kwargs)`` (a module of benchmarks/) in a fresh process.

    kwargs must be JSON values. The child's output goes to ``log_file`` (appended)
    or to this terminal. Raises RuntimeError, naming the log, if the child fails.
    """
    with tempfile.TemporaryDirectory(prefix='mmnpc-bench-') as tmp:
        result_file = Path(tmp) / 'result.json'
        command = [sys.executable, str(Path(__file__).resolve()), target, json.dumps(kwargs),
                   str(result_file)]
        log = open(log_file, 'a', encoding='utf-8') if log_file else None  # noqa: SIM115
        try:
            start = time.perf_counter()
            process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log)
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4
        finally:
            if log:
                log.close()
        if process.returncode != 0 or not result_file.is_file():
            where = f'; see {log_file}' if log_file else ''
            raise RuntimeError(f'benchmark step {target} failed (exit {process.returncode}){where}')
        value = json.loads(result_file.read_text(encoding='utf-8'))
    return ChildRun(value=value, wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                    peak_rss_mib=usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux


def machine() -> dict:
    """The machine a run was measured on (no host names or user names)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, 'getloadavg') else None
    return {
        'cpu_cores_usable': cores,
        'cpu_model': cpu_model(),
        'load_average_1_5_15_min': load,
        'python': platform.python_version(),
        'platform': platform.platform(terse=True),
    }


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows, else None."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def shown_path(path: Path | str) -> str:
    """``path`` relative to the repository when inside it (results.json stays portable)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if REPO in path.parents else str(path)


def rounded(value: object, digits: int = 3) -> object:
    """``value`` with every float rounded (for readable JSON)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value


def _child_main(argv: list[str]) -> None:
    """Entry point of a child process (see module docstring)."""
    target, kwargs_json, result_file = argv
    module_name, function_name = target.split(':')
    function = getattr(importlib.import_module(module_name), function_name)
    value = function(**json.loads(kwargs_json))
    Path(result_file).write_text(json.dumps(value), encoding='utf-8')


if __name__ == '__main__':
    _child_main(sys.argv[1:])
