"""DICOM MR + RTSTRUCT cohort -> 1 mm, 512 x 512 JPEG slices + COCO annotations.

Command line: ``python -m data_prep convert COHORT OUT`` (and ``synth`` for a
synthetic demo cohort); see ``python -m data_prep --help``. Library entry
points are imported lazily so that ``import data_prep`` stays light (no
SimpleITK, pydicom or OpenCV until used; never torch or MMDetection).
"""
from __future__ import annotations

import importlib

__version__ = '0.1.0'  # = the mmnpc package version in pyproject.toml (checked by a test)

_EXPORTS = {
    'convert_cohort': 'data_prep.convert',
    'synthesize_cohort': 'data_prep.synth',
    'prepare_patient': 'data_prep.patient',
    'check_cohort': 'data_prep.check',
    'PrepOptions': 'data_prep.options',
    'load_options': 'data_prep.options',
    'DataPrepError': 'data_prep.types',
}
__all__ = ['__version__', *_EXPORTS]


def __getattr__(name: str) -> object:
    """Import an exported function on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(_EXPORTS[name]), name)
