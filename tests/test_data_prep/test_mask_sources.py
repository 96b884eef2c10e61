"""Label maps (NIfTI, NRRD) and DICOM SEG -> the same class masks as an RTSTRUCT gives."""
from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest

from data_prep.coco_writer import slice_annotations
from data_prep.dicom_writer import PatientHeader, write_mr_series, write_rtstruct
from data_prep.discover import scan_patient
from data_prep.mask_sources import (
    is_seg,
    label_map_masks,
    read_label_map,
    seg_masks,
    seg_references,
    segment_classes,
)
from data_prep.mr_volume import load_mr_series
from data_prep.options import PrepOptions
from data_prep.rasterize import class_masks
from data_prep.resample import resample_to_slices
from data_prep.rtstruct import read_structure_set
from data_prep.testing.label_maps import (
    box_grid,
    ellipsoid_contours,
    ellipsoid_labels,
    reoriented,
    write_label_map,
)
from data_prep.types import DataPrepError, Volume

PID = 'NPC_042'
X, Y, Z = np.eye(3)
# an MR series stored like many axial scans: rows run anterior, slices run inferior
MR_DIRECTION = np.column_stack([X, -Y, -Z])
MR_SPACING, MR_SHAPE, MR_ORIGIN = (1.3, 1.1, 3.0), (12, 60, 64), (-40.0, 30.0, 16.0)
GTV = ((2.3, -2.4, 0.6), (11.0, 8.0, 10.0))  # LPS centre mm, semi-axes mm (x, y, z)
NODE = ((24.4, 6.1, -2.0), (4.5, 5.0, 6.0))
LAYOUTS = {  # how a label map on the MR's own voxels may be stored
    'as_mr': {},
    'rows_flipped': {'flip': (1,)},  # dcm2niix-like
    'permuted_flipped': {'flip': (0, 2), 'order': (1, 2, 0)},
}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope='module')
def case(tmp_path_factory):
    """MR series + RTSTRUCT (GTVnx, GTVnd_L, Brainstem) written as DICOM, loaded back."""
    root = tmp_path_factory.mktemp('cohort') / PID
    rng = np.random.default_rng(7)
    written = write_mr_series(root / 'mr', rng.normal(300, 30, MR_SHAPE).clip(0),
                              spacing=MR_SPACING, origin=MR_ORIGIN, direction=MR_DIRECTION,
                              description='T1 +C', patient=PatientHeader(), rng=rng)
    mr_series = next(s for s in scan_patient(root, PID) if s.modality == 'MR')
    mr = load_mr_series(mr_series)
    rois = {'GTVnx': ellipsoid_contours(mr.volume, *GTV), 'GTVnd_L': ellipsoid_contours(
        mr.volume, *NODE), 'Brainstem': ellipsoid_contours(mr.volume, *NODE)}
    write_rtstruct(root / 'RS.dcm', written, rois, patient=PatientHeader(), rng=rng)
    structure = read_structure_set(root / 'RS.dcm', PID, PrepOptions())
    return {'root': root, 'mr': mr, 'series': mr_series, 'written': written,
            'rtstruct_masks': class_masks(structure, mr.volume),
            'truth': ellipsoid_labels(mr.volume, [(*GTV, 1), (*NODE, 2)])}


def _write(case, name, labels, grid, layout=None):
    array, stored = reoriented(grid, labels, **(layout or {}))
    path = case['root'] / 'masks' / name
    write_label_map(path, array, stored)
    return path


# ---------------------------------------------------------------- label maps


@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('suffix', ['.nii', '.nii.gz', '.nrrd', '.nhdr'])
def test_label_map_on_the_mr_voxels_gives_the_rtstruct_masks(case, suffix, layout):
    """Exactly the drawn voxels, whatever the storage order; Dice >= 0.98 with the RTSTRUCT
    (not 1: its 128-gon cross-sections cut a few boundary voxel centres the ellipsoid holds)."""
    mr = case['mr'].volume
    path = _write(case, f'cet1_{layout}{suffix}', case['truth'], mr, LAYOUTS[layout])
    warnings = []
    masks = label_map_masks(path, mr, patient_id=PID, warnings_out=warnings)
    assert warnings == [] and set(masks) == {'GTV', 'GTVln'}
    for cls, value in (('GTV', 1), ('GTVln', 2)):
        np.testing.assert_array_equal(masks[cls], case['truth'] == value)
        assert _dice(masks[cls], case['rtstruct_masks'][cls]) >= 0.98


