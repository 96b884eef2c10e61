"""Native-plane exports of an enhanced (multi-frame) MR series, and the DICOM SEG export.

One synthetic patient is written twice: as a classic series (one file per slice)
and as one Enhanced MR file holding the same slices as frames in a shuffled
order (``data_prep.testing.enhanced_mr``). A primary (hollow ellipsoid, GTV)
and a node (ellipsoid, GTVln), chosen in LPS mm, are drawn on the converter's
canonical 1 mm slices: the "detections". Then:

* the RTSTRUCT of the enhanced series has exactly the classic one's contour
  points, each referencing the enhanced file and the frame (1-based) holding the
  image the classic contour references, and reads back (data_prep.rtstruct +
  rasterize) to the classic masks;
* the SEG (classic and enhanced) reads back with ``data_prep.mask_sources.seg_masks``
  to the RTSTRUCT round-trip masks, its frames reference their source images,
  and it holds none of the identifiers planted in the input.
"""
from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest

from data_prep.dicom_writer import PatientHeader, write_mr_series
from data_prep.mask_sources import seg_masks
from data_prep.mr_volume import load_mr_series
from data_prep.multiframe import frame_headers
from data_prep.options import PrepOptions
from data_prep.rasterize import class_masks
from data_prep.resample import resample_to_slices
from data_prep.rtstruct import read_structure_set
from data_prep.testing.enhanced_mr import ENHANCED_MR, write_enhanced_mr
from data_prep.types import DataPrepError, SeriesInfo
from mmnpc.export import detection_volume, write_native_plane_rtstruct, write_native_plane_seg

PID = 'ENH_01'
HEADER = PatientHeader(name='FRAME^FRIEDA', patient_id='MRN4242', birth_date='19580303',
                       accession='ACC4242', institution='Multiframe Hospital',
                       study_date='20210404')
PLANTED = ('FRAME^FRIEDA', 'MRN4242', '19580303', 'ACC4242', 'Multiframe Hospital', '20210404')
AI_ALIASES = {'GTV': ['AI_GTV'], 'GTVln': ['AI_GTVln']}
OUTPUT_SIZE = 160  # px per canonical slice (predict uses 512; smaller keeps the test fast)
X, Y, Z = np.eye(3)
LESIONS = {  # class: (centre LPS mm, semi-axes mm, core semi-axes mm or None)
    'GTV': (np.array([3.3, -7.9, 21.4]), np.array([13.0, 10.0, 11.0]),
            np.array([5.5, 4.5, 5.0])),
    'GTVln': (np.array([-14.0, 12.5, 14.0]), np.array([5.0, 4.5, 7.0]), None),
}
GEOMETRIES = {
    # name: (direction columns i, j, k), spacing (i, j, k) mm, shape (k, j, i), origin
    # 3 mm: columns to patient Right, slices head to foot
    'flipped_3mm': (np.column_stack([-X, Y, -Z]), (1.5, 1.5, 3.0), (14, 36, 36),
                    (27.0, -27.0, 40.0)),
    'axial_5mm': (np.eye(3), (1.2, 1.4, 5.0), (9, 32, 40), (-24.4, -26.1, -1.7)),
}


def _inside(cls: str, points: np.ndarray) -> np.ndarray:
    """True where N x 3 LPS points are inside the lesion of ``cls``."""
    centre, semi, core = LESIONS[cls]
    inside = (((points - centre) / semi) ** 2).sum(axis=1) <= 1
    if core is not None:
        inside &= (((points - centre) / core) ** 2).sum(axis=1) > 1
    return inside


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def _info(files, series_uid, for_uid, uids) -> SeriesInfo:
    return SeriesInfo(patient_id=PID, modality='MR', series_uid=series_uid,
                      frame_of_reference_uid=for_uid, description='T1', files=tuple(files),
                      sop_instance_uids=tuple(uids))


