"""Export detected GTV/GTVln masks as a DICOM RT Structure Set on the input MR series.

What tools/predict.py writes (:func:`write_native_plane_rtstruct`): every
contour lies ON an image plane of the input series and its
ContourImageSequence names that image. The detections, made on the
converter's 1 mm axial slices, are stacked into a 1 mm volume in LPS mm,
sampled at the pixel centres of each native image (trilinear, >= 0.5) and
outlined there along the native pixel edges (:mod:`mmnpc.export.native_planes`).
This works for any orientation the converter reads (axial, reversed, coronal,
oblique). Planning systems refuse contours that are not coplanar with the image
they reference, and several 1 mm contours on one 3-5 mm image would be read as
overlapping contours of one slice. An enhanced (multi-frame) MR series works
the same way: each frame is an image plane, its geometry read from the
functional groups by :func:`data_prep.multiframe.frame_headers`, and each
contour's ContourImageSequence names the file's SOPInstanceUID with the
ReferencedFrameNumber (from 1) of its frame. Read back by the converter
(:mod:`data_prep.rtstruct` + :mod:`data_prep.rasterize`) on the native series,
the contours give exactly the native-grid detection mask.

Lower-level, kept for callers with their own contours:

1. :func:`masks_to_contours_mm` turns a bool mask of one canonical axial slice
   (the converter's 1 mm grid resized to 512 x 512, see
   :class:`data_prep.types.PreparedSlice`) into closed planar contours in LPS mm
   along the *pixel edges* (:func:`mmnpc.export.native_planes.even_odd_outlines`),
   so rasterising them with the converter's pixel-centre rule gives back exactly
   the same pixels. A component with a hole gives its outer outline plus one
   contour per hole, nested inside it (a hole by the even-odd rule and by the
   converter's nesting rule alike). The outlines are staircases of pixel edges,
   not smoothed: a smoothed outline would no longer give back the pixels.
2. :func:`write_detections_rtstruct` writes given contours; each contour's
   ContourImageSequence names the input slice nearest to it along the slice
   normal (centroid projected on n = row x column direction). Such contours lie
   on that slice only if the caller put them there.

Identity and provenance: nothing identifying is copied from the input files.
PatientName and PatientID are the ``patient_id`` the caller passes (by default
the cohort folder name, as everywhere in mmnpc); birth date, sex, accession
number, institution, physician, dates and times are written empty. Most
treatment-planning systems match a structure set to its images by PatientID as
well as by the UIDs, so a user who wants to import the file into the TPS record
of the patient passes that record's ID as ``patient_id`` themselves. The only
input values copied are the UIDs needed for referencing (Study, Series, Frame of
Reference, SOP Class and SOP Instance UIDs of the images).

The file declares itself as AI output: Manufacturer 'mmnpc', SeriesDescription
and StructureSetLabel saying research use only / not for clinical use,
ApprovalStatus UNAPPROVED, ROIGenerationAlgorithm AUTOMATIC, and ROI names
prefixed with ``roi_prefix`` ('AI_' by default, so 'AI_GTV' / 'AI_GTVln'):
with the prefix, neither a planning system nor the mmnpc converter (whose
default ROI aliases do not match 'AI_GTV') mistakes the detections for a
clinician's contours. ROI colours: GTV red, GTVln yellow.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RTStructureSetStorage

from data_prep.dicom_write import (STUDY_COMPONENT_SOP_CLASS_UID, ds_strings, new_rng,
                                   save_part10, uid_from_rng)
from data_prep.mr_volume import ORIENTATION_TOL, slice_axes
from data_prep.multiframe import frame_headers, frame_name, is_multiframe
from data_prep.types import CLASSES, DataPrepError, Volume
from mmnpc.export.native_planes import NativePlane, even_odd_outlines, native_contours

ROI_COLOURS: dict[str, list[int]] = {'GTV': [255, 0, 0], 'GTVln': [255, 255, 0]}  # RGB
DEFAULT_ROI_PREFIX = 'AI_'
MANUFACTURER = 'mmnpc'
SERIES_DESCRIPTION = 'mmnpc AI detections - research use only, NOT FOR CLINICAL USE'
STRUCTURE_SET_LABEL = 'mmnpc AI'  # SH: at most 16 characters

# identity fields copied from no input: written empty (type 2) in every export of detections
BLANKED_KEYWORDS = ('PatientBirthDate', 'PatientSex', 'AccessionNumber', 'StudyID', 'StudyDate',
                    'StudyTime', 'ReferringPhysicianName')


@dataclass(frozen=True)
class ReferencedSeries:
    """What an RTSTRUCT needs from the input MR series (headers only).

    One entry per image plane: a single-frame file, or one frame of an enhanced
    (multi-frame) MR file. ``sop_instance_uids``, ``frame_numbers`` and
    ``slice_heights`` are in slice order, sorted by position along ``normal``
    (never by file name, InstanceNumber or frame number).
    """

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    sop_class_uids: tuple[str, ...]
    sop_instance_uids: tuple[str, ...]
    slice_heights: np.ndarray  # mm: ImagePositionPatient . normal, ascending
    normal: np.ndarray  # LPS unit normal of the image planes (row x column direction)
    planes: tuple[NativePlane, ...] = ()  # pixel grid of each image, same order
    frame_numbers: tuple[int, ...] = ()  # frame (from 1) in its multi-frame file; 0 = single

    def nearest_slice(self, points: np.ndarray) -> int:
        """Index of the slice whose plane is nearest to the centroid of ``points`` (N x 3 LPS)."""
        height = float(np.asarray(points, dtype=float).mean(axis=0) @ self.normal)
        return int(np.argmin(np.abs(self.slice_heights - height)))


# --------------------------------------------------------------------------
# mask -> contours


def masks_to_contours_mm(mask: np.ndarray, origin_mm: Sequence[float],
                         spacing_mm: Sequence[float], z_mm: float) -> list[np.ndarray]:
    """Closed planar contours (each N x 3 LPS mm, first point not repeated) of a slice mask.

    mask: bool (H, W) on a canonical axial slice whose pixel (u, v) = (column,
    row) has its centre at x = origin_mm[0] + u * spacing_mm[0],
    y = origin_mm[1] + v * spacing_mm[1], z = z_mm (PreparedSlice convention).
    Points lie on pixel edges. Combined by the even-odd rule the contours cover
    exactly the mask pixels: first the outline of every 8-connected component,
    then the outline of every region those enclose but the mask lacks (holes),
    then whatever those cut out wrongly (mask pixels inside a hole), and so on.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f'mask must be 2-D (rows, columns), got shape {mask.shape}')
    origin = np.asarray(origin_mm, dtype=float)
    spacing = np.asarray(spacing_mm, dtype=float)
    if origin.shape != (2,) or spacing.shape != (2,) or np.any(spacing <= 0):
        raise ValueError(f'origin_mm and spacing_mm must be (x, y) with positive spacing, got '
                         f'{origin_mm} and {spacing_mm}')
    outlines_px = even_odd_outlines(mask)
    return [np.column_stack([origin + ij * spacing, np.full(len(ij), float(z_mm))])
            for ij in outlines_px]


