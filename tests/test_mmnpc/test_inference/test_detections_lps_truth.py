"""Detections reported in patient millimetres land on the TRUE lesion of a synthetic patient.

A tiny MR series with non-trivial geometry (ImagePositionPatient far from 0,
anisotropic 2-2.5 mm pixels, columns running to patient Right or rows to
Anterior, slices stored head to foot, one coronal series) carries an RTSTRUCT
with a box-shaped GTV whose faces are LPS numbers chosen here. The converter's
ground-truth mask of an axial slice through the lesion (``prepare_patient``,
as predict reads a patient) becomes a fake detection, and what predict reports
for it -- ``bbox_lps_mm``, ``centroid_lps_mm`` and the RTSTRUCT contour -- is
compared with those numbers, never with the code under test.

Why the truth is sharp: the box faces lie on native voxel edges (so the
native mask is exactly the box), the native spacing is >= 2 mm (so the linear
resampling crosses 0.5 exactly at the faces) and every field of view is 64 mm,
or 60 mm centred in the 64 mm square, so the 512 output pixels (0.125 mm) also
have edges on the faces. The mask is then the lesion's section, its corners
rounded off a little (symmetrically) by the bilinear interpolation:

* ``bbox_lps_mm`` = outer edges of the extreme pixels (a continuous-pixel box
  edge ``x1`` is at LPS ``origin + (x1 - 0.5) * spacing``) = the lesion's faces,
  to better than a quarter pixel: mapping box edges as if they were pixel
  centres is off by half a pixel and fails;
* ``centroid_lps_mm`` and the RTSTRUCT contour's centroid = the section's centre
  within half a pixel; the contour's extent = the faces; its z = the slice z
  (the RTSTRUCT contours lie on the native planes: for the axial series the
  looked-at slice is one; for the coronal one each plane gets a one-row strip).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pydicom
import pytest

from data_prep.dicom_writer import PatientHeader, write_mr_series, write_rtstruct
from data_prep.options import PrepOptions
from data_prep.patient import prepare_patient
from mmnpc.inference.detections_mm import describe_detections
from mmnpc.inference.predict_patient import PatientPrediction
from mmnpc.inference.prediction_outputs import write_prediction
from mmnpc.inference.slice_detector import SliceDetections

PID = 'LPS_001'
HEADER = PatientHeader(name='TRUTH^LESION', patient_id='MRN424242')
CLASSES = ('GTV', 'GTVln')
OPTIONS = PrepOptions(sequences=('cet1',))  # 512 px output slices, as predict uses
STEP_MM = 64 / 512  # output pixel: the 64 mm square field of view over 512 px
X, Y, Z = np.eye(3)


@dataclass(frozen=True)
class Case:
    """A native series and a box-shaped lesion in it (all LPS mm)."""

    direction: np.ndarray  # columns: LPS unit vectors of i (columns), j (rows), k (slices)
    spacing: tuple[float, float, float]  # (i, j, k)
    shape: tuple[int, int, int]  # (k, j, i)
    origin: tuple[float, float, float]  # centre of voxel (0, 0, 0)
    lesion_lo: tuple[float, float, float]  # (x, y, z) faces of the box, on native voxel edges
    lesion_hi: tuple[float, float, float]
    slice_z: float  # the axial output slice looked at: the lesion's middle plane

    @property
    def centre_xy(self) -> np.ndarray:
        return (np.asarray(self.lesion_lo[:2]) + self.lesion_hi[:2]) / 2

    @property
    def extent_xy(self) -> np.ndarray:
        """x_min, y_min, x_max, y_max of the lesion's axial section."""
        return np.array([*self.lesion_lo[:2], *self.lesion_hi[:2]])


CASES = {
    # columns run to patient Right (x = 31.7 - 2.5 i), slices stored head to foot
    # (z = 40.4 - 3 k); x edges 32.95 - 2.5 m, y edges -53.3 + 2 m, planes 22.4..40.4
    'axial_columns_flipped': Case(
        direction=np.column_stack([-X, Y, -Z]), spacing=(2.5, 2.0, 3.0), shape=(7, 32, 24),
        origin=(31.7, -52.3, 40.4), lesion_lo=(-9.55, -35.3, 26.9),
        lesion_hi=(7.95, -19.3, 35.9), slice_z=31.4),
    # rows run to patient Anterior (y = 17.9 - 2.5 j), slices head to foot
    # (z = -12.2 - 3.5 k); x edges -42.3 + 2 m, y edges 19.15 - 2.5 m
    'axial_rows_flipped': Case(
        direction=np.column_stack([X, -Y, -Z]), spacing=(2.0, 2.5, 3.5), shape=(6, 24, 32),
        origin=(-41.3, 17.9, -12.2), lesion_lo=(-18.3, -20.85, -27.95),
        lesion_hi=(-2.3, -5.85, -17.45), slice_z=-22.7),
    # coronal: rows run to patient Inferior (z = 25.6 - 2.5 j), slices Posterior
    # (y = -70.4 + 3 k); x edges -21.7 + 2 m, y edges -71.9 + 3 m, z edges 26.85 - 2.5 m
    'coronal': Case(
        direction=np.column_stack([X, -Z, Y]), spacing=(2.0, 2.5, 3.0), shape=(20, 24, 32),
        origin=(-20.7, -70.4, 25.6), lesion_lo=(-1.7, -53.9, -8.15),
        lesion_hi=(14.3, -32.9, 4.35), slice_z=-1.9),
}


