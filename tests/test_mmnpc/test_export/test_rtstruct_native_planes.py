"""write_native_plane_rtstruct: detections of the 1 mm axial slices exported on the input
series' own planes (3 and 5 mm apart, reversed, coronal, oblique), read back by the converter.

A hollow ellipsoid lesion (a necrotic core: holes on the middle slices), chosen in
LPS mm, is drawn on the converter's canonical slices of the series by the
pixel-centre rule: that is the "detection". Exported and read back with
data_prep.rtstruct + data_prep.rasterize.class_masks on the native Volume, it
must equal the detection resampled to the native grid by SimpleITK (linear,
>= 0.5: an implementation independent of the exporter's), and every contour
must lie in the plane of the image it references, read from that image's own
header.
"""
from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from data_prep.dicom_writer import PatientHeader, write_mr_series
from data_prep.mr_volume import load_mr_series
from data_prep.options import PrepOptions
from data_prep.rasterize import class_masks
from data_prep.resample import resample_to_slices, to_sitk
from data_prep.rtstruct import read_structure_set
from data_prep.types import SeriesInfo, Volume
from mmnpc.export import detection_volume, write_native_plane_rtstruct

PID = 'NATIVE_01'
HEADER = PatientHeader(name='PLANE^PETER', patient_id='MRN3131', birth_date='19610101')
AI_ALIASES = PrepOptions(roi_aliases={'GTV': ['AI_GTV'], 'GTVln': ['AI_GTVln']})
OUTPUT_SIZE = 160  # px per canonical slice (predict uses 512; smaller keeps the test fast)
X, Y, Z = np.eye(3)
CENTRE = np.array([3.3, -7.9, 21.4])  # LPS mm
OUTER = np.array([15.0, 11.0, 13.0])  # semi-axes, mm
CORE = np.array([6.5, 5.0, 5.5])  # the hole's semi-axes, mm
_ANGLE = np.deg2rad(20.0)
GEOMETRIES = {
    # name: (direction columns i, j, k), spacing (i, j, k) mm, shape (k, j, i), origin
    'axial_3mm': (np.eye(3), (1.5, 1.5, 3.0), (16, 36, 40), (-27.0, -35.0, -1.0)),
    'axial_5mm': (np.eye(3), (1.2, 1.4, 5.0), (10, 32, 40), (-20.4, -30.1, -0.7)),
    # columns to patient Right, slices head to foot (test_rtstruct_lps_truth's series)
    'flipped_3mm': (np.column_stack([-X, Y, -Z]), (2.5, 2.0, 3.0), (16, 28, 24),
                    (31.7, -36.3, 45.4)),
    # coronal: rows to patient Inferior, slices Posterior (test_detections_lps_truth's)
    'coronal_5mm': (np.column_stack([X, -Z, Y]), (1.5, 1.5, 5.0), (8, 34, 36),
                    (-24.0, -26.4, 46.0)),
    'oblique_3mm': (np.array([[1.0, 0.0, 0.0], [0.0, np.cos(_ANGLE), -np.sin(_ANGLE)],
                              [0.0, np.sin(_ANGLE), np.cos(_ANGLE)]]),
                    (1.5, 1.5, 3.0), (14, 36, 36), (-25.0, -30.0, -6.0)),
}


def _lesion(points: np.ndarray) -> np.ndarray:
    """True where N x 3 LPS points are inside the hollow ellipsoid."""
    outer = (((points - CENTRE) / OUTER) ** 2).sum(axis=1) <= 1
    core = (((points - CENTRE) / CORE) ** 2).sum(axis=1) <= 1
    return outer & ~core


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.fixture(scope='module', params=list(GEOMETRIES))
def exported(request, tmp_path_factory):
    direction, spacing, shape, origin = GEOMETRIES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    rng = np.random.default_rng(11)
    written = write_mr_series(root / 'mr', rng.normal(300, 30, shape).clip(0), spacing=spacing,
                              origin=origin, direction=direction, description='T1 +C',
                              patient=HEADER, rng=rng)
    info = SeriesInfo(patient_id=PID, modality='MR', series_uid=written.series_uid,
                      frame_of_reference_uid=written.frame_of_reference_uid, description='T1',
                      files=tuple(written.files),
                      sop_instance_uids=tuple(written.sop_instance_uids))
    mr = load_mr_series(info)
    slices = resample_to_slices(mr.volume, {}, PrepOptions(output_size=OUTPUT_SIZE))
    detections = {}
    v, u = np.mgrid[:OUTPUT_SIZE, :OUTPUT_SIZE]
    for s in slices:  # pixel (u, v) centred at origin + (u, v) * spacing, z = z_mm
        xyz = np.column_stack([s.origin_mm[0] + u.ravel() * s.spacing_mm[0],
                               s.origin_mm[1] + v.ravel() * s.spacing_mm[1],
                               np.full(u.size, s.z_mm)])
        mask = _lesion(xyz).reshape(u.shape)
        if mask.any():
            detections[s.index] = mask
    volume = detection_volume(slices, detections)
    start = time.perf_counter()
    out = write_native_plane_rtstruct(root / 'rs.dcm', written.files, {'GTV': volume},
                                      patient_id=PID, rng=np.random.default_rng(0))
    seconds = time.perf_counter() - start
    return request.param, written, mr, volume, out, seconds