# --------------------------------------------------------------------------
# input series


def read_referenced_series(series: Sequence[Path | str | Dataset],
                           patient_id: str) -> ReferencedSeries:
    """UIDs and image-plane geometry of the input MR series (files or pydicom datasets).

    A classic file is one image plane; an enhanced (multi-frame) MR file is one
    plane per frame, its geometry taken from the functional groups by
    :func:`data_prep.multiframe.frame_headers` (as the converter reads it).
    Raises DataPrepError (naming the patient and file, and frame) when the
    inputs are not one series: different Study/Series/Frame of Reference UIDs
    or orientations, several stacks in one file, or a missing UID or geometry
    attribute.
    """
    items = series_headers(series, patient_id)
    first_name, first = items[0]
    for keyword in ('StudyInstanceUID', 'SeriesInstanceUID', 'FrameOfReferenceUID'):
        for name, ds in items:
            if not ds.get(keyword) or str(ds.get(keyword)) != str(first.get(keyword)):
                raise DataPrepError(f'patient {patient_id}: file {name}: {keyword} missing or '
                                    f'different from that of {first_name}; give the files of '
                                    'one MR series')
    images = [image for name, ds in items for image in _images(ds, name, patient_id)]
    iop = _floats(images[0].header, 'ImageOrientationPatient', images[0].name, patient_id)
    axes = slice_axes(iop, Path(images[0].name), patient_id)
    heights, planes = [], []
    for image in images:
        if np.abs(_floats(image.header, 'ImageOrientationPatient', image.name, patient_id)
                  - iop).max() > ORIENTATION_TOL:
            raise DataPrepError(f'patient {patient_id}: file {image.name}: '
                                'ImageOrientationPatient differs from the rest of the input '
                                'series')
        position = _floats(image.header, 'ImagePositionPatient', image.name, patient_id)
        heights.append(float(position @ axes[:, 2]))
        planes.append(_plane(image, position, axes, patient_id))
    order = np.argsort(heights, kind='stable')
    return ReferencedSeries(
        study_uid=str(first.StudyInstanceUID), series_uid=str(first.SeriesInstanceUID),
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
        sop_class_uids=tuple(planes[k].sop_class_uid for k in order),
        sop_instance_uids=tuple(planes[k].sop_instance_uid for k in order),
        slice_heights=np.asarray(heights)[order], normal=axes[:, 2],
        planes=tuple(planes[k] for k in order),
        frame_numbers=tuple(planes[k].frame_number for k in order))