def _box_contours(case: Case, slice_positions: np.ndarray, normal: np.ndarray) -> list:
    """The box's section with every native slice plane that cuts it (rectangles)."""
    axis = int(np.argmax(np.abs(normal)))
    b, c = (a for a in range(3) if a != axis)
    lo, hi = case.lesion_lo, case.lesion_hi
    contours = []
    for position in slice_positions:
        height = float(position[axis])
        if lo[axis] < height < hi[axis]:
            corners = np.zeros((4, 3))
            corners[:, axis] = height
            corners[:, b] = [lo[b], hi[b], hi[b], lo[b]]
            corners[:, c] = [lo[c], lo[c], hi[c], hi[c]]
            contours.append(corners)
    return contours


@dataclass
class Patient:
    case: Case
    root: object
    written: object  # WrittenSeries
    truth: object  # PreparedSequence with the ground-truth masks
    slice: object  # the PreparedSlice at case.slice_z
    detections: SliceDetections  # one GTV detection = the slice's ground-truth mask


@pytest.fixture(scope='module', params=list(CASES))
def patient(request, tmp_path_factory) -> Patient:
    case = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param) / PID
    rng = np.random.default_rng(5)
    written = write_mr_series(root / 'mr', rng.normal(300, 30, case.shape).clip(0),
                              spacing=case.spacing, origin=case.origin,
                              direction=case.direction, description='T1 +C', patient=HEADER,
                              rng=rng)
    contours = _box_contours(case, written.slice_positions, written.slice_normal)
    assert len(contours) >= 3, 'the lesion must span several native slices'
    write_rtstruct(root / 'RS.dcm', written, {'GTV': contours}, patient=HEADER, rng=rng)
    truth = prepare_patient(root, PID, OPTIONS, require_contours=True)['cet1']
    slc = min(truth.slices, key=lambda s: abs(s.z_mm - case.slice_z))
    assert slc.z_mm == pytest.approx(case.slice_z, abs=1e-6)
    assert slc.spacing_mm == pytest.approx((STEP_MM, STEP_MM))
    mask = slc.masks['GTV']
    rows, cols = np.nonzero(mask)
    box = np.array([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], float)
    dets = SliceDetections(box, np.array([0.9]), np.array([0]), mask[None])
    return Patient(case, root, written, truth, slc, dets)


def test_predict_reads_the_same_slices_as_the_ground_truth(patient):
    """Premise: predict (require_contours=False) gets the very grid the masks are on."""
    new = prepare_patient(patient.root, PID, OPTIONS, require_contours=False)['cet1']
    assert len(new.slices) == len(patient.truth.slices)
    for a, b in zip(new.slices, patient.truth.slices):
        assert (a.z_mm, a.origin_mm, a.spacing_mm) == (b.z_mm, b.origin_mm, b.spacing_mm)
        assert np.array_equal(a.image, b.image)
        assert a.masks == {}


def test_centroid_is_the_lesion_centre(patient):
    (record,) = describe_detections(patient.detections, patient.slice, CLASSES)
    assert record['class'] == 'GTV'
    x, y, z = record['centroid_lps_mm']
    half_px = 0.5 * STEP_MM
    assert abs(x - patient.case.centre_xy[0]) <= half_px, (x, patient.case.centre_xy)
    assert abs(y - patient.case.centre_xy[1]) <= half_px, (y, patient.case.centre_xy)
    assert z == pytest.approx(patient.case.slice_z, abs=1e-6)
    assert record['z_mm'] == pytest.approx(patient.case.slice_z, abs=1e-6)


