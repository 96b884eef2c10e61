"""Real DICOM files written by others (pydicom's test data) through the same loaders.

What they contain (inspected with pydicom):
* MR_small.dcm: one axial 64 x 64 slice, 0.3125 mm pixels, signed 16 bit; the
  _implicit/_bigendian/_expb/_RLE/_padded files hold the same image in other
  encodings; MR_truncated.dcm lacks the end of its pixel data.
* dicomdirtests/98892003/MR1: three single-slice sagittal localiser series
  (16 x 16 px, 1.367 mm, signed); MR2 and MR700: series whose slices have
  different orientations (tri-planar localisers, rotated angiography projections).
* rtstruct.dcm: implicit VR without file meta; ROIs 'patient' (closed planar
  contours) and two 'Isocenter' POINT ROIs.
"""
import os
import shutil
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from data_prep.discover import scan_patient
from data_prep.mr_volume import load_mr_series
from data_prep.options import PrepOptions
from data_prep.resample import resample_to_slices
from data_prep.rtstruct import read_references, read_structure_set
from data_prep.types import DataPrepError

PID = 'REAL01'
TEST_FILES = Path(os.path.dirname(get_testdata_file('MR_small.dcm')))
MR_1 = TEST_FILES / 'dicomdirtests' / '98892003' / 'MR1'


def _patient(tmp_path, *sources):
    root = tmp_path / PID
    for source in sources:
        target = root / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return root


def _check_geometry(volume):
    assert all(s > 0 for s in volume.spacing)
    np.testing.assert_allclose(volume.direction.T @ volume.direction, np.eye(3), atol=1e-9)
    assert np.all(np.isfinite(volume.origin)) and np.all(np.isfinite(volume.array))


def _check_slices(slices):
    assert slices
    for prepared in slices:
        assert prepared.image.shape == (512, 512) and prepared.image.dtype == np.uint8
        assert all(s > 0 for s in prepared.spacing_mm)
        assert np.all(np.isfinite(prepared.origin_mm)) and np.isfinite(prepared.z_mm)
        assert prepared.image.max() > 0


def test_mr_small_single_slice(tmp_path):
    source = TEST_FILES / 'MR_small.dcm'
    [series] = scan_patient(_patient(tmp_path, source), PID)
    loaded = load_mr_series(series)
    volume = loaded.volume
    _check_geometry(volume)
    ds = pydicom.dcmread(source)
    np.testing.assert_array_equal(volume.array[0], ds.pixel_array.astype(np.float32))
    assert volume.array.shape == (1, 64, 64)
    assert volume.spacing == pytest.approx((0.3125, 0.3125, 0.8))  # k: SliceThickness
    assert volume.origin == pytest.approx((-83.9063, -91.2, 6.6406))
    np.testing.assert_allclose(volume.direction, np.eye(3), atol=1e-6)
    assert 'single-slice' in loaded.warnings[0]
    [prepared] = resample_to_slices(volume, {}, PrepOptions())
    _check_slices([prepared])
    assert prepared.spacing_mm == pytest.approx((20 / 512, 20 / 512))  # 64 x 0.3125 = 20 mm
    assert prepared.z_mm == pytest.approx(6.6406)
    assert prepared.origin_mm[0] == pytest.approx(-83.9063 - 0.15625 + 20 / 1024)


@pytest.mark.parametrize('variant', ['MR_small_implicit.dcm', 'MR_small_bigendian.dcm',
                                     'MR_small_expb.dcm', 'MR_small_RLE.dcm',
                                     'MR_small_padded.dcm'])
def test_other_encodings_of_mr_small_load_identically(tmp_path, variant):
    reference = load_mr_series(scan_patient(_patient(tmp_path / 'a', TEST_FILES / 'MR_small.dcm'),
                                            PID)[0]).volume
    with pytest.warns(UserWarning) if 'padded' in variant else nullcontext():
        [series] = scan_patient(_patient(tmp_path / 'b', TEST_FILES / variant), PID)
        volume = load_mr_series(series).volume
    np.testing.assert_array_equal(volume.array, reference.array)
    assert volume.spacing == reference.spacing and volume.origin == reference.origin