def series_headers(series: Sequence[Path | str | Dataset],
                   patient_id: str) -> list[tuple[str, Dataset]]:
    """(name for messages, header without pixels) of each input file, in the given order;
    datasets are used as they are. DataPrepError when none is given, a file cannot be
    read or lacks its SOPClassUID / SOPInstanceUID."""
    if not series:
        raise DataPrepError(f'patient {patient_id}: no input series files given')
    return [(_name(item, i), _header(item, patient_id, _name(item, i)))
            for i, item in enumerate(series)]


@dataclass(frozen=True)
class _Image:
    """One image plane of the input: a single-frame file, or one frame of a multi-frame file."""

    name: str  # for messages: the file name (and ' frame <n>')
    header: Dataset  # the file's header, or the frame's classic-looking header
    sop_class_uid: str  # of the file
    frame: int = 0  # frame number (from 1) in a multi-frame file; 0 = single-frame file


def _images(ds: Dataset, name: str, patient_id: str) -> list[_Image]:
    """The image planes of one file; an enhanced MR file is split into its frames by
    :func:`data_prep.multiframe.frame_headers` (its stack warnings are the converter's
    to report, not repeated here)."""
    if not is_multiframe(ds):
        return [_Image(name, ds, str(ds.SOPClassUID))]
    headers = frame_headers(ds, Path(name), patient_id, warnings=[])
    return [_Image(frame_name(Path(name), patient_id, n), header, str(ds.SOPClassUID), n)
            for n, header in enumerate(headers, start=1)]


def _plane(image: _Image, position: np.ndarray, axes: np.ndarray,
           patient_id: str) -> NativePlane:
    """The pixel grid of one image (DICOM PixelSpacing is [between rows, between columns])."""
    ds, name = image.header, image.name
    row_mm, col_mm = _floats(ds, 'PixelSpacing', name, patient_id)
    shape = _floats(ds, 'Rows', name, patient_id)[0], _floats(ds, 'Columns', name, patient_id)[0]
    if row_mm <= 0 or col_mm <= 0 or min(shape) < 1:
        raise DataPrepError(f'patient {patient_id}: file {name} has PixelSpacing '
                            f'{[row_mm, col_mm]} and {shape[0]:g} x {shape[1]:g} pixels')
    return NativePlane(sop_class_uid=image.sop_class_uid,
                       sop_instance_uid=str(ds.SOPInstanceUID), position=position, axes=axes,
                       spacing=(float(col_mm), float(row_mm)),
                       shape=(int(shape[0]), int(shape[1])), frame_number=image.frame)


def _name(item: Path | str | Dataset, index: int) -> str:
    """How an input is named in messages: its file name, or its position in the list."""
    if isinstance(item, Dataset):
        filename = getattr(item, 'filename', None)
        return Path(filename).name if isinstance(filename, str) else f'dataset #{index + 1}'
    return Path(item).name


def _header(item: Path | str | Dataset, patient_id: str, name: str) -> Dataset:
    if isinstance(item, Dataset):
        ds = item
    else:
        try:
            ds = pydicom.dcmread(item, stop_before_pixels=True, force=True)
        except Exception as err:  # pydicom raises many types on corrupt input
            raise DataPrepError(f'patient {patient_id}: cannot read DICOM file {name} '
                                f'({err})') from err
    for keyword in ('SOPClassUID', 'SOPInstanceUID'):
        if not ds.get(keyword):
            raise DataPrepError(f'patient {patient_id}: file {name} has no {keyword}')
    return ds


def _floats(ds: Dataset, keyword: str, name: str, patient_id: str) -> np.ndarray:
    try:
        value = ds[keyword].value
        values = value if isinstance(value, (list, tuple, MultiValue)) else [value]
        return np.array([float(v) for v in values], dtype=float)
    except (KeyError, TypeError, ValueError) as err:
        raise DataPrepError(f'patient {patient_id}: file {name} has no valid {keyword}') from err