def test_nifti_ras_affine_is_read_as_lps(case):
    """A hand-written RAS sform: SimpleITK must give back the LPS geometry it encodes."""
    mr = case['mr'].volume
    array, stored = reoriented(mr, case['truth'], flip=(0, 1), order=(2, 0, 1))
    path = case['root'] / 'masks' / 'geometry.nii.gz'
    write_label_map(path, array, stored)
    read = read_label_map(path, PID)
    np.testing.assert_allclose(read.direction, stored.direction, atol=1e-6)
    np.testing.assert_allclose(read.origin, stored.origin, atol=1e-4)
    np.testing.assert_allclose(read.spacing, stored.spacing, atol=1e-5)
    np.testing.assert_array_equal(read.array, array)


def _boxes(slices):
    return [(s.index, a['category_id'], a['bbox'])
            for s in slices for a in slice_annotations(s.masks, s.image.shape)]


def test_label_map_of_the_rtstruct_masks_gives_the_same_coco_boxes(case):
    mr, rt = case['mr'].volume, case['rtstruct_masks']
    labels = (rt['GTV'] + 2 * rt['GTVln']).astype(np.int16)
    path = _write(case, 'from_rtstruct.nrrd', labels, mr, LAYOUTS['permuted_flipped'])
    masks = label_map_masks(path, mr, {'GTV': 1, 'GTVln': [2]}, patient_id=PID)
    options = PrepOptions(output_size=128)
    expected = _boxes(resample_to_slices(mr, rt, options))
    assert len(expected) > 10
    assert _boxes(resample_to_slices(mr, masks, options)) == expected


# a coarser grid, stored flipped and permuted, covering only the part of the MR around the
# lesions; spheres, so that the distance of a voxel centre to the surface is exact
SPHERES = [((2.3, -2.4, 0.6), 9.0, 1), ((24.4, 6.1, -2.0), 5.0, 2)]


def _sphere_labels(grid):
    return ellipsoid_labels(grid, [(c, (r, r, r), v) for c, r, v in SPHERES])


def _check_within_half_voxel(masks, mr, spacing):
    """Every MR voxel centre labelled differently from the true sphere lies within half a
    label-voxel diagonal of the sphere's surface."""
    half_diagonal = 0.5 * float(np.linalg.norm(spacing)) + 1e-6
    nk, nj, ni = mr.array.shape
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing='ij')
    lps = mr.index_to_lps(np.column_stack([ii.ravel(), jj.ravel(), kk.ravel()]))
    for (centre, radius, _), cls in zip(SPHERES, ('GTV', 'GTVln')):
        distance = np.linalg.norm(lps - centre, axis=1) - radius
        wrong = masks[cls].ravel() != (distance <= 0)
        assert masks[cls].sum() > 20
        assert np.abs(distance[wrong]).max(initial=0) <= half_diagonal, cls


@pytest.mark.parametrize('suffix', ['.nii.gz', '.nrrd'])
def test_label_map_on_a_coarser_flipped_partial_grid_lands_within_half_a_voxel(case, suffix):
    mr = case['mr'].volume
    grid = box_grid((-12.0, -16.0, -14.0), (34.0, 14.0, 14.0), 2.5)
    path = _write(case, f'coarse{suffix}', _sphere_labels(grid), grid,
                  {'flip': (1, 2), 'order': (2, 0, 1)})
    warnings = []
    masks = label_map_masks(path, mr, patient_id=PID, warnings_out=warnings)
    assert warnings == []
    _check_within_half_voxel(masks, mr, grid.spacing)


# ---------------------------------------------------------------- label map errors


def test_label_values_none_mapped_raise_and_unmapped_ones_warn(case):
    mr = case['mr'].volume
    path = _write(case, 'values.nii.gz', case['truth'] * 3, mr)  # values 3 and 6
    with pytest.raises(DataPrepError, match=rf'patient {PID}, label map masks/values.nii.gz: '
                                            r'none of the mapped label values .*found: \[3, 6\]'):
        label_map_masks(path, mr, patient_id=PID)
    warnings = []
    masks = label_map_masks(path, mr, {'GTV': 3}, patient_id=PID, warnings_out=warnings)
    assert masks['GTV'].sum() == (case['truth'] == 1).sum() and set(masks) == {'GTV'}
    assert len(warnings) == 1 and 'label values [6] are not in the mapping' in warnings[0]
    with pytest.raises(DataPrepError, match='given to both'):
        label_map_masks(path, mr, {'GTV': 3, 'GTVln': [6, 3]}, patient_id=PID)


