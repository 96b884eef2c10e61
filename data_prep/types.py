"""Data records passed between the read, geometry and write layers of data_prep.

Conventions used everywhere in this package:

* Patient coordinates are DICOM LPS in millimetres (+x = patient Left,
  +y = Posterior, +z = Superior).
* Arrays holding a volume are indexed ``[k, j, i]`` = ``[slice, row, column]``.
  ``spacing`` and ``origin`` are given in index order ``(i, j, k)`` (column,
  row, slice), like SimpleITK.
* ``direction`` is a 3x3 matrix whose *columns* are the unit vectors, in LPS,
  of increasing ``i``, ``j`` and ``k``. The physical position of voxel
  ``(i, j, k)`` is ``origin + direction @ (spacing * (i, j, k))``.
* The canonical axial orientation is ``direction == identity``: columns run to
  patient Left, rows run Posterior, slices run Superior.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SEQUENCES: tuple[str, ...] = ('t1', 't2', 'cet1')
CLASSES: tuple[str, ...] = ('GTV', 'GTVln')
CATEGORY_IDS: dict[str, int] = {'GTV': 1, 'GTVln': 2}
OUTPUT_SIZE: int = 512  # px, side of every written slice


class DataPrepError(ValueError):
    """Bad input that cannot be converted; the message names patient and file."""


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found under a patient folder.

    ``datasets``: the files as discovery parsed them (same order as ``files``;
    large values such as big pixel data are read from the file on first use),
    so that loading does not parse each file a second time; empty when the
    series was built without them (then loaders read the files).
    """

    patient_id: str  # the cohort folder name, never the DICOM PatientID
    modality: str  # 'MR', 'RTSTRUCT', ...
    series_uid: str
    frame_of_reference_uid: str
    description: str  # SeriesDescription ('' when absent)
    files: tuple[Path, ...]  # every file of the series, unsorted
    sop_instance_uids: tuple[str, ...]  # same order as ``files``
    datasets: tuple = field(default=(), compare=False, repr=False)  # pydicom Datasets or ()

    def parsed_datasets(self) -> tuple:
        """Per file of ``files``: the dataset discovery parsed from that file, or None."""
        by_name = {getattr(ds, 'filename', None): ds for ds in self.datasets}
        return tuple(by_name.get(str(path)) for path in self.files)


@dataclass
class Volume:
    """An image (or mask) on a regular grid in patient coordinates.

    array: float32 or bool, shape (nk, nj, ni) = (slices, rows, columns).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]  # mm, (i, j, k)
    origin: tuple[float, float, float]  # LPS mm of the centre of voxel (0, 0, 0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Map N x 3 continuous voxel indices (i, j, k) to N x 3 LPS mm."""
        ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
        return np.asarray(self.origin) + (ijk * np.asarray(self.spacing)) @ self.direction.T

    def lps_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Map N x 3 LPS mm points to N x 3 continuous voxel indices (i, j, k)."""
        xyz = np.atleast_2d(np.asarray(xyz, dtype=float))
        return ((xyz - np.asarray(self.origin)) @ self.direction) / np.asarray(self.spacing)


@dataclass
class PreparedSlice:
    """One axial output slice, ready to be written as JPEG + COCO.

    Pixel (u, v) = (column, row) of ``image`` has its centre at
    LPS x = origin_mm[0] + u * spacing_mm[0], y = origin_mm[1] + v * spacing_mm[1],
    z = z_mm.
    """

    index: int  # slice number in the 1 mm output stack, 0 = most inferior
    image: np.ndarray  # uint8 (512, 512); 0 = padding, 1..255 = the volume
    masks: dict[str, np.ndarray]  # class name -> bool (512, 512); absent = empty
    z_mm: float
    spacing_mm: tuple[float, float]  # mm per output pixel (x, y)
    origin_mm: tuple[float, float]  # LPS (x, y) of the centre of pixel (0, 0)


@dataclass
class PreparedSequence:
    """Everything converted for one patient and one MR sequence."""

    patient_id: str
    sequence: str  # one of SEQUENCES
    slices: list[PreparedSlice]
    info: dict  # manifest entry: series_description, n_source_slices,
    #             source_spacing_mm, source_shape, warnings (list of str), ...