# --------------------------------------------------------------------------
# RTSTRUCT


def write_detections_rtstruct(out_path: Path, series: Sequence[Path | str | Dataset],
                              rois: Mapping[str, Sequence[np.ndarray]], *, patient_id: str,
                              roi_prefix: str = DEFAULT_ROI_PREFIX,
                              roi_descriptions: Mapping[str, str] | None = None,
                              rng: np.random.Generator | None = None) -> Path:
    """Write the detected contours as an RTSTRUCT referencing the input ``series``.

    Args:
        out_path: the .dcm file to write (parent folders are created).
        series: the input MR series the detections were computed on, as file
            paths or pydicom datasets (headers suffice).
        rois: class ('GTV' / 'GTVln') -> closed planar contours, each an N x 3
            array of LPS mm points (N >= 3), e.g. from :func:`masks_to_contours_mm`.
            A class with no contour gives an ROI without contours.
        patient_id: written as PatientID and PatientName (see module docstring).
        roi_prefix: prepended to the class name to form the ROI name.
        roi_descriptions: class -> ROIDescription (e.g. the detection scores).
        rng: source of the new SOP Instance and Series UIDs (fresh entropy if None).

    Returns ``out_path``. Raises ValueError for an unknown class or a malformed
    contour and DataPrepError for an inconsistent input series.
    """
    _check_classes(rois)
    reference = read_referenced_series(series, patient_id)
    placed = {cls: [(reference.nearest_slice(points), points)
                    for points in _checked_contours(cls, contours)]
              for cls, contours in rois.items()}
    return _write(Path(out_path), reference, placed, patient_id, roi_prefix, roi_descriptions,
                  rng)


def write_native_plane_rtstruct(out_path: Path, series: Sequence[Path | str | Dataset],
                                volumes: Mapping[str, Volume | None], *, patient_id: str,
                                roi_prefix: str = DEFAULT_ROI_PREFIX,
                                roi_descriptions: Mapping[str, str] | None = None,
                                rng: np.random.Generator | None = None) -> Path:
    """Write detection masks as an RTSTRUCT whose contours lie on the input images' planes.

    Args:
        volumes: class ('GTV' / 'GTVln') -> its detection mask as a bool Volume in
            LPS mm (e.g. :func:`mmnpc.export.native_planes.detection_volume` of
            predict's 1 mm slices), or None; a class without any native contour
            gives an ROI without contours.
        series, patient_id, roi_prefix, roi_descriptions, rng, out_path: as in
            :func:`write_detections_rtstruct`; the headers must hold
            ImagePositionPatient, ImageOrientationPatient, PixelSpacing, Rows and
            Columns.

    Each contour is an outline of the native-grid mask of one image (see
    :mod:`mmnpc.export.native_planes`) and references exactly that image (and
    frame, for an enhanced multi-frame file; its geometry is then read from the
    functional groups).
    Returns ``out_path``.
    """
    _check_classes(volumes)
    reference = read_referenced_series(series, patient_id)
    placed = {cls: native_contours(volume, reference.planes) for cls, volume in volumes.items()}
    return _write(Path(out_path), reference, placed, patient_id, roi_prefix, roi_descriptions,
                  rng)


def _check_classes(rois: Mapping[str, object]) -> None:
    unknown = sorted(set(rois) - set(CLASSES))
    if unknown:
        raise ValueError(f'unknown ROI classes {unknown}; expected some of {list(CLASSES)}')