@pytest.fixture(scope='module', params=list(GEOMETRIES))
def case(request, tmp_path_factory):
    direction, spacing, shape, origin = GEOMETRIES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    rng = np.random.default_rng(23)
    classic = write_mr_series(root / 'classic', rng.normal(300, 30, shape).clip(0),
                              spacing=spacing, origin=origin, direction=direction,
                              description='T1 +C', patient=HEADER, rng=rng)
    shuffled = [classic.files[k] for k in rng.permutation(len(classic.files))]
    enhanced = write_enhanced_mr(root / 'enhanced' / 'mr.dcm', shuffled, rng=rng)
    mr = {'classic': load_mr_series(_info(classic.files, classic.series_uid,
                                          classic.frame_of_reference_uid,
                                          classic.sop_instance_uids)),
          'enhanced': load_mr_series(_info([enhanced.path], enhanced.series_uid,
                                           classic.frame_of_reference_uid,
                                           [enhanced.sop_instance_uid]))}
    np.testing.assert_array_equal(mr['classic'].volume.array, mr['enhanced'].volume.array)
    slices = resample_to_slices(mr['classic'].volume, {}, PrepOptions(output_size=OUTPUT_SIZE))
    v, u = np.mgrid[:OUTPUT_SIZE, :OUTPUT_SIZE]
    volumes = {}
    for cls in LESIONS:
        masks = {}
        for s in slices:  # pixel (u, v) centred at origin + (u, v) * spacing, z = z_mm
            xyz = np.column_stack([s.origin_mm[0] + u.ravel() * s.spacing_mm[0],
                                   s.origin_mm[1] + v.ravel() * s.spacing_mm[1],
                                   np.full(u.size, s.z_mm)])
            mask = _inside(cls, xyz).reshape(u.shape)
            if mask.any():
                masks[s.index] = mask
        volumes[cls] = detection_volume(slices, masks)
    inputs = {'classic': list(classic.files), 'enhanced': [enhanced.path]}
    out, seconds = {}, {}
    for kind, series in inputs.items():
        for fmt, write in (('rtstruct', write_native_plane_rtstruct),
                           ('seg', write_native_plane_seg)):
            start = time.perf_counter()
            out[kind, fmt] = write(root / f'{kind}_{fmt}.dcm', series, volumes, patient_id=PID,
                                   rng=np.random.default_rng(0))
            seconds[kind, fmt] = time.perf_counter() - start
    return dict(name=request.param, classic=classic, enhanced=enhanced, mr=mr, out=out,
                seconds=seconds, volumes=volumes)


def _contours(path):
    """[(ROI name, [(ContourData as written, its image reference), ...]), ...]."""
    ds = pydicom.dcmread(path)
    names = {roi.ROINumber: roi.ROIName for roi in ds.StructureSetROISequence}
    return [(names[item.ReferencedROINumber],
             [(list(c.ContourData), c.ContourImageSequence[0]) for c in item.ContourSequence])
            for item in ds.ROIContourSequence]


def _rtstruct_masks(case, kind):
    structure = read_structure_set(case['out'][kind, 'rtstruct'], PID, PrepOptions(
        roi_aliases=AI_ALIASES))
    warnings: list[str] = []
    masks = class_masks(structure, case['mr'][kind].volume, context=PID, warnings_out=warnings)
    assert warnings == [], warnings
    return masks


