"""Split an enhanced (multi-frame) MR file into one classic-looking header per frame.

Enhanced MR Image Storage (1.2.840.10008.5.1.4.1.1.4.1) and Legacy Converted
Enhanced MR (1.2.840.10008.5.1.4.1.1.4.4) hold a whole series in one file; the
geometry of each frame lives in its Per-frame Functional Groups item, or -- when
it is the same for every frame -- in the Shared Functional Groups item. Here
each frame becomes a small Dataset carrying the attributes a single-frame MR
file has at top level, so that ``mr_volume`` checks, sorts and stacks frames
exactly like the files of a classic series:

==============================================  =====================================
functional group (per-frame, else shared)       frame header attribute
==============================================  =====================================
PlanePositionSequence                           ImagePositionPatient (LPS mm)
PlaneOrientationSequence                        ImageOrientationPatient
PixelMeasuresSequence                           PixelSpacing (mm), SliceThickness,
                                                SpacingBetweenSlices (mm)
PixelValueTransformationSequence                RescaleSlope, RescaleIntercept
==============================================  =====================================

Position, orientation and pixel spacing are required (DataPrepError naming
patient, file and frame when absent). Without a PixelValueTransformationSequence
the top-level RescaleSlope/Intercept are used when a converter wrote them, else
the identity (the usual case for Enhanced MR).

One file holding several stacks is refused, never one of them picked: frames
of several orientations; of several temporal positions, echo times or b-values
(each another contrast or time point: which one the model wants cannot be told
from the file); or of several StackIDs or other DimensionIndex values at
repeated positions. Frames that differ by StackID (or another dimension) but
share one orientation and each lie at their own position (e.g. a multi-package
acquisition) are kept together, a varying StackID with a warning: ``mr_volume``
then requires them to form one regular stack, exactly as for a classic series.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from data_prep.discover import display_name
from data_prep.types import DataPrepError

ENHANCED_MR_SOP_CLASSES = frozenset({
    '1.2.840.10008.5.1.4.1.1.4.1',  # Enhanced MR Image Storage
    '1.2.840.10008.5.1.4.1.1.4.4',  # Legacy Converted Enhanced MR Image Storage
})
# DimensionIndexPointer targets that only say where a frame lies in one stack
SPATIAL_DIMENSIONS = frozenset({'StackID', 'InStackPositionNumber', 'ImagePositionPatient',
                                'SliceLocation'})
# frame labels that mark another image contrast or time point, never one stack's slices
CONTRAST_LABELS = frozenset({'TemporalPositionIndex', 'EffectiveEchoTime', 'DiffusionBValue'})
POSITION_DECIMALS = 3  # positions rounded to 1e-3 mm to tell frames at one place


def is_multiframe(ds: Dataset) -> bool:
    """True for an enhanced MR SOP class or any file with functional groups."""
    return (str(ds.get('SOPClassUID', '')) in ENHANCED_MR_SOP_CLASSES
            or 'PerFrameFunctionalGroupsSequence' in ds
            or 'SharedFunctionalGroupsSequence' in ds)


def frame_name(path: Path, patient_id: str, frame: int) -> str:
    """``<file> frame <n>`` (n from 1, as DICOM numbers frames) for messages."""
    return f'{display_name(path, patient_id)} frame {frame}'


def frame_headers(ds: Dataset, path: Path, patient_id: str,
                  warnings: list[str]) -> list[Dataset]:
    """One header per frame of ``ds`` (frame n at index n - 1), as described above.

    Each header holds SOPInstanceUID, Rows, Columns, SamplesPerPixel,
    ImagePositionPatient, ImageOrientationPatient, PixelSpacing and, when
    given, SliceThickness, SpacingBetweenSlices, RescaleSlope/Intercept. Raise
    DataPrepError on a missing geometry macro, a frame count that does not
    match, or several stacks in one file; warnings about merged stacks are
    appended to ``warnings``.
    """
    n_frames = _n_frames(ds, path, patient_id)
    shared = _first_item(ds.get('SharedFunctionalGroupsSequence'))
    per_frame = list(ds.get('PerFrameFunctionalGroupsSequence') or [])
    if len(per_frame) not in (0, n_frames):
        raise DataPrepError(f'patient {patient_id}: file {display_name(path, patient_id)} has '
                            f'{len(per_frame)} per-frame functional group items for '
                            f'{n_frames} frames')
    groups = [(per_frame[n] if per_frame else Dataset(), shared) for n in range(n_frames)]
    headers = [_frame_header(ds, own, common, path, patient_id, n + 1)
               for n, (own, common) in enumerate(groups)]
    _check_one_stack(ds, headers, groups, path, patient_id, warnings)
    return headers


def _n_frames(ds: Dataset, path: Path, patient_id: str) -> int:
    try:
        n_frames = int(ds.get('NumberOfFrames', 1) or 1)
    except (TypeError, ValueError) as err:
        raise DataPrepError(f'patient {patient_id}: file {display_name(path, patient_id)} has '
                            'an invalid NumberOfFrames') from err
    if n_frames < 1:
        raise DataPrepError(f'patient {patient_id}: file {display_name(path, patient_id)} has '
                            f'NumberOfFrames {n_frames}')
    return n_frames


def _first_item(sequence: Iterable[Dataset] | None) -> Dataset:
    """The first item of a sequence, or an empty Dataset."""
    return next(iter(sequence or []), Dataset())


def _macro(own: Dataset, shared: Dataset, sequence: str) -> Dataset | None:
    """The item of functional group ``sequence``: per-frame first, else shared."""
    for group in (own, shared):
        if sequence in group and group[sequence].value:
            return group[sequence].value[0]
    return None


def _frame_header(ds: Dataset, own: Dataset, shared: Dataset, path: Path, patient_id: str,
                  frame: int) -> Dataset:
    """The classic single-frame header of frame ``frame`` (1-based)."""
    header = Dataset()
    header.SOPInstanceUID = ds.get('SOPInstanceUID', '')
    header.Rows, header.Columns = ds.get('Rows'), ds.get('Columns')
    header.SamplesPerPixel = ds.get('SamplesPerPixel', 1)
    required = [('PlanePositionSequence', 'ImagePositionPatient'),
                ('PlaneOrientationSequence', 'ImageOrientationPatient'),
                ('PixelMeasuresSequence', 'PixelSpacing')]
    for sequence, keyword in required:
        item = _macro(own, shared, sequence)
        if item is None or keyword not in item or item[keyword].value in (None, ''):
            raise DataPrepError(f'patient {patient_id}: file '
                                f'{frame_name(path, patient_id, frame)} has no {keyword} in '
                                f'a per-frame or shared {sequence}')
        setattr(header, keyword, item[keyword].value)
    measures = _macro(own, shared, 'PixelMeasuresSequence')
    for keyword in ('SliceThickness', 'SpacingBetweenSlices'):
        if measures.get(keyword) not in (None, ''):
            setattr(header, keyword, measures[keyword].value)
    transform = _macro(own, shared, 'PixelValueTransformationSequence') or ds
    for keyword in ('RescaleSlope', 'RescaleIntercept'):
        if transform.get(keyword) not in (None, ''):
            setattr(header, keyword, transform[keyword].value)
    return header


def _stack_labels(ds: Dataset, groups: list[tuple[Dataset, Dataset]]) -> dict[str, list]:
    """Per frame, the values that tell stacks apart: name -> one value per frame.

    StackID and TemporalPositionIndex (FrameContentSequence), EffectiveEchoTime
    (MREchoSequence), DiffusionBValue (MRDiffusionSequence), and every
    DimensionIndexValues dimension not in ``SPATIAL_DIMENSIONS``.
    """
    pointers = [keyword_for_tag(item.DimensionIndexPointer) or str(item.DimensionIndexPointer)
                for item in ds.get('DimensionIndexSequence') or []
                if 'DimensionIndexPointer' in item]
    labels: dict[str, list] = {}
    for own, shared in groups:
        content = _macro(own, shared, 'FrameContentSequence') or Dataset()
        echo = _macro(own, shared, 'MREchoSequence') or Dataset()
        diffusion = _macro(own, shared, 'MRDiffusionSequence') or Dataset()
        found = {'StackID': content.get('StackID'),
                 'TemporalPositionIndex': content.get('TemporalPositionIndex'),
                 'EffectiveEchoTime': echo.get('EffectiveEchoTime'),
                 'DiffusionBValue': diffusion.get('DiffusionBValue')}
        values = content.get('DimensionIndexValues')
        if not isinstance(values, Iterable):  # None, or one value (VM 1)
            values = [] if values is None else [values]
        for pointer, value in zip(pointers, values):
            if pointer not in SPATIAL_DIMENSIONS and pointer not in found:
                found[f'{pointer} (DimensionIndexValues)'] = value
        for name, value in found.items():
            labels.setdefault(name, []).append(None if value is None else str(value))
    return labels


def _check_one_stack(ds: Dataset, headers: list[Dataset], groups: list[tuple[Dataset, Dataset]],
                     path: Path, patient_id: str, warnings: list[str]) -> None:
    """Raise when the frames form several stacks (see the module docstring).

    Several orientations, or several values of a contrast label
    (``CONTRAST_LABELS``): several stacks. StackID or another DimensionIndex
    dimension varying: several stacks only when frames repeat positions (else
    one stack whose slices carry their own index, e.g. per-slice acquisition
    numbers; a varying StackID is reported in ``warnings``).
    """
    name = f'patient {patient_id}: multi-frame file {display_name(path, patient_id)}'
    advice = 'export that series as one stack per series (or classic single-frame images)'
    orientations = {tuple(np.round([float(v) for v in h.ImageOrientationPatient], 3))
                    for h in headers}
    if len(orientations) > 1:
        raise DataPrepError(f'{name} holds frames of {len(orientations)} orientations '
                            f'(several stacks in one file); {advice}')
    varying = {label: len(set(values)) for label, values in _stack_labels(ds, groups).items()
               if len(set(values)) > 1}
    contrasts = {label: n for label, n in varying.items() if label in CONTRAST_LABELS}
    positions = {tuple(np.round([float(v) for v in h.ImagePositionPatient], POSITION_DECIMALS))
                 for h in headers}
    if not contrasts and varying and len(positions) < len(headers):
        contrasts = varying
    if contrasts:
        listed = ', '.join(f'{n} values of {label}' for label, n in contrasts.items())
        raise DataPrepError(f'{name} holds several stacks ({listed}) in its {len(headers)} '
                            f'frames; {advice}')
    if 'StackID' in varying:
        warnings.append(f'file {display_name(path, patient_id)}: frames of '
                        f'{varying["StackID"]} stacks (StackID) in one orientation, each at its '
                        'own position, stacked as one volume')
