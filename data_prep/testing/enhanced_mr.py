"""Build an enhanced (multi-frame) MR file from a classic single-frame series, for tests.

``write_enhanced_mr`` packs the given single-frame MR files into one Enhanced MR
Image Storage (or Legacy Converted Enhanced MR) file, frame n = file n: the
stored pixel values are copied unchanged and each file's ImagePositionPatient,
ImageOrientationPatient, PixelSpacing, SliceThickness and RescaleSlope /
RescaleIntercept become the frame's functional groups -- in the Shared
Functional Groups Sequence when every frame has the same value (unless listed
in ``per_frame``), else in each Per-frame item. A frame without rescale
attributes gets none (identity), as Enhanced MR usually has. The result loads
to the same volume as the classic series, whatever order the frames are in.

Synthetic data only: the UIDs come from ``rng``; patient and study attributes
are copied from the first file.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from data_prep.dicom_writer import new_rng, save_part10, uid_from_rng

ENHANCED_MR = '1.2.840.10008.5.1.4.1.1.4.1'
LEGACY_CONVERTED_ENHANCED_MR = '1.2.840.10008.5.1.4.1.1.4.4'
# functional group -> the single-frame attributes it carries
MACROS: dict[str, tuple[str, ...]] = {
    'PlanePositionSequence': ('ImagePositionPatient',),
    'PlaneOrientationSequence': ('ImageOrientationPatient',),
    'PixelMeasuresSequence': ('PixelSpacing', 'SliceThickness', 'SpacingBetweenSlices'),
    'PixelValueTransformationSequence': ('RescaleIntercept', 'RescaleSlope', 'RescaleType'),
}
# top-level attributes of a single-frame file that an enhanced file keeps per frame
_PER_FRAME_KEYWORDS = frozenset({
    *(k for keywords in MACROS.values() for k in keywords), 'SOPInstanceUID', 'InstanceNumber',
    'SliceLocation', 'WindowCenter', 'WindowWidth', 'PixelData', 'ImageType',
})


@dataclass
class EnhancedFile:
    """What a test needs to know about a written multi-frame file."""

    path: Path
    sop_instance_uid: str
    series_uid: str
    sop_class_uid: str
    sources: list[Path]  # frame n + 1 was made of sources[n]


def write_enhanced_mr(path: Path, files: Sequence[Path], *,
                      sop_class_uid: str = ENHANCED_MR,
                      series_uid: str | None = None,
                      per_frame: Collection[str] = ('PlanePositionSequence',),
                      rng: np.random.Generator | None = None) -> EnhancedFile:
    """Write ``files`` (single-frame MR, one per frame, in frame order) as one multi-frame file.

    Args:
        path: the file to write (parent folders are created).
        files: classic MR files of one series, same size and pixel format.
        sop_class_uid: ``ENHANCED_MR`` or ``LEGACY_CONVERTED_ENHANCED_MR``.
        series_uid: SeriesInstanceUID of the new file; None draws a new one.
        per_frame: functional groups (keys of ``MACROS``) written in every
            Per-frame item even when all frames agree; the others are shared
            when all frames agree.
        rng: source of the new UIDs.

    Returns:
        The file, its SOPInstanceUID and SeriesInstanceUID.
    """
    rng = new_rng(rng)
    datasets = [pydicom.dcmread(f) for f in files]
    first = datasets[0]
    ds = Dataset()
    for element in first:
        if element.keyword not in _PER_FRAME_KEYWORDS and element.tag.group != 0x0002:
            ds.add(element)
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = uid_from_rng(rng)
    ds.SeriesInstanceUID = series_uid or uid_from_rng(rng)
    ds.InstanceNumber = 1
    ds.ImageType = ['ORIGINAL', 'PRIMARY', 'M', 'NONE']
    ds.NumberOfFrames = len(datasets)
    ds.PixelData = b''.join(d.PixelData for d in datasets)

    shared, frames = Dataset(), [Dataset() for _ in datasets]
    for macro, keywords in MACROS.items():
        items = [_macro_item(d, keywords) for d in datasets]
        if all(item is None for item in items):
            continue
        if macro not in per_frame and all(item == items[0] for item in items):
            setattr(shared, macro, DicomSequence([items[0]]))
            continue
        for frame, item in zip(frames, items):
            if item is not None:
                setattr(frame, macro, DicomSequence([item]))
    for n, frame in enumerate(frames, start=1):
        content = Dataset()
        content.StackID = '1'
        content.InStackPositionNumber = n
        content.DimensionIndexValues = [1, n]
        frame.FrameContentSequence = DicomSequence([content])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.DimensionIndexSequence = DicomSequence(
        [_dimension('StackID'), _dimension('InStackPositionNumber')])
    save_part10(ds, Path(path), sop_class_uid, 'MMNPC_TEST_1')
    return EnhancedFile(path=Path(path), sop_instance_uid=str(ds.SOPInstanceUID),
                        series_uid=str(ds.SeriesInstanceUID), sop_class_uid=sop_class_uid,
                        sources=list(files))


def _macro_item(ds: Dataset, keywords: Sequence[str]) -> Dataset | None:
    """A functional group item holding ``keywords`` of ``ds`` (None if it has none)."""
    item = Dataset()
    for keyword in keywords:
        if keyword in ds:
            item.add(ds[keyword])
    return item if len(item) else None


def _dimension(keyword: str) -> Dataset:
    item = Dataset()
    item.DimensionIndexPointer = Tag(keyword)
    item.FunctionalGroupPointer = Tag('FrameContentSequence')
    return item