def test_enhanced_rtstruct_has_the_classic_contours_on_the_right_frames(case):
    classic, enhanced = case['classic'], case['enhanced']
    frame_of = {uid: enhanced.sources.index(path) + 1
                for uid, path in zip(classic.sop_instance_uids, classic.files)}
    got = _contours(case['out']['enhanced', 'rtstruct'])
    expected = _contours(case['out']['classic', 'rtstruct'])
    assert [name for name, _ in got] == [name for name, _ in expected] == ['AI_GTV', 'AI_GTVln']
    n_contours, frames = 0, set()
    for (_, contours), (_, classic_contours) in zip(got, expected):
        assert len(contours) == len(classic_contours)
        for (points, image), (classic_points, classic_image) in zip(contours, classic_contours):
            assert points == classic_points  # the same decimal strings: exact
            assert image.ReferencedSOPClassUID == ENHANCED_MR
            assert image.ReferencedSOPInstanceUID == enhanced.sop_instance_uid
            frame = frame_of[classic_image.ReferencedSOPInstanceUID]
            assert int(image.ReferencedFrameNumber) == frame
            assert 'ReferencedFrameNumber' not in classic_image
            frames.add(frame)
            n_contours += 1
    ds = pydicom.dcmread(case['out']['enhanced', 'rtstruct'])
    (listed,) = (ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
                 .RTReferencedSeriesSequence[0].ContourImageSequence)
    assert listed.ReferencedSOPInstanceUID == enhanced.sop_instance_uid  # the file, all frames
    assert 'ReferencedFrameNumber' not in listed
    assert len(frames) >= 3 and frames != set(range(1, len(frames) + 1))  # shuffled frames
    print(f"{case['name']}: {n_contours} contours on frames {sorted(frames)}, identical to "
          f"the classic export; export {case['seconds']['enhanced', 'rtstruct']:.2f} s "
          f"(classic {case['seconds']['classic', 'rtstruct']:.2f} s)")


def test_enhanced_rtstruct_reads_back_to_the_classic_masks(case):
    classic, enhanced = _rtstruct_masks(case, 'classic'), _rtstruct_masks(case, 'enhanced')
    for cls in LESIONS:
        assert classic[cls].sum() > 20, cls
        np.testing.assert_array_equal(enhanced[cls], classic[cls])
    print(f"{case['name']}: {int(classic['GTV'].sum())} GTV and {int(classic['GTVln'].sum())} "
          'GTVln voxels, enhanced == classic')


@pytest.mark.parametrize('kind', ['classic', 'enhanced'])
def test_seg_reads_back_to_the_rtstruct_masks(case, kind):
    rt = _rtstruct_masks(case, kind)
    warnings: list[str] = []
    seg = seg_masks(case['out'][kind, 'seg'], case['mr'][kind].volume, AI_ALIASES,
                    patient_id=PID,
                    frame_of_reference_uid=case['classic'].frame_of_reference_uid,
                    warnings_out=warnings)
    assert warnings == [], warnings
    assert set(seg) == set(LESIONS)
    dice = {cls: _dice(seg[cls], rt[cls]) for cls in LESIONS}
    print(f"{case['name']} {kind}: SEG vs RTSTRUCT round trip Dice {dice}, "
          f"{sum(int((seg[c] != rt[c]).sum()) for c in LESIONS)} voxels differ; SEG export "
          f"{case['seconds'][kind, 'seg']:.2f} s")
    for cls in LESIONS:
        assert rt[cls].any() and dice[cls] >= 0.99, cls


def test_seg_frames_reference_their_source_images(case):
    classic, enhanced = case['classic'], case['enhanced']
    positions = {ds.SOPInstanceUID: np.asarray(ds.ImagePositionPatient, float) for ds in
                 (pydicom.dcmread(f, stop_before_pixels=True) for f in classic.files)}
    enhanced_ds = pydicom.dcmread(enhanced.path, stop_before_pixels=True)
    frame_positions = [np.asarray(h.ImagePositionPatient, float)
                       for h in frame_headers(enhanced_ds, enhanced.path, PID, [])]
    for kind in ('classic', 'enhanced'):
        ds = pydicom.dcmread(case['out'][kind, 'seg'])
        assert ds.SegmentationType == 'BINARY' and ds.Modality == 'SEG'
        assert ds.FrameOfReferenceUID == classic.frame_of_reference_uid
        series_uid = classic.series_uid if kind == 'classic' else enhanced.series_uid
        assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
        assert [s.SegmentLabel for s in ds.SegmentSequence] == ['AI_GTV', 'AI_GTVln']
        for segment in ds.SegmentSequence:
            category = segment.SegmentedPropertyCategoryCodeSequence[0]
            kind_code = segment.SegmentedPropertyTypeCodeSequence[0]
            assert (category.CodingSchemeDesignator, category.CodeValue) == ('SCT', '49755003')
            assert (kind_code.CodingSchemeDesignator, kind_code.CodeValue) == ('SCT', '108369006')
            assert segment.SegmentAlgorithmType == 'AUTOMATIC'
        for frame in ds.PerFrameFunctionalGroupsSequence:
            (source,) = frame.DerivationImageSequence[0].SourceImageSequence
            position = np.asarray(frame.PlanePositionSequence[0].ImagePositionPatient, float)
            if kind == 'classic':
                assert 'ReferencedFrameNumber' not in source
                expected = positions[source.ReferencedSOPInstanceUID]
            else:
                assert source.ReferencedSOPInstanceUID == enhanced.sop_instance_uid
                assert source.ReferencedSOPClassUID == ENHANCED_MR
                expected = frame_positions[int(source.ReferencedFrameNumber) - 1]
            np.testing.assert_allclose(position, expected, atol=1e-4)


