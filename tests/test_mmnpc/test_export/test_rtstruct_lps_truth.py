"""The exported RTSTRUCT puts a detection where the lesion is, in patient millimetres.

The input series has non-trivial geometry (ImagePositionPatient far from 0,
2.5 x 2.0 mm pixels, columns running to patient Right, slices stored head to
foot). On the canonical 512 px slices predict gets for it, the detection mask
is drawn from a lesion chosen here in LPS mm -- a rectangle with a rectangular
hole, faces off the pixel grid -- by the pixel-centre rule and the
pixel -> LPS formula of docs/data.md. Read back with pydicom, the contours must trace the
lesion's faces within half an output pixel (the mask itself is only that
exact), the outer contour's centroid must be the lesion's centre, every point
must lie at the slice's z, and the contours must name the native slice nearest
to them.
"""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from data_prep.dicom_writer import PatientHeader, write_mr_series
from data_prep.options import PrepOptions
from data_prep.patient import prepare_patient
from mmnpc.export import masks_to_contours_mm, write_detections_rtstruct

PID = 'LPS_002'
HEADER = PatientHeader(name='TRUTH^CONTOUR', patient_id='MRN515151')
X, Y, Z = np.eye(3)
OUTER = (-7.31, -33.04, 9.87, -20.66)  # x_min, y_min, x_max, y_max of the lesion, LPS mm
HOLE = (-2.13, -29.47, 3.36, -25.02)  # the (necrotic) hole inside it
SLICE_Z = 32.4  # an output slice 1 mm above the native plane at 31.4 mm


def _inside(x: np.ndarray, y: np.ndarray, box: tuple) -> np.ndarray:
    return (box[0] < x) & (x < box[2]) & (box[1] < y) & (y < box[3])


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp('export') / PID
    rng = np.random.default_rng(8)
    # x = 31.7 - 2.5 i, y = -52.3 + 2 j, z = 40.4 - 3 k: native planes 22.4 .. 40.4 mm
    written = write_mr_series(root / 'mr', rng.normal(300, 30, (7, 32, 24)).clip(0),
                              spacing=(2.5, 2.0, 3.0), origin=(31.7, -52.3, 40.4),
                              direction=np.column_stack([-X, Y, -Z]), description='T1 +C',
                              patient=HEADER, rng=rng)
    slices = prepare_patient(root, PID, PrepOptions(sequences=('cet1',)),
                             require_contours=False)['cet1'].slices
    slc = min(slices, key=lambda s: abs(s.z_mm - SLICE_Z))
    assert slc.z_mm == pytest.approx(SLICE_Z, abs=1e-6)
    # pixel (u, v) of the slice is centred at origin + (u, v) * spacing (docs/data.md)
    v, u = np.mgrid[:slc.image.shape[0], :slc.image.shape[1]]
    x = slc.origin_mm[0] + u * slc.spacing_mm[0]
    y = slc.origin_mm[1] + v * slc.spacing_mm[1]
    mask = _inside(x, y, OUTER) & ~_inside(x, y, HOLE)
    contours = masks_to_contours_mm(mask, slc.origin_mm, slc.spacing_mm, slc.z_mm)
    out = write_detections_rtstruct(root.parent / 'out' / 'rs.dcm', written.files,
                                    {'GTV': contours}, patient_id=PID,
                                    rng=np.random.default_rng(0))
    ds = pydicom.dcmread(out)
    (roi,) = ds.ROIContourSequence
    return written, slc, mask, list(roi.ContourSequence)


def _points(contour) -> np.ndarray:
    return np.asarray(contour.ContourData, float).reshape(-1, 3)


def _extent(points: np.ndarray) -> np.ndarray:
    return np.r_[points[:, :2].min(axis=0), points[:, :2].max(axis=0)]


def test_contours_trace_the_lesion_and_its_hole(exported):
    _, slc, _, contours = exported
    assert len(contours) == 2  # the outline, then the hole's outline
    half_px = 0.5 * max(slc.spacing_mm)
    outer, hole = (_points(c) for c in contours)
    assert np.abs(_extent(outer) - OUTER).max() <= half_px, (_extent(outer), OUTER)
    assert np.abs(_extent(hole) - HOLE).max() <= half_px, (_extent(hole), HOLE)


def test_outline_centroid_is_the_lesion_centre_at_the_slice_z(exported):
    _, slc, mask, contours = exported
    points = _points(contours[0])
    x, y = points[:, 0], points[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    centroid = np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6 * area)
    centre = np.array([OUTER[0] + OUTER[2], OUTER[1] + OUTER[3]]) / 2
    assert np.abs(centroid - centre).max() <= 0.5 * max(slc.spacing_mm), (centroid, centre)
    for contour in contours:
        assert np.allclose(_points(contour)[:, 2], SLICE_Z, atol=1e-5)
    # outline minus hole = the mask's area (the hole is cut out by the even-odd rule)
    hole = _points(contours[1])
    hole_area = abs((hole[:, 0] * np.roll(hole[:, 1], -1)
                     - np.roll(hole[:, 0], -1) * hole[:, 1]).sum()) / 2
    pixel_mm2 = slc.spacing_mm[0] * slc.spacing_mm[1]
    assert abs(area) - hole_area == pytest.approx(mask.sum() * pixel_mm2, rel=1e-6)


def test_contours_name_the_nearest_native_slice(exported):
    written, _, _, contours = exported
    heights = written.slice_positions @ written.slice_normal
    centre = np.array([(OUTER[0] + OUTER[2]) / 2, (OUTER[1] + OUTER[3]) / 2, SLICE_Z])
    nearest = int(np.argmin(np.abs(heights - centre @ written.slice_normal)))
    assert written.slice_positions[nearest][2] == pytest.approx(31.4)
    for contour in contours:
        (image,) = contour.ContourImageSequence
        assert image.ReferencedSOPInstanceUID == written.sop_instance_uids[nearest]