def test_sagittal_localisers_of_mr1(tmp_path):
    found = scan_patient(_patient(tmp_path, *sorted(MR_1.iterdir())), PID)
    assert [(s.modality, len(s.files)) for s in found] == [('MR', 1)] * 3
    for series in found:
        volume = load_mr_series(series).volume
        _check_geometry(volume)
        assert volume.array.shape == (1, 16, 16) and volume.array.min() >= 0
        assert volume.spacing == pytest.approx((1.367188, 1.367188, 10.0))
        # IOP (0, 1, 0, 0, 0, -1): columns run posterior, rows inferior, normal = -x
        np.testing.assert_allclose(volume.direction, [[0, 0, -1], [1, 0, 0], [0, -1, 0]],
                                   atol=1e-6)
        slices = resample_to_slices(volume, {}, PrepOptions())
        _check_slices(slices)
        # z: from the lowest to the highest voxel centre, 15 x 1.367 mm -> 21 slices
        assert len(slices) == 21 and slices[0].z_mm == pytest.approx(175.0 - 15 * 1.367188)
        assert 174.0 < slices[-1].z_mm <= 175.0
        # in-plane square: max(y extent 16 x 1.367 = 21.9 mm, x extent = 10 mm slab) -> 22
        assert slices[0].spacing_mm[0] == pytest.approx(22 / 512)


@pytest.mark.parametrize('folder', ['MR2', 'MR700'])
def test_series_with_several_orientations_are_rejected(tmp_path, folder):
    sources = sorted((TEST_FILES / 'dicomdirtests' / '98892003' / folder).iterdir())
    found = scan_patient(_patient(tmp_path, *sources), PID)
    multi = [s for s in found if len(s.files) > 1]
    assert multi
    for series in multi:
        with pytest.raises(DataPrepError, match=rf'patient {PID}: file {folder}/\d+: '
                                                'ImageOrientationPatient differs'):
            load_mr_series(series)


def test_truncated_pixel_data_raises_naming_the_file(tmp_path):
    [series] = scan_patient(_patient(tmp_path, TEST_FILES / 'MR_truncated.dcm'), PID)
    with pytest.raises(DataPrepError, match=f'patient {PID}: .*test_files/MR_truncated.dcm'):
        load_mr_series(series)


def test_real_rtstruct(tmp_path):
    root = _patient(tmp_path, TEST_FILES / 'rtstruct.dcm')
    path = root / 'test_files' / 'rtstruct.dcm'
    with pytest.raises(DataPrepError, match=r"RTSTRUCT test_files/rtstruct.dcm has no GTV/GTVln "
                                            r"ROI \(ROIs: \['Isocenter 1', 'Isocenter 2', "
                                            r"'patient'\]\)"):
        read_structure_set(path, PID, PrepOptions())
    options = PrepOptions(roi_aliases={'GTV': ['patient'], 'GTVln': ['isocenter']})
    structure = read_structure_set(path, PID, options)
    contours = structure.rois['GTV']['patient']
    assert [len(c) for c in contours] == [5, 6, 6]
    np.testing.assert_allclose(contours[0][:2], [[-200, 150, -200], [-200, -150, -200]])
    assert {c[0, 2] for c in contours} == {-200.0, -190.0, -180.0}
    assert sorted(structure.roi_names()['GTVln']) == ['Isocenter 1', 'Isocenter 2']
    assert "ROI 'Isocenter 1': skipped 1 contour(s) with POINT geometric type" in structure.warnings
    assert "ROI 'Isocenter 2' has no usable contour" in structure.warnings
    refs = read_references(path, PID)
    assert refs.series_uids == {'1.2.826.0.1.3680043.8.498.2010020400001.2.1.1'}
    assert refs.frame_of_reference_uids == {'1.2.826.0.1.3680043.8.498.2010020400001.2'}