def _native_reference(volume: Volume, grid: Volume) -> np.ndarray:
    """The 1 mm detection resampled to the native grid by SimpleITK (linear, >= 0.5)."""
    moving = to_sitk(volume.array.astype(np.float32), volume)
    fixed = to_sitk(np.zeros(grid.array.shape, np.float32), grid)
    out = sitk.Resample(moving, fixed, sitk.Transform(3, sitk.sitkIdentity), sitk.sitkLinear,
                        0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out) >= 0.5


def test_read_back_equals_the_detection_on_the_native_grid(exported):
    name, _, mr, volume, out, seconds = exported
    structure = read_structure_set(out, PID, AI_ALIASES)
    warnings: list[str] = []
    back = class_masks(structure, mr.volume, context=PID, warnings_out=warnings)['GTV']
    expected = _native_reference(volume, mr.volume)
    dice = _dice(back, expected)
    centres = mr.volume.index_to_lps(np.argwhere(np.ones(back.shape, bool))[:, ::-1])
    truth = _lesion(centres).reshape(back.shape)
    print(f'{name}: Dice vs SimpleITK-resampled detection {dice:.4f} ({int(back.sum())} voxels, '
          f'{int((back != expected).sum())} differ), vs analytic lesion '
          f'{_dice(back, truth):.4f}; export {seconds:.2f} s')
    assert dice >= 0.995, name  # the issue asks >= 0.95; the method is exact up to float ties
    assert _dice(back, truth) >= 0.95, name
    assert warnings == [], warnings  # no contour off its plane, none merged


def test_every_contour_lies_on_the_image_it_references(exported):
    name, written, _, _, out, _ = exported
    headers = {ds.SOPInstanceUID: ds for ds in
               (pydicom.dcmread(f, stop_before_pixels=True) for f in written.files)}
    ds = pydicom.dcmread(out)
    (roi,) = ds.ROIContourSequence
    worst, on_images = 0.0, set()
    for contour in roi.ContourSequence:
        (image,) = contour.ContourImageSequence
        header = headers[image.ReferencedSOPInstanceUID]
        assert image.ReferencedSOPClassUID == header.SOPClassUID
        iop = np.asarray(header.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)
        rel = points - np.asarray(header.ImagePositionPatient, float)
        worst = max(worst, float(np.abs(rel @ normal).max()))
        # vertices on the image's own pixel edges: (i, j) = half-integers (PixelSpacing is
        # [between rows, between columns])
        row_mm, col_mm = (float(v) for v in header.PixelSpacing)
        ij = np.column_stack([rel @ iop[:3] / col_mm, rel @ iop[3:] / row_mm])
        assert np.abs((ij - 0.5) - np.round(ij - 0.5)).max() < 1e-4, name
        on_images.add(image.ReferencedSOPInstanceUID)
    print(f'{name}: {len(roi.ContourSequence)} contours on {len(on_images)} images, largest '
          f'distance to the referenced plane {worst:.2e} mm')
    assert worst < 1e-5
    assert len(on_images) >= 3  # the lesion spans several native images


def test_holes_come_out_as_nested_contours(exported):
    _, _, mr, _, out, _ = exported
    structure = read_structure_set(out, PID, AI_ALIASES)
    (contours,) = structure.rois['GTV'].values()
    # the core (>= 10 mm across) cuts a hole in some native slices: more contours than images
    ds = pydicom.dcmread(out)
    images = [c.ContourImageSequence[0].ReferencedSOPInstanceUID
              for c in ds.ROIContourSequence[0].ContourSequence]
    assert len(contours) > len(set(images))


def test_no_detection_gives_an_roi_without_contours(tmp_path, exported):
    _, written, _, _, _, _ = exported
    out = write_native_plane_rtstruct(tmp_path / 'empty.dcm', written.files,
                                      {'GTV': None}, patient_id=PID)
    ds = pydicom.dcmread(out)
    assert [r.ROIName for r in ds.StructureSetROISequence] == ['AI_GTV']
    assert 'ContourSequence' not in ds.ROIContourSequence[0]
    raw = out.read_bytes()
    for planted in (b'PLANE^PETER', b'MRN3131', b'19610101'):
        assert planted not in raw
