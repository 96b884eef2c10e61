"""Writing DICOM, in one place: UIDs, DS strings, Part-10 files.

Used by the synthetic cohort writer (:mod:`data_prep.dicom_writer`) and by the
exporters of detections (``mmnpc.export``: RTSTRUCT, SEG), so that a file the
pipeline writes is always saved the same way:

* :func:`uid_from_rng` -- a valid UID hashed from draws of a numpy generator
  (the same seed gives the same UIDs; :func:`new_rng` without one: fresh entropy);
* :func:`ds_value` / :func:`ds_strings` -- Decimal String values within DICOM's
  16 characters, rounded to a stated number of places;
* :func:`save_part10` -- a Part-10 file (preamble, file meta), explicit VR little
  endian, the implementation version naming the writer; pydicom 2 or 3.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

# RT Referenced Study items point at the study via this (retired) SOP class,
# as treatment planning systems still do.
STUDY_COMPONENT_SOP_CLASS_UID = '1.2.840.10008.3.1.2.3.1'
_UID_PREFIX = '1.2.826.0.1.3680043.8.498.'  # pydicom's root; UIDs are hashed
_DS_MAX_CHARS = 16


def new_rng(rng: np.random.Generator | None) -> np.random.Generator:
    """Return ``rng``, or a generator seeded from fresh OS entropy."""
    return rng if rng is not None else np.random.default_rng()


def uid_from_rng(rng: np.random.Generator) -> str:
    """A valid DICOM UID determined by the next draw of ``rng``."""
    draw = rng.integers(0, 2**63 - 1, size=2)
    return str(generate_uid(_UID_PREFIX, entropy_srcs=[str(v) for v in draw]))


def ds_value(value: float, decimals: int) -> str:
    """Format a float as a DICOM DS string (<= 16 chars), rounded to ``decimals``."""
    for places in range(decimals, -1, -1):
        text = f'{float(value):.{places}f}'
        if '.' in text:
            text = text.rstrip('0').rstrip('.')
        if text in ('-0', ''):
            text = '0'
        if len(text) <= _DS_MAX_CHARS:
            return text
    raise ValueError(f'{value} does not fit a DICOM DS value')


def ds_strings(values: Sequence[float] | np.ndarray, decimals: int) -> list[str]:
    """DICOM DS strings of ``values`` (flattened), each rounded to ``decimals`` places
    (fewer where 16 characters would not hold them)."""
    return [ds_value(v, decimals) for v in np.asarray(values, dtype=float).ravel()]


def save_part10(ds: Dataset, path: Path, sop_class_uid: str, implementation_version: str) -> None:
    """Write ``ds`` as a DICOM Part 10 file, explicit VR little endian (pydicom 2 or 3)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = implementation_version
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    if int(pydicom.__version__.split('.')[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
