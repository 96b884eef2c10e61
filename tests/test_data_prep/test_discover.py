"""Finding MR series and RTSTRUCTs in any folder layout; skipping vs rejecting files."""
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.discover import scan_patient
from data_prep.types import DataPrepError

PID = 'P003'


def _mr(folder, description, seed, n=3):
    return write_mr_series(folder, np.zeros((n, 4, 4)), spacing=(1.0, 1.0, 2.0),
                           origin=(0.0, 0.0, 0.0), description=description,
                           patient=PatientHeader(), rng=np.random.default_rng(seed))


@pytest.fixture
def patient_dir(tmp_path):
    root = tmp_path / PID
    t1 = _mr(root / 'study' / 'deep' / 'er', 'T1', seed=0)
    _mr(root / 'study' / 'deep' / 'er', 'T2', seed=1, n=2)  # same folder, other series
    write_rtstruct(root / 'RS.dcm', t1, {'GTV': [ellipse_contour((1, 1, 2), (1, 1), 6)]},
                   patient=PatientHeader(), rng=np.random.default_rng(2))
    (root / 'notes.txt').write_text('contoured by Dr X\n')
    (root / 'empty').write_bytes(b'')
    (root / '.DS_Store').write_bytes(b'\x00\x00\x00\x01Bud1' + bytes(200))
    (root / 'study' / 'clinical.json').write_text('{"age": 50}')
    shutil.copy(get_testdata_file('CT_small.dcm'), root / 'study' / 'ct.dcm')
    shutil.copy(get_testdata_file('DICOMDIR'), root / 'DICOMDIR')
    return root


def test_finds_mr_and_rtstruct_series_at_any_depth(patient_dir):
    found = scan_patient(patient_dir, PID)
    assert [(s.modality, s.description, len(s.files)) for s in found if s.modality == 'MR'] in (
        [('MR', 'T1', 3), ('MR', 'T2', 2)], [('MR', 'T2', 2), ('MR', 'T1', 3)])
    assert [s.modality for s in found] == ['CT', 'MR', 'MR', 'RTSTRUCT']  # CT: planning CT
    for series in found:
        assert series.patient_id == PID
        assert list(series.files) == sorted(series.files)
        for path, uid in zip(series.files, series.sop_instance_uids):
            assert pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID == uid
    rtstruct = found[3]
    assert rtstruct.files == (patient_dir / 'RS.dcm',)
    t1 = next(s for s in found if s.description == 'T1')
    assert rtstruct.frame_of_reference_uid == t1.frame_of_reference_uid


def test_scan_is_deterministic(patient_dir):
    assert scan_patient(patient_dir, PID) == scan_patient(patient_dir, PID)


def test_dicom_without_preamble_is_read(tmp_path):
    """pydicom's rtstruct.dcm is implicit VR without file meta ('DICM') header."""
    root = tmp_path / PID
    root.mkdir()
    shutil.copy(get_testdata_file('rtstruct.dcm'), root / 'rs')
    found = scan_patient(root, PID)
    assert [(s.modality, len(s.files)) for s in found] == [('RTSTRUCT', 1)]
    assert found[0].frame_of_reference_uid.endswith('2010020400001.2')


@pytest.mark.parametrize('keep_bytes', [200, 600])
def test_truncated_header_raises_naming_patient_and_relative_file(patient_dir, keep_bytes):
    source = next((patient_dir / 'study' / 'deep' / 'er').iterdir())
    (patient_dir / 'study' / 'bad.dcm').write_bytes(source.read_bytes()[:keep_bytes])
    with pytest.raises(DataPrepError, match=r'patient P003: .*study/bad\.dcm'):
        scan_patient(patient_dir, PID)


def test_mr_secondary_capture_is_not_an_image_series(tmp_path):
    root = tmp_path / PID
    written = _mr(root / 'sc', 'T1 screenshot', seed=3, n=1)
    ds = pydicom.dcmread(written.files[0])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    ds.save_as(written.files[0])
    assert scan_patient(root, PID) == []


def test_missing_patient_folder_raises(tmp_path):
    with pytest.raises(DataPrepError, match='P003'):
        scan_patient(tmp_path / 'nope', PID)
