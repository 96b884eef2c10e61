"""The experiment scripts are loaded from their files (no ``sys.path`` edits): each is a
script with a ``main``, importing only installed packages."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / 'experiments'


def load_experiment(name: str) -> ModuleType:
    """``experiments/<name>.py`` as a module (a fresh one on every call)."""
    spec = importlib.util.spec_from_file_location(f'experiment_{name}', EXPERIMENTS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(name='load_experiment')
def load_experiment_fixture():
    """:func:`load_experiment` for the tests of this folder."""
    return load_experiment