def test_box_edges_are_the_lesion_faces(patient):
    """The box's mm edges are the outer edges of its extreme pixels: the lesion's faces."""
    (record,) = describe_detections(patient.detections, patient.slice, CLASSES)
    error = np.asarray(record['bbox_lps_mm']) - patient.case.extent_xy
    # exact up to the 0.01 mm rounding of the record; pixel centres would be 0.5 px off
    assert np.abs(error).max() <= 0.25 * STEP_MM, (record['bbox_lps_mm'], patient.case.extent_xy)


def test_mask_area_is_the_lesion_section(patient):
    (record,) = describe_detections(patient.detections, patient.slice, CLASSES)
    x1, y1, x2, y2 = patient.case.extent_xy
    # the section, less its four corners rounded off by the bilinear resampling
    assert record['mask_area_mm2'] == pytest.approx((x2 - x1) * (y2 - y1), rel=0.02)


def _polygon_centroid(points_xy: np.ndarray) -> tuple[float, np.ndarray]:
    """(area, centroid) of a simple polygon (shoelace formula)."""
    x, y = points_xy[:, 0], points_xy[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    return abs(area), np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6 * area)


def test_prediction_outputs_land_on_the_lesion(patient, tmp_path):
    """write_prediction (what tools/predict.py writes): prediction.json and the RTSTRUCT."""
    case, slc = patient.case, patient.slice
    pred = PatientPrediction(patient_id=PID, prepared=patient.truth,
                             series_files=tuple(patient.written.files),
                             detections={slc.index: patient.detections},
                             slices_looked_at=(slc.index,), slice_scores={slc.index: 0.7},
                             msom_score=0.7, risk_group='high')
    write_prediction(tmp_path / 'out', pred, CLASSES, 0.5, {})
    half_px = 0.5 * STEP_MM

    record = json.loads((tmp_path / 'out' / 'prediction.json').read_text())
    (detection,) = record['slices'][0]['detections']
    assert np.abs(np.asarray(detection['centroid_lps_mm'][:2]) - case.centre_xy).max() <= half_px
    assert np.abs(np.asarray(detection['bbox_lps_mm']) - case.extent_xy).max() <= 0.25 * STEP_MM

    rs = pydicom.dcmread(tmp_path / 'out' / 'detections_rtstruct.dcm')
    (roi,) = rs.ROIContourSequence
    # the contours lie on the native images (the detection resampled to each), on the one
    # each names; this detection is one 1 mm slice, at a native plane (axial) or row (coronal)
    written = patient.written
    for contour in roi.ContourSequence:
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)
        (image,) = contour.ContourImageSequence
        k = list(written.sop_instance_uids).index(image.ReferencedSOPInstanceUID)
        assert np.abs((points - written.slice_positions[k]) @ written.slice_normal).max() < 1e-5
    if abs(written.slice_normal[2]) < 0.5:  # coronal: one strip of one native row per plane
        row_mm = case.spacing[1]
        for contour in roi.ContourSequence:
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            assert np.abs(points[:, 0].min() - case.lesion_lo[0]) <= 0.25 * STEP_MM
            assert np.abs(points[:, 0].max() - case.lesion_hi[0]) <= 0.25 * STEP_MM
            assert np.allclose(np.sort([points[:, 2].min(), points[:, 2].max()]),
                               [case.slice_z - row_mm / 2, case.slice_z + row_mm / 2], atol=1e-5)
            assert case.lesion_lo[1] < points[0, 1] < case.lesion_hi[1]
        assert len(roi.ContourSequence) >= 3
        return
    (contour,) = roi.ContourSequence  # one component without holes: one outline
    points = np.asarray(contour.ContourData, float).reshape(-1, 3)
    assert np.allclose(points[:, 2], case.slice_z, atol=1e-5)
    area, centroid = _polygon_centroid(points[:, :2])
    assert np.abs(centroid - case.centre_xy).max() <= half_px, (centroid, case.centre_xy)
    # the outline runs along native pixel edges, and the lesion's faces lie on them
    extent = np.r_[points[:, :2].min(axis=0), points[:, :2].max(axis=0)]
    assert np.abs(extent - case.extent_xy).max() <= 0.25 * STEP_MM, (extent, case.extent_xy)
    x1, y1, x2, y2 = case.extent_xy
    assert area == pytest.approx((x2 - x1) * (y2 - y1), rel=1e-6)
    # the contour names the native slice it lies on, the one at the lesion centre's height
    centre = np.array([*case.centre_xy, case.slice_z])
    heights = written.slice_positions @ written.slice_normal
    nearest = int(np.argmin(np.abs(heights - centre @ written.slice_normal)))
    (image,) = contour.ContourImageSequence
    assert image.ReferencedSOPInstanceUID == written.sop_instance_uids[nearest]
