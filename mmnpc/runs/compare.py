"""Are two run folders the same run? (issue 32: ``make demo`` before and after a refactor)

:func:`compare_run_folders` walks two folders (e.g. two ``make demo`` work dirs made
by two versions of the code with the same seeds) and lists every difference in
what the run produced:

* the same relative file names, MMEngine's timestamped folders and files
  (``YYYYMMDD_HHMMSS``) matched by their order in their folder (``<T0>``, ``<T1>``),
  ``*.log`` and lock files left out;
* JSON and CSV files equal value by value, after each folder's own absolute path
  is replaced by one placeholder (folders live in different places), numbers
  compared exactly unless ``rel_tol`` says otherwise, and keys that hold
  durations or clock times (``seconds``, ``minutes``, ``wall_s``, ``*_time``,
  ``started``...) or another file's identity (``bytes``, ``sha256``,
  ``fingerprint``: a checkpoint's size changes with the paths in its meta; the
  checkpoint itself is compared by its tensors) left out; JSON-lines files
  (MMEngine's ``scalars.json``) line by line the same way;
* checkpoints (``*.pth``): the same tensors in ``state_dict`` (their ``meta``
  holds times and paths);
* text (Markdown, HTML, Python configs, files without a suffix such as MMEngine's
  ``last_checkpoint``) equal line by line after the path and timestamp
  placeholders, lines that report durations left out;
* DICOM files (``.dcm``) element by element, sequences included, but for the UIDs
  a writer draws fresh for every new object (its own SOP instance, series and file
  meta UIDs: two runs of the same code differ there); references to other objects
  are compared;
* PDF byte for byte but for its creation and modification dates; anything else
  (PNG, JPEG) byte for byte.

Returns :class:`Difference` records; raises nothing for a difference (it prints
nothing either): the caller decides. ``tools/compare_runs.py`` is the command.
"""
from __future__ import annotations

import csv
import filecmp
import fnmatch
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

TIMESTAMP = re.compile(r'\d{8}_\d{6}')
SKIP_SUFFIXES = ('.log', '.lock')
TIME_KEY = re.compile(r'(^|_)(seconds|minutes|wall_s|cpu_s|time|started|finished|date|'
                      r'measured_at|elapsed|s)$|_time$|_s$')
TIME_LINE = re.compile(r'\b(\d+(\.\d+)?\s*(s|min|minutes|seconds)\b|finished in|done in|'
                       r'took\b|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2})', re.IGNORECASE)
PATH_PLACEHOLDER = '<RUN>'
IDENTITY_KEYS = frozenset({'bytes', 'sha256', 'md5', 'fingerprint', 'mtime'})
PDF_DATE = re.compile(rb'/(CreationDate|ModDate) \(D:[^)]*\)')
FRESH_UIDS = frozenset({'SOPInstanceUID', 'SeriesInstanceUID', 'MediaStorageSOPInstanceUID'})
TEXT_SUFFIXES = ('.csv', '.md', '.html', '.py', '.txt', '.yaml', '.yml', '')


@dataclass(frozen=True)
class Difference:
    """One difference: the file (relative), where in it, and what."""

    path: str
    where: str
    what: str


def timestamp_names(root: Path) -> dict[str, str]:
    """Each timestamped folder name (``YYYYMMDD_HHMMSS``) -> ``<Tn>``, n its order among
    the timestamped folders of its parent."""
    names: dict[str, str] = {}
    parents: dict[Path, list[str]] = {}
    for path in sorted(root.rglob('*')):
        if path.is_dir() and TIMESTAMP.fullmatch(path.name):
            parents.setdefault(path.parent, []).append(path.name)
    for stamps in parents.values():
        for n, stamp in enumerate(sorted(stamps)):
            names[stamp] = f'<T{n}>'
    return names


def _stamped(text: str, stamps: dict[str, str]) -> str:
    return TIMESTAMP.sub(lambda m: stamps.get(m.group(0), m.group(0)), text)


