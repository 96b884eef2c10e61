"""Export detected GTV/GTVln masks as a DICOM RT Structure Set on the input MR series.

Two steps, kept apart:

1. :func:`masks_to_contours_mm` turns a bool mask of one canonical axial slice
   (the converter's 1 mm grid resized to 512 x 512, see
   :class:`data_prep.types.PreparedSlice`) into closed planar contours in LPS mm.
   Each contour runs along the *pixel edges* of a connected component (the
   outline :func:`data_prep.coco_writer.edge_polygon` traces), so rasterising it
   with the converter's pixel-centre rule (:mod:`data_prep.rasterize`) gives back
   exactly the same pixels: no pixel centre lies on such an outline. A component
   with a hole gives its outer outline plus one contour per hole; nested
   contours are read by the even-odd rule (an inner contour cuts out), as
   data_prep, Eclipse and most viewers read them. The outlines are staircases
   of pixel edges (about 0.5 mm steps on a 512 px slice), not smoothed: a
   smoothed outline would no longer give back the detector's pixels.
2. :func:`write_detections_rtstruct` writes the contours as an RTSTRUCT that
   references the input series: its Study, Series and Frame of Reference UIDs
   come from the input headers, and every contour's ContourImageSequence names
   the input slice nearest to it along the slice normal (the contour centroid
   projected on the normal n = row x column direction of ImageOrientationPatient).
   For an axial input series that is the slice whose plane is closest to the
   contour's z. For an oblique or sagittal/coronal input series the axial
   contour crosses several slice planes; it still references the nearest one by
   centroid, and a viewer shows it in 3-D / on reformatted planes rather than
   on that slice alone.

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
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RTStructureSetStorage
from scipy import ndimage

from data_prep.coco_writer import edge_polygon
from data_prep.dicom_writer import (STUDY_COMPONENT_SOP_CLASS_UID, ds_strings, new_rng,
                                    save_part10, uid_from_rng)
from data_prep.mr_volume import ORIENTATION_TOL, slice_axes
from data_prep.rasterize import polygon_mask
from data_prep.types import CLASSES, DataPrepError

ROI_COLOURS: dict[str, list[int]] = {'GTV': [255, 0, 0], 'GTVln': [255, 255, 0]}  # RGB
DEFAULT_ROI_PREFIX = 'AI_'
MANUFACTURER = 'mmnpc'
SERIES_DESCRIPTION = 'mmnpc AI detections - research use only, NOT FOR CLINICAL USE'
STRUCTURE_SET_LABEL = 'mmnpc AI'  # SH: at most 16 characters
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_MAX_PASSES = 64  # nesting depth of holes in holes; real masks need 1-3


@dataclass(frozen=True)
class ReferencedSeries:
    """What an RTSTRUCT needs from the input MR series (headers only).

    ``sop_instance_uids`` and ``slice_heights`` are in slice order, sorted by
    position along ``normal`` (never by file name or InstanceNumber).
    """

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    sop_class_uids: tuple[str, ...]
    sop_instance_uids: tuple[str, ...]
    slice_heights: np.ndarray  # mm: ImagePositionPatient . normal, ascending
    normal: np.ndarray  # LPS unit normal of the image planes (row x column direction)

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


def even_odd_outlines(mask: np.ndarray) -> list[np.ndarray]:
    """Pixel-edge outlines (each N x 2 (column, row) px, pixel centres at integers) whose
    even-odd combination, rasterised by the pixel-centre rule, is exactly ``mask`` (bool H x W).

    Each pass outlines the 8-connected components of the pixels still wrong
    and toggles what those outlines cover, until nothing is wrong; the rule is
    :func:`data_prep.rasterize.polygon_mask`, the one the converter reads
    contours with, so the round trip is exact by construction.
    """
    drawn = np.zeros(mask.shape, dtype=bool)
    outlines: list[np.ndarray] = []
    for _ in range(_MAX_PASSES):
        wrong = mask ^ drawn
        if not wrong.any():
            return outlines
        labels, _ = ndimage.label(wrong, structure=_EIGHT_CONNECTED)
        for label, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
            component = labels[rows, cols] == label
            # edge_polygon: pixel (u, v) spans [u, u+1] x [v, v+1]; here its centre is (u, v)
            ij = np.reshape(edge_polygon(component), (-1, 2)) + (cols.start - 0.5,
                                                                 rows.start - 0.5)
            outlines.append(ij)
            drawn ^= polygon_mask(ij, mask.shape)
    raise RuntimeError(f'mask outlines did not converge in {_MAX_PASSES} passes')


# --------------------------------------------------------------------------
# input series


def read_referenced_series(series: Sequence[Path | str | Dataset],
                           patient_id: str) -> ReferencedSeries:
    """UIDs and slice geometry of the input MR series (files or pydicom datasets).

    Raises DataPrepError (naming the patient and file) when the inputs are not
    one series: different Study/Series/Frame of Reference UIDs or orientations,
    or a missing UID or geometry attribute.
    """
    if not series:
        raise DataPrepError(f'patient {patient_id}: no input series files given')
    items = [(_name(item, i), _header(item, patient_id, _name(item, i)))
             for i, item in enumerate(series)]
    first_name, first = items[0]
    for keyword in ('StudyInstanceUID', 'SeriesInstanceUID', 'FrameOfReferenceUID'):
        for name, ds in items:
            if not ds.get(keyword) or str(ds.get(keyword)) != str(first.get(keyword)):
                raise DataPrepError(f'patient {patient_id}: file {name}: {keyword} missing or '
                                    f'different from that of {first_name}; give the files of '
                                    'one MR series')
    iop = _floats(first, 'ImageOrientationPatient', first_name, patient_id)
    axes = slice_axes(iop, Path(first_name), patient_id)
    heights = []
    for name, ds in items:
        if np.abs(_floats(ds, 'ImageOrientationPatient', name, patient_id) - iop).max() \
                > ORIENTATION_TOL:
            raise DataPrepError(f'patient {patient_id}: file {name}: ImageOrientationPatient '
                                'differs from the rest of the input series')
        heights.append(float(_floats(ds, 'ImagePositionPatient', name, patient_id) @ axes[:, 2]))
    order = np.argsort(heights, kind='stable')
    return ReferencedSeries(
        study_uid=str(first.StudyInstanceUID), series_uid=str(first.SeriesInstanceUID),
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
        sop_class_uids=tuple(str(items[k][1].SOPClassUID) for k in order),
        sop_instance_uids=tuple(str(items[k][1].SOPInstanceUID) for k in order),
        slice_heights=np.asarray(heights)[order], normal=axes[:, 2])


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
        return np.array([float(v) for v in ds[keyword].value], dtype=float)
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
    unknown = sorted(set(rois) - set(CLASSES))
    if unknown:
        raise ValueError(f'unknown ROI classes {unknown}; expected some of {list(CLASSES)}')
    reference = read_referenced_series(series, patient_id)
    rng = new_rng(rng)
    ds = _structure_set_header(reference, patient_id, rng)
    roi_items, contour_items, observation_items = [], [], []
    for number, (cls, contours) in enumerate(rois.items(), start=1):
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
    _save(ds, Path(out_path))
    return Path(out_path)


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
    for keyword in ('PatientBirthDate', 'PatientSex', 'StudyDate', 'StudyTime',
                    'ReferringPhysicianName', 'StudyID', 'AccessionNumber', 'OperatorsName',
                    'StructureSetDate', 'StructureSetTime'):
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
    ref_series.ContourImageSequence = DicomSequence(
        [_image_reference(reference, k) for k in range(len(reference.sop_instance_uids))])
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_SOP_CLASS_UID
    study.ReferencedSOPInstanceUID = reference.study_uid
    study.RTReferencedSeriesSequence = DicomSequence([ref_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = reference.frame_of_reference_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def _image_reference(reference: ReferencedSeries, k: int) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = reference.sop_class_uids[k]
    item.ReferencedSOPInstanceUID = reference.sop_instance_uids[k]
    return item


def _roi_contour(number: int, cls: str, contours: Sequence[np.ndarray],
                 reference: ReferencedSeries) -> Dataset:
    """ROIContourSequence item with every contour of one class."""
    item = Dataset()
    item.ROIDisplayColor = ROI_COLOURS[cls]
    item.ReferencedROINumber = number
    contour_items = []
    for index, points in enumerate(contours, start=1):
        points = np.asarray(points, dtype=float)
        if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3 \
                or not np.isfinite(points).all():
            raise ValueError(f'{cls} contour {index}: need N x 3 finite LPS points with N >= 3, '
                             f'got shape {points.shape}')
        contour = Dataset()
        contour.ContourImageSequence = DicomSequence(
            [_image_reference(reference, reference.nearest_slice(points))])
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