def test_non_integer_labels_raise(case):
    mr = case['mr'].volume
    path = _write(case, 'soft.nrrd', case['truth'].astype(np.float32) * 0.5, mr)
    with pytest.raises(DataPrepError, match=r'masks/soft.nrrd: non-integer label values'):
        label_map_masks(path, mr, patient_id=PID)
    whole = _write(case, 'whole.nrrd', case['truth'].astype(np.float32), mr)
    assert label_map_masks(whole, mr, patient_id=PID)['GTV'].sum() == (case['truth'] == 1).sum()


def test_label_map_far_from_the_mr_raises_with_the_distance(case):
    mr = case['mr'].volume
    shifted = Volume(array=mr.array, spacing=mr.spacing, direction=mr.direction,
                     origin=tuple(np.asarray(mr.origin) + (0.0, 0.0, 300.0)))
    path = _write(case, 'elsewhere.nii', case['truth'], shifted)
    with pytest.raises(DataPrepError, match=r'elsewhere.nii: does not overlap the MR image: its '
                                            r'nearest labelled voxel lies 2\d\d\.\d mm outside.*'
                                            r'300\.0 mm apart; it has the MR\'s size'):
        label_map_masks(path, mr, patient_id=PID)


def test_label_map_partly_outside_the_mr_warns(case):
    mr = case['mr'].volume
    shifted = Volume(array=mr.array, spacing=mr.spacing, direction=mr.direction,
                     origin=tuple(np.asarray(mr.origin) + (0.0, 0.0, 9.0)))  # 3 slices
    path = _write(case, 'partial.nii', case['truth'], shifted)
    warnings = []
    masks = label_map_masks(path, mr, patient_id=PID, warnings_out=warnings)
    assert masks['GTV'].any()
    assert any('voxels of GTV lie outside the MR image' in w for w in warnings)


@pytest.mark.parametrize('content', [b'', b'not an image at all' * 10, 'truncated.nii',
                                     'truncated.nii.gz', 'truncated.nrrd'])
def test_corrupt_or_unknown_files_raise(case, content):
    """Truncated NIfTI: ITK itself reads it with the missing voxels set to 0."""
    path = case['root'] / 'masks' / 'broken.nii.gz'
    if isinstance(content, str):
        suffix = content[len('truncated'):]
        good = _write(case, f'good{suffix}', case['truth'], case['mr'].volume)
        content = good.read_bytes()[:int(good.stat().st_size * 0.8)]
        path = path.with_name(f'broken{suffix}')
    path.write_bytes(content)
    with pytest.raises(DataPrepError, match=rf'patient {PID}, label map masks/broken.n[a-z.]*: '
                                            'cannot read it'):
        label_map_masks(path, case['mr'].volume, patient_id=PID)
    with pytest.raises(DataPrepError, match='not a label map file'):
        label_map_masks(case['root'] / 'RS.dcm', case['mr'].volume, patient_id=PID)


# ---------------------------------------------------------------- DICOM SEG


def _segment(number, label):
    from pydicom.sr.codedict import codes
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)


def _write_seg(case, name, pixels, seg_type, **geometry):
    """SEG of ``pixels`` [frames, rows, cols, segments] (segments GTVnx, GTVnd_L, Brainstem)."""
    sources = [pydicom.dcmread(p) for p in case['mr'].files]
    if not geometry:  # frames on the MR slices, given in a shuffled source order
        order = np.random.default_rng(3).permutation(len(sources))
        sources, pixels = [sources[k] for k in order], pixels[order]
    else:
        sources = sources[:1]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=seg_type,
        segment_descriptions=[_segment(1, 'GTVnx'), _segment(2, 'GTVnd_L'),
                              _segment(3, 'Brainstem')],
        series_instance_uid=hd.UID(), series_number=9, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer='SYNTHETIC', manufacturer_model_name='test',
        software_versions='0', device_serial_number='0', **geometry)
    path = case['root'] / 'seg' / name
    path.parent.mkdir(exist_ok=True)
    seg.save_as(path)
    return path


