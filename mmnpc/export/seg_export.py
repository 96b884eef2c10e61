"""Export detection masks as a DICOM Segmentation (SEG) on the input MR series' own images.

What ``tools/predict.py --seg`` writes beside the RTSTRUCT
(:func:`write_native_plane_seg`): a BINARY Segmentation (highdicom
``hd.seg.Segmentation``) with one segment per class given (``AI_GTV``,
``AI_GTVln``), whose frames are the input series' images. The masks are the
very native-plane masks the RTSTRUCT's contours outline
(:func:`mmnpc.export.native_planes.native_masks`: the 1 mm detections sampled at
each native image's pixel centres, trilinear, >= 0.5), so the SEG and the
RTSTRUCT read back to the same voxels. Each frame references its source image
(DerivationImageSequence): a classic file by its SOPInstanceUID, a frame of an
enhanced (multi-frame) MR file by that file's SOPInstanceUID and its
ReferencedFrameNumber (highdicom writes both from the source headers). Empty
frames are left out (highdicom's default); readers treat them as background.

Segment codes (DICOM CID 7150 / 7151, the pair highdicom's documentation uses
for a tumour): SegmentedPropertyCategory SCT 49755003 'Morphologically Abnormal
Structure', SegmentedPropertyType SCT 108369006 'Neoplasm'; algorithm type
AUTOMATIC, family DCM 123110 'Artificial Intelligence', named 'mmnpc' with its
version. Segment colours as the RTSTRUCT's ROIs (GTV red, GTVln yellow).

Identity, as :mod:`mmnpc.export.rtstruct_export`: highdicom is given stripped
copies of the input headers holding only UIDs, geometry and pixel format,
with PatientName and PatientID set to ``patient_id`` and birth date, sex,
accession number, study ID/date/time and referring physician empty; so nothing
identifying of the input files can reach the SEG. The only dates written are
ContentDate/ContentTime (type 1 in a SEG): when the file was made, not anything
from the input. It declares itself AI output as the RTSTRUCT does (Manufacturer
'mmnpc', SeriesDescription and ContentDescription 'research use only, NOT FOR
CLINICAL USE', segment labels with the ``AI_`` prefix).

Input series supported: single-frame MR files, or exactly one enhanced MR file
(highdicom derives a SEG from a list of single-frame images or from one
multi-frame image); anything else raises DataPrepError naming the patient.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes

from data_prep.dicom_write import new_rng, uid_from_rng
from data_prep.multiframe import frame_headers, is_multiframe
from data_prep.types import CLASSES, DataPrepError, Volume
from mmnpc.export.native_planes import native_masks
from mmnpc.export.rtstruct_export import (BLANKED_KEYWORDS, DEFAULT_ROI_PREFIX, MANUFACTURER,
                                          ROI_COLOURS,
                                          SERIES_DESCRIPTION, mmnpc_version,
                                          read_referenced_series, series_headers)

SEG_SERIES_NUMBER = 9002  # the RTSTRUCT is 9001
CONTENT_LABEL = 'MMNPC_AI'  # CS: upper case, at most 16 characters
SEGMENT_CATEGORY = codes.SCT.MorphologicallyAbnormalStructure  # SCT 49755003
SEGMENT_TYPE = codes.SCT.Neoplasm  # SCT 108369006
# what highdicom needs of a source image: UIDs, geometry, pixel format (nothing identifying)
_SOURCE_KEYWORDS = (
    'SOPClassUID', 'SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID',
    'FrameOfReferenceUID', 'Modality', 'Rows', 'Columns', 'ImagePositionPatient',
    'ImageOrientationPatient', 'PixelSpacing', 'SliceThickness', 'SpacingBetweenSlices',
    'SamplesPerPixel', 'PhotometricInterpretation', 'BitsAllocated', 'BitsStored', 'HighBit',
    'PixelRepresentation', 'NumberOfFrames')


def write_native_plane_seg(out_path: Path, series: Sequence[Path | str | Dataset],
                           volumes: Mapping[str, Volume | None], *, patient_id: str,
                           roi_prefix: str = DEFAULT_ROI_PREFIX,
                           rng: np.random.Generator | None = None) -> Path:
    """Write detection masks as a BINARY DICOM SEG on the images of the input series.

    Args:
        out_path: the .dcm file to write (parent folders are created).
        series: the input MR series (file paths or pydicom datasets; headers
            suffice): single-frame files, or one enhanced MR file.
        volumes: class ('GTV' / 'GTVln') -> its detection mask as a bool Volume in
            LPS mm (:func:`mmnpc.export.native_planes.detection_volume`), or None;
            one segment per class, in ``CLASSES`` order (empty when None).
        patient_id: written as PatientID and PatientName (see module docstring).
        roi_prefix: prepended to the class name to form the SegmentLabel.
        rng: source of the new Series and SOP Instance UIDs (fresh entropy if None).

    Returns ``out_path``. Raises ValueError for an unknown or no class and
    DataPrepError (naming the patient) for an inconsistent or unsupported series.
    """
    classes = [cls for cls in CLASSES if cls in volumes]
    unknown = sorted(set(volumes) - set(CLASSES))
    if unknown or not classes:
        raise ValueError(f'SEG classes must be some of {list(CLASSES)}, got {sorted(volumes)}')
    headers = series_headers(series, patient_id)
    reference = read_referenced_series([ds for _, ds in headers], patient_id)
    sources, order = _sources(headers, reference.frame_numbers, reference.sop_instance_uids,
                              patient_id)
    masks = np.stack([native_masks(volumes[cls], reference.planes) for cls in classes],
                     axis=-1)  # (planes, rows, columns, segments) in slice order
    rng = new_rng(rng)
    with warnings.catch_warnings():  # PatientName is the bare patient id, as in the RTSTRUCT
        warnings.filterwarnings('ignore', message='.*unlikely to represent the intended person')
        seg = _segmentation(sources, masks[order].astype(np.uint8), classes, roi_prefix,
                            rng)
    _remove_identity(seg, patient_id)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out_path)
    return out_path


def _segmentation(sources: list[Dataset], pixels: np.ndarray, classes: list[str],
                  roi_prefix: str, rng: np.random.Generator) -> Dataset:
    """highdicom's BINARY Segmentation of ``pixels`` (uint8 0/1: source frames, rows,
    columns, classes), frame n of the sources = ``pixels[n - 1]``."""
    import highdicom as hd  # imported here: only --seg needs it

    return hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(n, cls, roi_prefix) for n, cls in
                              enumerate(classes, start=1)],
        series_instance_uid=uid_from_rng(rng), series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=uid_from_rng(rng), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name='mmnpc MSOM pipeline', software_versions=mmnpc_version(),
        device_serial_number='', content_label=CONTENT_LABEL,
        content_description=SERIES_DESCRIPTION, series_description=SERIES_DESCRIPTION)


def _segment(number: int, cls: str, roi_prefix: str):
    """The SegmentDescription of class ``cls`` (codes: module docstring)."""
    import highdicom as hd

    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=f'{roi_prefix}{cls}',
        segmented_property_category=SEGMENT_CATEGORY, segmented_property_type=SEGMENT_TYPE,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name='mmnpc', version=mmnpc_version(), family=codes.cid7162.ArtificialIntelligence),
        display_color=hd.color.CIELabColor.from_rgb(*ROI_COLOURS[cls]))


def _sources(headers: list[tuple[str, Dataset]], frame_numbers: tuple[int, ...],
             sop_instance_uids: tuple[str, ...], patient_id: str
             ) -> tuple[list[Dataset], np.ndarray]:
    """(stripped source headers for highdicom, index into the slice-ordered planes of each
    SEG input frame): the single-frame files in slice order, or the one enhanced file's
    frames in frame order (highdicom pairs frame n with ``pixel_array[n - 1]``)."""
    multiframe = [(name, ds) for name, ds in headers if is_multiframe(ds)]
    if not multiframe:
        by_uid = {str(ds.SOPInstanceUID): ds for _, ds in headers}
        return ([_stripped(by_uid[uid], patient_id) for uid in sop_instance_uids],
                np.arange(len(sop_instance_uids)))
    if len(headers) > 1:
        raise DataPrepError(f'patient {patient_id}: a DICOM SEG is written for a series of '
                            'single-frame files or of one enhanced MR file, not for '
                            f'{len(headers)} files of which {len(multiframe)} are multi-frame; '
                            'use the RTSTRUCT')
    name, ds = multiframe[0]
    source = _stripped(ds, patient_id)
    frames = frame_headers(ds, Path(name), patient_id, warnings=[])
    source.SharedFunctionalGroupsSequence = DicomSequence([_shared_groups(frames[0])])
    source.PerFrameFunctionalGroupsSequence = DicomSequence(
        [_position_group(frame) for frame in frames])
    return [source], np.argsort(np.asarray(frame_numbers), kind='stable')


def _stripped(ds: Dataset, patient_id: str) -> Dataset:
    """Only ``_SOURCE_KEYWORDS`` of ``ds``, patient ``patient_id``, the rest blank."""
    out = Dataset()
    for keyword in _SOURCE_KEYWORDS:
        if keyword in ds:
            out.add(ds[keyword])
    out.Modality = out.get('Modality') or 'MR'
    _set_identity(out, patient_id)
    return out


def _shared_groups(frame: Dataset) -> Dataset:
    """Plane orientation and pixel measures of an enhanced source (from its frame header)."""
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = frame.ImageOrientationPatient
    measures.PixelSpacing = frame.PixelSpacing
    for keyword in ('SliceThickness', 'SpacingBetweenSlices'):
        if keyword in frame:
            measures.add(frame[keyword])
    group = Dataset()
    group.PlaneOrientationSequence = DicomSequence([orientation])
    group.PixelMeasuresSequence = DicomSequence([measures])
    return group


def _position_group(frame: Dataset) -> Dataset:
    position, group = Dataset(), Dataset()
    position.ImagePositionPatient = frame.ImagePositionPatient
    group.PlanePositionSequence = DicomSequence([position])
    return group


def _set_identity(ds: Dataset, patient_id: str) -> None:
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    for keyword in BLANKED_KEYWORDS:
        setattr(ds, keyword, '')  # type 2: present, empty


def _remove_identity(seg: Dataset, patient_id: str) -> None:
    """Patient and study attributes as the RTSTRUCT's; no instance-creation stamp (type 3)."""
    _set_identity(seg, patient_id)
    for keyword in ('InstanceCreationDate', 'InstanceCreationTime'):
        if keyword in seg:
            delattr(seg, keyword)
