"""The one JSON writer: undefined figures as null, numpy as Python, whole files only."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from mmnpc.utils.json_io import json_number, json_ready, write_json


def test_undefined_figures_become_null_and_numpy_becomes_python():
    record = {'auc': float('nan'), 'hr': np.float32(math.inf), 'n': np.int64(3),
              'ok': np.bool_(True), 'ci': (0.5, np.float64(-math.inf)),
              'path': Path('a/b.json'), 'scores': np.array([0.25, np.nan]), 4: 'key'}
    ready = json_ready(record)
    assert ready == {'auc': None, 'hr': None, 'n': 3, 'ok': True, 'ci': [0.5, None],
                     'path': 'a/b.json', 'scores': [0.25, None], '4': 'key'}
    assert type(ready['n']) is int and type(ready['ok']) is bool
    assert json_number(None) is None and json_number(np.float32(0.5)) == 0.5
    assert json_number(float('nan')) is None


def test_write_json_writes_strict_json_and_leaves_no_partial_file(tmp_path):
    path = write_json(tmp_path / 'sub' / 'metrics.json', {'auc': np.nan, 'n': 2})
    assert path.read_text(encoding='utf-8').endswith('\n')
    assert json.loads(path.read_text()) == {'auc': None, 'n': 2}
    with pytest.raises(TypeError):
        write_json(path, {'auc': object()})  # cannot be written
    assert json.loads(path.read_text()) == {'auc': None, 'n': 2}  # the old file intact
    assert sorted(p.name for p in path.parent.iterdir()) == ['metrics.json']