@pytest.mark.parametrize('seg_type', ['BINARY', 'FRACTIONAL'])
def test_seg_of_the_rtstruct_masks_reads_back_exactly(case, seg_type):
    rt = case['rtstruct_masks']
    pixels = np.stack([rt['GTV'], rt['GTVln'], rt['GTVln']], axis=-1)
    if seg_type == 'FRACTIONAL':
        pixels = pixels.astype(np.float32)
    path = _write_seg(case, f'{seg_type}.dcm', pixels, seg_type)
    ds = pydicom.dcmread(path)
    assert is_seg(ds) and not is_seg(pydicom.dcmread(case['mr'].files[0]))
    warnings = []
    for source in (path, ds):
        masks = seg_masks(source, case['mr'].volume, PrepOptions(), patient_id=PID,
                          frame_of_reference_uid=case['series'].frame_of_reference_uid,
                          warnings_out=warnings)
        assert set(masks) == {'GTV', 'GTVln'}
        for cls in masks:
            np.testing.assert_array_equal(masks[cls], rt[cls])
    assert warnings == []
    assert segment_classes(path, patient_id=PID) == {'GTV': ['GTVnx'], 'GTVln': ['GTVnd_L']}
    assert case['series'].series_uid in seg_references(path, patient_id=PID).series_uids


def test_seg_on_a_coarser_grid_of_the_same_frame_lands_within_half_a_voxel(case):
    grid = box_grid((-12.0, -16.0, -14.0), (34.0, 14.0, 14.0), 2.5)
    labels = _sphere_labels(grid)
    pixels = np.stack([labels == 1, labels == 2, labels == 2], axis=-1)
    positions = [hd.PlanePositionSequence('PATIENT', grid.index_to_lps([0, 0, k])[0].tolist())
                 for k in range(labels.shape[0])]
    path = _write_seg(
        case, 'coarse.dcm', pixels, 'BINARY', plane_positions=positions,
        plane_orientation=hd.PlaneOrientationSequence('PATIENT', [1.0, 0, 0, 0, 1.0, 0]),
        pixel_measures=hd.PixelMeasuresSequence(pixel_spacing=[2.5, 2.5], slice_thickness=2.5,
                                                spacing_between_slices=2.5))
    masks = seg_masks(path, case['mr'].volume, {'GTV': ['gtvnx'], 'GTVln': ['gtvnd']},
                      patient_id=PID)
    _check_within_half_voxel(masks, case['mr'].volume, grid.spacing)


def test_seg_errors_name_patient_and_file(case):
    rt = case['rtstruct_masks']
    pixels = np.stack([rt['GTV'], rt['GTVln'], rt['GTVln']], axis=-1)
    path = _write_seg(case, 'aliases.dcm', pixels, 'BINARY')
    with pytest.raises(DataPrepError, match=rf'patient {PID}, SEG seg/aliases.dcm: no segment is '
                                            r'a GTV/GTVln \(segments: \[.Brainstem.'):
        seg_masks(path, case['mr'].volume, {'GTV': ['tumour']}, patient_id=PID)
    with pytest.raises(DataPrepError, match='FrameOfReferenceUID differs'):
        seg_masks(path, case['mr'].volume, patient_id=PID, frame_of_reference_uid='1.2.3')
    with pytest.raises(DataPrepError, match=rf'patient {PID}: mr/.* is not a DICOM SEG'):
        seg_masks(case['mr'].files[0], case['mr'].volume, patient_id=PID)
    broken = case['root'] / 'seg' / 'broken.dcm'
    broken.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataPrepError, match=rf'patient {PID}.*seg/broken.dcm'):
        seg_masks(broken, case['mr'].volume, patient_id=PID)


def test_label_map_names_follow_the_label_mapping():
    from data_prep.mask_sources import label_map_names

    assert label_map_names(None) == {'GTV': ['label 1'], 'GTVln': ['label 2']}
    assert label_map_names({'GTV': [1], 'GTVln': [2, 3]}) == {
        'GTV': ['label 1'], 'GTVln': ['label 2', 'label 3']}
    with pytest.raises(DataPrepError, match='both'):
        label_map_names({'GTV': [1], 'GTVln': [1]})