def test_seg_holds_no_identifiers_and_says_what_it_is(case):
    for kind in ('classic', 'enhanced'):
        path = case['out'][kind, 'seg']
        raw = path.read_bytes()
        for planted in PLANTED:
            assert planted.encode() not in raw, (kind, planted)
        ds = pydicom.dcmread(path)
        assert ds.PatientID == PID and str(ds.PatientName) == PID
        assert ds.Manufacturer == 'mmnpc' and 'NOT FOR CLINICAL USE' in ds.SeriesDescription
        for keyword in ('PatientBirthDate', 'PatientSex', 'StudyDate', 'AccessionNumber'):
            assert ds.get(keyword, '') == '', keyword


def test_seg_of_several_files_with_a_multiframe_one_is_refused(case, tmp_path):
    classic, enhanced = case['classic'], case['enhanced']
    other = write_enhanced_mr(tmp_path / 'half.dcm', enhanced.sources[:3],
                              series_uid=enhanced.series_uid, rng=np.random.default_rng(1))
    rest = write_enhanced_mr(tmp_path / 'rest.dcm', enhanced.sources[3:],
                             series_uid=enhanced.series_uid, rng=np.random.default_rng(2))
    with pytest.raises(DataPrepError, match=f'patient {PID}: .*one enhanced MR file'):
        write_native_plane_seg(tmp_path / 'seg.dcm', [other.path, rest.path],
                               case['volumes'], patient_id=PID)
    # the RTSTRUCT handles it: every frame of either file is an image plane
    out = write_native_plane_rtstruct(tmp_path / 'rs.dcm', [other.path, rest.path],
                                      case['volumes'], patient_id=PID)
    refs = {(c[1].ReferencedSOPInstanceUID, int(c[1].ReferencedFrameNumber))
            for _, contours in _contours(out) for c in contours}
    assert {uid for uid, _ in refs} <= {other.sop_instance_uid, rest.sop_instance_uid}
    assert len(classic.files) >= len(refs) >= 3


def test_seg_class_without_detection_is_an_empty_segment(case, tmp_path):
    volumes = {'GTV': case['volumes']['GTV'], 'GTVln': None}
    out = write_native_plane_seg(tmp_path / 'seg.dcm', case['classic'].files, volumes,
                                 patient_id=PID)
    warnings: list[str] = []
    masks = seg_masks(out, case['mr']['classic'].volume, AI_ALIASES, patient_id=PID,
                      warnings_out=warnings)
    assert masks['GTV'].any() and not masks['GTVln'].any()
    assert len(warnings) == 1 and "segment 'AI_GTVln' is empty" in warnings[0], warnings
    with pytest.raises(ValueError, match='SEG classes'):
        write_native_plane_seg(tmp_path / 'bad.dcm', case['classic'].files,
                               {'Brainstem': None}, patient_id=PID)