def run_files(root: Path, exclude: Sequence[str] = (),
              stamps: Optional[dict[str, str]] = None) -> dict[str, Path]:
    """Relative name (timestamps as ``<Tn>``) -> file; logs, locks and names matching an
    ``exclude`` glob left out. ``stamps``: :func:`timestamp_names` of ``root``, when the
    caller has it."""
    root = Path(root)
    stamps = timestamp_names(root) if stamps is None else stamps
    files = {}
    for path in sorted(root.rglob('*')):
        if path.suffix in SKIP_SUFFIXES or not path.is_file():
            continue
        name = _stamped(str(path.relative_to(root)), stamps)
        if not any(fnmatch.fnmatch(name, pattern) for pattern in exclude):
            files[name] = path
    return files


def _placeholder(text: str, root: Path, stamps: dict[str, str]) -> str:
    for form in {str(root), str(root.resolve())}:
        text = text.replace(form, PATH_PLACEHOLDER)
    return _stamped(text, stamps)


def _values_differ(a: Any, b: Any, rel_tol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a != b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return False
        return not math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0) if rel_tol else a != b
    return a != b


def compare_json(a: Any, b: Any, rel_tol: float = 0.0, where: str = '') -> Iterator[tuple[str, str]]:
    """(where, what) of every difference between two loaded JSON values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if TIME_KEY.search(str(key)) or key in IDENTITY_KEYS:
                continue
            here = f'{where}.{key}' if where else str(key)
            if key not in a or key not in b:
                yield here, 'only in ' + ('the second' if key not in a else 'the first')
            else:
                yield from compare_json(a[key], b[key], rel_tol, here)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield where, f'{len(a)} items against {len(b)}'
        for i, (x, y) in enumerate(zip(a, b)):
            yield from compare_json(x, y, rel_tol, f'{where}[{i}]')
    elif _values_differ(a, b, rel_tol):
        yield where, f'{a!r} against {b!r}'


def _number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def compare_csv(a: str, b: str, rel_tol: float = 0.0) -> Iterator[tuple[str, str]]:
    rows_a, rows_b = list(csv.reader(a.splitlines())), list(csv.reader(b.splitlines()))
    if len(rows_a) != len(rows_b):
        yield 'rows', f'{len(rows_a)} against {len(rows_b)}'
    header = rows_a[0] if rows_a else []
    for r, (x, y) in enumerate(zip(rows_a, rows_b)):
        if len(x) != len(y):
            yield f'row {r}', f'{len(x)} cells against {len(y)}'
            continue
        for c, (u, v) in enumerate(zip(x, y)):
            name = header[c] if c < len(header) else str(c)
            if r and TIME_KEY.search(name):
                continue
            nu, nv = _number(u), _number(v)
            differ = _values_differ(nu, nv, rel_tol) if nu is not None and nv is not None \
                else u != v
            if differ:
                yield f'row {r} column {name}', f'{u!r} against {v!r}'


def compare_text(a: str, b: str) -> Iterator[tuple[str, str]]:
    keep = lambda text: [(i, line) for i, line in enumerate(text.splitlines(), 1)  # noqa: E731
                         if not TIME_LINE.search(line)]
    la, lb = keep(a), keep(b)
    if len(la) != len(lb):
        yield 'lines', f'{len(la)} against {len(lb)} (time lines left out)'
    for (i, x), (_, y) in zip(la, lb):
        if x != y:
            yield f'line {i}', f'{x[:120]!r} against {y[:120]!r}'
            return  # the first differing line says enough


def compare_checkpoints(a: Path, b: Path) -> Iterator[tuple[str, str]]:
    import torch
    sa = torch.load(a, map_location='cpu', weights_only=False).get('state_dict', {})
    sb = torch.load(b, map_location='cpu', weights_only=False).get('state_dict', {})
    for key in sorted(set(sa) | set(sb)):
        if key not in sa or key not in sb:
            yield key, 'only in ' + ('the second' if key not in sa else 'the first')
        elif not torch.equal(sa[key], sb[key]):
            diff = (sa[key].double() - sb[key].double()).abs().max().item() \
                if sa[key].shape == sb[key].shape else 'shape'
            yield key, f'tensors differ (largest difference {diff})'


def dicom_elements(path: Path) -> dict[str, str]:
    """Tag path -> value of every element of a DICOM file (file meta and sequences
    included), the freshly drawn UIDs (:data:`FRESH_UIDS`) left out."""
    import pydicom

    ds = pydicom.dcmread(path)
    found: dict[str, str] = {}

    def walk(dataset, prefix: str) -> None:
        for element in dataset:
            if element.keyword in FRESH_UIDS:
                continue
            where = f'{prefix}{element.keyword or element.tag}'
            if element.VR == 'SQ':
                for i, item in enumerate(element.value):
                    walk(item, f'{where}[{i}].')
            else:
                found[where] = repr(element.value)

    walk(ds.file_meta, 'meta.')
    walk(ds, '')
    return found


def compare_dicom(a: Path, b: Path) -> Iterator[tuple[str, str]]:
    ea, eb = dicom_elements(a), dicom_elements(b)
    for key in sorted(set(ea) | set(eb)):
        if ea.get(key) != eb.get(key):
            yield key, f'{str(ea.get(key))[:60]} against {str(eb.get(key))[:60]}'


def _json_or_lines(text: str):
    """The JSON value of ``text``, or the list of its lines' values (JSON lines)."""
    try:
        return json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def compare_file(a: Path, b: Path, root_a: Path, root_b: Path, rel_tol: float = 0.0,
                 stamps_a: Optional[dict[str, str]] = None,
                 stamps_b: Optional[dict[str, str]] = None) -> Iterator[tuple[str, str]]:
    """Differences of one file of run ``root_a`` and its namesake of ``root_b``
    (``stamps_*``: :func:`timestamp_names` of each root, computed here when not given)."""
    suffix = a.suffix.lower()
    if suffix == '.pth':
        yield from compare_checkpoints(a, b)
        return
    if suffix == '.dcm':
        yield from compare_dicom(a, b)
        return
    if suffix == '.pdf':
        if PDF_DATE.sub(b'', a.read_bytes()) != PDF_DATE.sub(b'', b.read_bytes()):
            yield '', 'bytes differ (dates left out)'
        return
    if suffix == '.json' or suffix in TEXT_SUFFIXES:
        stamps_a = timestamp_names(root_a) if stamps_a is None else stamps_a
        stamps_b = timestamp_names(root_b) if stamps_b is None else stamps_b
        text_a = _placeholder(a.read_text(errors='replace'), root_a, stamps_a)
        text_b = _placeholder(b.read_text(errors='replace'), root_b, stamps_b)
        if suffix == '.json':
            try:
                yield from compare_json(_json_or_lines(text_a), _json_or_lines(text_b), rel_tol)
                return
            except ValueError:  # not JSON after all
                pass
        if suffix == '.csv':
            yield from compare_csv(text_a, text_b, rel_tol)
        else:
            yield from compare_text(text_a, text_b)
        return
    if not filecmp.cmp(a, b, shallow=False):
        yield '', 'bytes differ'


def compare_run_folders(a: Path, b: Path, rel_tol: float = 0.0,
                        exclude: Sequence[str] = ()) -> list[Difference]:
    """Every difference between run folders ``a`` and ``b`` (see the module docstring);
    ``exclude``: glob patterns of relative names left out (e.g. ``data/*``)."""
    a, b = Path(a), Path(b)
    stamps_a, stamps_b = timestamp_names(a), timestamp_names(b)  # one walk of each tree
    files_a, files_b = run_files(a, exclude, stamps_a), run_files(b, exclude, stamps_b)
    found = [Difference(name, '', 'only in ' + ('the first' if name in files_a else 'the second'))
             for name in sorted(set(files_a) ^ set(files_b))]
    for name in sorted(set(files_a) & set(files_b)):
        found += [Difference(name, where, what)
                  for where, what in compare_file(files_a[name], files_b[name], a, b, rel_tol,
                                                  stamps_a, stamps_b)]
    return found
