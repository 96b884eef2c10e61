"""One way to write the project's JSON outputs (metrics.json, comparison.json, ...).

Every report file goes through :func:`write_json`: values made plain by
:func:`json_ready` (an undefined figure -- NaN or an infinity -- becomes
``null``, numpy numbers become Python ones, paths strings, tuples lists), indented,
written to a temporary file beside the target and moved into place, so a reader
never finds half a file. ``allow_nan=False`` then guarantees strict JSON that any
reader (``jq``, JavaScript, R) accepts. COCO files keep their own writer
(``data_prep/coco_writer.py``: rounding, sorted keys, no mmnpc import).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path, PurePath
from typing import Any

import numpy as np


def json_ready(value: Any) -> Any:
    """A plain-JSON copy of ``value``: NaN / +-inf -> None, numpy scalars and arrays ->
    Python numbers and lists, paths -> str, tuples and sets -> lists, keys -> str."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, PurePath):
        return str(value)
    return value


def json_number(value: Any) -> float | None:
    """``value`` as a JSON number: None when missing, NaN or infinite."""
    return None if value is None else json_ready(float(value))


def write_json(path, record: Any, indent: int | None = 2) -> Path:
    """Write ``json_ready(record)`` to ``path`` (parents made) through a temporary file
    moved into place; returns the path. Raises TypeError for a value JSON cannot hold."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_ready(record), indent=indent, allow_nan=False) + '\n'
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        tmp.write_text(text, encoding='utf-8')
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
