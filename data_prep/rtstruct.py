"""Read an RTSTRUCT: which image series it refers to, and the GTV/GTVln contours.

Contours stay in patient coordinates (N x 3 LPS mm); ``rasterize`` puts them on
an image grid. Only CLOSED_PLANAR contours with at least 3 points enclosing a
non-zero area are used; the others (points, open polylines, degenerate
contours) are skipped with a warning for the manifest naming the ROI.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from data_prep.discover import display_name
from data_prep.options import PrepOptions
from data_prep.types import DataPrepError

MIN_AREA_MM2 = 1e-6  # a closed contour enclosing less is degenerate (collinear points)


@dataclass
class RtstructReferences:
    """The UIDs an RTSTRUCT points at (to match it with its MR series)."""

    series_uids: set[str]
    sop_instance_uids: set[str]
    frame_of_reference_uids: set[str]


@dataclass
class StructureSet:
    """GTV/GTVln contours of one RTSTRUCT.

    rois: class -> ROI name -> contours, each an N x 3 float array of LPS mm
    (N >= 3, closed planar). Several ROIs may map to one class.
    """

    rois: dict[str, dict[str, list[np.ndarray]]]
    warnings: list[str] = field(default_factory=list)

    def roi_names(self) -> dict[str, list[str]]:
        """class -> names of the ROIs used for it."""
        return {cls: sorted(rois) for cls, rois in self.rois.items()}


def read_references(path: Path, patient_id: str,
                    dataset: Dataset | None = None) -> RtstructReferences:
    """Referenced series, image SOP instances and frames of reference of an RTSTRUCT.

    dataset: the file already parsed (discovery's); None reads ``path``.
    """
    ds = _read(path, patient_id, dataset)
    series, sops, frames = set(), set(), set()
    for frame in ds.get('ReferencedFrameOfReferenceSequence', []):
        if frame.get('FrameOfReferenceUID'):
            frames.add(str(frame.FrameOfReferenceUID))
        for study in frame.get('RTReferencedStudySequence', []):
            for ref_series in study.get('RTReferencedSeriesSequence', []):
                if ref_series.get('SeriesInstanceUID'):
                    series.add(str(ref_series.SeriesInstanceUID))
                sops.update(_image_uids(ref_series))
    for roi in ds.get('StructureSetROISequence', []):
        if roi.get('ReferencedFrameOfReferenceUID'):
            frames.add(str(roi.ReferencedFrameOfReferenceUID))
    for roi_contour in ds.get('ROIContourSequence', []):
        for contour in roi_contour.get('ContourSequence', []):
            sops.update(_image_uids(contour))
    return RtstructReferences(series, sops, frames)


def read_structure_set(path: Path, patient_id: str, options: PrepOptions,
                       dataset: Dataset | None = None) -> StructureSet:
    """The GTV/GTVln contours of the RTSTRUCT at ``path``.

    ROI names are mapped to classes with ``options.class_of``; other ROIs are
    ignored. Raise when no ROI maps to a class at all. dataset: the file already
    parsed (discovery's); None reads ``path``.
    """
    ds = _read(path, patient_id, dataset)
    names = {int(r.ROINumber): str(r.get('ROIName', '')) for r in
             ds.get('StructureSetROISequence', [])}
    classes = {number: options.class_of(name) for number, name in names.items()}
    if not any(classes.values()):
        raise DataPrepError(
            f'patient {patient_id}: RTSTRUCT {display_name(path, patient_id)} has no GTV/GTVln '
            f'ROI (ROIs: {sorted(names.values())}); add aliases in the mapping file')
    contours_of = {number: [] for number, cls in classes.items() if cls}
    warnings: list[str] = []
    for roi_contour in ds.get('ROIContourSequence', []):
        number = int(roi_contour.ReferencedROINumber)
        if number in contours_of:
            contours_of[number] += _roi_contours(roi_contour, names[number], path, patient_id,
                                                 warnings)
    structure = StructureSet(rois={}, warnings=warnings)
    for number, contours in contours_of.items():
        if not contours:
            warnings.append(f'ROI {names[number]!r} has no usable contour')
        rois = structure.rois.setdefault(classes[number], {})
        rois[_unique(names[number], rois)] = contours
    return structure


def _roi_contours(roi_contour: Dataset, roi_name: str, path: Path, patient_id: str,
                  warnings: list[str]) -> list[np.ndarray]:
    """The usable contours of one ROI as N x 3 LPS arrays; warn about skipped ones."""
    contours, skipped = [], {}
    for contour in roi_contour.get('ContourSequence', []):
        kind = str(contour.get('ContourGeometricType', '')).upper()
        data = _contour_data(contour, roi_name, path, patient_id)
        if data.size % 3:
            raise DataPrepError(f'patient {patient_id}: RTSTRUCT {display_name(path, patient_id)}, '
                                f'ROI {roi_name!r}: ContourData length {data.size} is not a '
                                'multiple of 3')
        points = data.reshape(-1, 3)
        reason = (f'{kind or "no"} geometric type' if kind != 'CLOSED_PLANAR'
                  else 'fewer than 3 points' if len(points) < 3
                  else 'zero area' if polygon_area_mm2(points) < MIN_AREA_MM2 else None)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            contours.append(points)
    for reason, count in sorted(skipped.items()):
        warnings.append(f'ROI {roi_name!r}: skipped {count} contour(s) with {reason}')
    return contours


def _contour_data(contour: Dataset, roi_name: str, path: Path, patient_id: str) -> np.ndarray:
    """ContourData as float64, the same numbers as float() of each DS value.

    Parsed straight from the element's text when pydicom has not converted it
    yet: pydicom builds one validated DSfloat object per number (~6 us each; an
    RTSTRUCT holds tens of thousands), which was most of the time spent reading
    contours.
    """
    element = contour.get_item('ContourData')  # raw bytes until first accessed
    if element is None or element.value is None:
        return np.zeros(0)
    try:
        if isinstance(element.value, bytes):
            text = element.value.decode('ascii').strip(' \0')
            return np.array(text.split('\\'), dtype=float) if text else np.zeros(0)
        return np.asarray([float(v) for v in element.value], dtype=float)
    except (UnicodeDecodeError, ValueError) as err:
        raise DataPrepError(f'patient {patient_id}: RTSTRUCT {display_name(path, patient_id)}, '
                            f'ROI {roi_name!r}: ContourData is not a list of numbers ({err})'
                            ) from err


def polygon_area_mm2(points: np.ndarray) -> float:
    """Area (mm^2) of a planar polygon given as N x 3 points (any plane orientation)."""
    centred = points - points.mean(axis=0)
    return float(np.linalg.norm(np.cross(centred, np.roll(centred, -1, axis=0)).sum(axis=0)) / 2)


def _image_uids(item: Dataset) -> set[str]:
    return {str(image.ReferencedSOPInstanceUID)
            for image in item.get('ContourImageSequence', [])
            if image.get('ReferencedSOPInstanceUID')}


def _unique(name: str, taken: dict) -> str:
    """``name``, or ``name (2)``, ``name (3)``... when an ROI of that name exists."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f'{name} ({n})'
    return candidate


def _read(path: Path, patient_id: str, dataset: Dataset | None = None) -> Dataset:
    if dataset is not None:
        ds = dataset
    else:
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as err:
            raise DataPrepError(f'patient {patient_id}: cannot read RTSTRUCT '
                                f'{display_name(path, patient_id)} ({err})') from err
    if ds.get('Modality') != 'RTSTRUCT':
        raise DataPrepError(f'patient {patient_id}: {display_name(path, patient_id)} is not an '
                            'RTSTRUCT')
    return ds