def _checked_contours(cls: str, contours: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The contours as float N x 3 arrays; ValueError naming the class and contour if not."""
    checked = []
    for index, points in enumerate(contours, start=1):
        points = np.asarray(points, dtype=float)
        if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3 \
                or not np.isfinite(points).all():
            raise ValueError(f'{cls} contour {index}: need N x 3 finite LPS points with N >= 3, '
                             f'got shape {points.shape}')
        checked.append(points)
    return checked


def _write(out_path: Path, reference: ReferencedSeries,
           placed: Mapping[str, Sequence[tuple[int, np.ndarray]]], patient_id: str,
           roi_prefix: str, roi_descriptions: Mapping[str, str] | None,
           rng: np.random.Generator | None) -> Path:
    """The RTSTRUCT of ``placed``: class -> (slice index in ``reference``, N x 3 contour)."""
    rng = new_rng(rng)
    ds = _structure_set_header(reference, patient_id, rng)
    roi_items, contour_items, observation_items = [], [], []
    for number, (cls, contours) in enumerate(placed.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = reference.frame_of_reference_uid
        roi.ROIName = f'{roi_prefix}{cls}'
        if roi_descriptions and cls in roi_descriptions:
            roi.ROIDescription = roi_descriptions[cls]
        roi.ROIGenerationAlgorithm = 'AUTOMATIC'
        roi.ROIGenerationDescription = f'mmnpc {mmnpc_version()} Mask R-CNN detection'
        roi_items.append(roi)
        contour_items.append(_roi_contour(number, cls, contours, reference))
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = 'GTV'
        observation.ROIInterpreter = ''
        observation_items.append(observation)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    ds.RTROIObservationsSequence = DicomSequence(observation_items)
    _save(ds, out_path)
    return out_path


def mmnpc_version() -> str:
    """The installed mmnpc version ('unknown' when run from a bare source tree)."""
    try:
        return metadata.version('mmnpc')
    except metadata.PackageNotFoundError:
        return 'unknown'


def _structure_set_header(reference: ReferencedSeries, patient_id: str,
                          rng: np.random.Generator) -> Dataset:
    """Patient, study, series, equipment and structure-set attributes (no PHI, no dates)."""
    ds = Dataset()
    ds.SpecificCharacterSet = 'ISO_IR 100'
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = uid_from_rng(rng)
    ds.Modality = 'RTSTRUCT'
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    for keyword in (*BLANKED_KEYWORDS, 'OperatorsName', 'StructureSetDate', 'StructureSetTime'):
        setattr(ds, keyword, '')  # type 2: present, empty
    ds.StudyInstanceUID = reference.study_uid
    ds.SeriesInstanceUID = uid_from_rng(rng)
    ds.SeriesNumber = 9001
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.InstanceNumber = 1
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = 'mmnpc MSOM pipeline'
    ds.SoftwareVersions = mmnpc_version()
    ds.StructureSetLabel = STRUCTURE_SET_LABEL
    ds.StructureSetName = 'AI detections'
    ds.StructureSetDescription = SERIES_DESCRIPTION
    ds.ApprovalStatus = 'UNAPPROVED'
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([_referenced_frame(reference)])
    return ds


def _referenced_frame(reference: ReferencedSeries) -> Dataset:
    """Frame of reference -> study -> series -> every image of the input series."""
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = reference.series_uid
    first_of_instance = {uid: k for k, uid in reversed(list(enumerate(
        reference.sop_instance_uids)))}  # an enhanced file is listed once (all its frames)
    ref_series.ContourImageSequence = DicomSequence(
        [_image_reference(reference, k, with_frame=False)
         for k in sorted(first_of_instance.values())])
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_SOP_CLASS_UID
    study.ReferencedSOPInstanceUID = reference.study_uid
    study.RTReferencedSeriesSequence = DicomSequence([ref_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = reference.frame_of_reference_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def _image_reference(reference: ReferencedSeries, k: int, *, with_frame: bool = True
                     ) -> Dataset:
    """Reference to image plane k: its SOP instance and, for a frame of a multi-frame file
    (unless ``with_frame`` is False: the whole file), its ReferencedFrameNumber (from 1)."""
    item = Dataset()
    item.ReferencedSOPClassUID = reference.sop_class_uids[k]
    item.ReferencedSOPInstanceUID = reference.sop_instance_uids[k]
    frame = reference.frame_numbers[k] if reference.frame_numbers else 0
    if with_frame and frame:
        item.ReferencedFrameNumber = frame
    return item


def _roi_contour(number: int, cls: str, contours: Sequence[tuple[int, np.ndarray]],
                 reference: ReferencedSeries) -> Dataset:
    """ROIContourSequence item with every contour of one class, each on slice k."""
    item = Dataset()
    item.ROIDisplayColor = ROI_COLOURS[cls]
    item.ReferencedROINumber = number
    contour_items = []
    for index, (k, points) in enumerate(contours, start=1):
        contour = Dataset()
        contour.ContourImageSequence = DicomSequence([_image_reference(reference, k)])
        contour.ContourGeometricType = 'CLOSED_PLANAR'
        contour.NumberOfContourPoints = len(points)
        contour.ContourNumber = index
        contour.ContourData = ds_strings(points, 6)  # 1e-6 mm
        contour_items.append(contour)
    if contour_items:
        item.ContourSequence = DicomSequence(contour_items)
    return item


def _save(ds: Dataset, path: Path) -> None:
    """Write ``ds`` as a DICOM Part 10 file, explicit VR little endian."""
    save_part10(ds, path, ds.SOPClassUID, 'MMNPC')
