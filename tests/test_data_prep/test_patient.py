"""End to end for one patient folder: DICOM + RTSTRUCT -> prepared 512 px slices in LPS."""
import numpy as np
import pytest

from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.options import PrepOptions
from data_prep.patient import prepare_patient
from data_prep.types import DataPrepError

PID = 'NPC_017'
HEADER = PatientHeader(name='DOE^JANE', patient_id='MRN123456', birth_date='19610203',
                       accession='ACC998877', institution='General Hospital',
                       study_date='20190405')
LESION = np.array([12.4, -20.6, 3.0])  # LPS mm, on a slice plane of every series below
X, Y, Z = np.eye(3)
# sequence -> (description, direction columns, spacing (i, j, k), shape, origin)
SERIES = {
    't1': ('T1_TSE_TRA', np.column_stack([X, Y, Z]), (1.8, 1.8, 3.0), (12, 64, 64),
           (-57.0, -57.0, -15.0)),
    't2': ('Ax T2 FS', np.column_stack([X, -Y, -Z]), (1.6, 2.0, 4.0), (9, 56, 70),
           (-55.0, 55.0, 19.0)),
    'cet1': ('T1 +C COR', np.column_stack([X, -Z, Y]), (2.0, 2.0, 3.4), (14, 40, 56),
             (-55.0, -37.6, 39.0)),
}
SEMI_AXES = np.array([8.0, 5.0, 6.0])  # mm along x, y, z of the ellipsoidal GTV


def _ellipsoid_contours(direction, spacing, shape, origin, centre, semi):
    """Cross-sections of an axis-aligned ellipsoid with each native slice plane."""
    normal = direction[:, 2]
    axis_n = int(np.argmax(np.abs(normal)))
    half_u, half_v = (semi[int(np.argmax(np.abs(direction[:, c])))] for c in (0, 1))
    contours = []
    for k in range(shape[0]):
        offset = (np.asarray(origin) + k * spacing[2] * normal - centre) @ normal
        shrink = 1 - (offset / semi[axis_n]) ** 2
        if shrink > 0.05:
            contours.append(ellipse_contour(centre + offset * normal,
                                            (half_u * np.sqrt(shrink), half_v * np.sqrt(shrink)),
                                            48, plane_axes=(direction[:, 0], direction[:, 1])))
    return contours


def _write_patient(root, with_rtstruct=True):
    rng = np.random.default_rng(11)
    written = {}
    for n, (sequence, (description, direction, spacing, shape, origin)) in enumerate(
            SERIES.items()):
        volume = rng.normal(400, 40, shape).clip(0)
        written[sequence] = series = write_mr_series(
            root / f'series{n}', volume, spacing=spacing, origin=origin, direction=direction,
            description=description, patient=HEADER, rng=rng)
        geometry = (direction, spacing, shape, origin)
        contours = _ellipsoid_contours(*geometry, LESION, SEMI_AXES)
        nodes = _ellipsoid_contours(*geometry, LESION + [25, 0, 0], np.full(3, 3.0))
        if with_rtstruct:
            write_rtstruct(root / f'RS{n}.dcm', series,
                           {'GTVnx': contours, 'GTVnd_L': nodes, 'Brainstem': nodes},
                           patient=HEADER, rng=rng)
    return written


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp('cohort') / PID
    written = _write_patient(root)
    return written, prepare_patient(root, PID, PrepOptions())


def test_every_sequence_is_prepared_with_a_full_manifest_entry(prepared):
    _, result = prepared
    assert list(result) == ['t1', 't2', 'cet1']
    info = result['t2'].info
    assert info['series_description'] == 'Ax T2 FS'
    assert info['n_source_slices'] == 9 and info['source_shape'] == [9, 56, 70]
    assert info['source_spacing_mm'] == [1.6, 2.0, 4.0]
    assert info['source_orientation'] == [1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
    assert info['square_fov_mm'] == 112  # max(70 x 1.6, 56 x 2.0)
    assert info['output_shape'] == [33, 512, 512]  # 8 gaps x 4 mm + 1
    assert info['rtstruct_rois'] == {'GTV': ['GTVnx'], 'GTVln': ['GTVnd_L']}
    assert info['warnings'] == []
    for sequence, item in result.items():
        assert item.patient_id == PID and item.sequence == sequence
        assert len(item.slices) == item.info['output_shape'][0]


def test_manifest_holds_no_identifiers(prepared):
    written, result = prepared
    text = repr([item.info for item in result.values()])
    for value in (HEADER.name, HEADER.patient_id, HEADER.birth_date, HEADER.accession,
                  HEADER.institution, HEADER.study_date, 'DOE'):
        assert value not in text
    for series in written.values():
        for uid in [series.study_uid, series.series_uid, series.frame_of_reference_uid,
                    *series.sop_instance_uids]:
            assert uid not in text


@pytest.mark.parametrize('sequence', list(SERIES))
def test_lesion_comes_back_at_its_lps_position_and_size(prepared, sequence):
    """Position and size are limited by the native voxels (pixel-centre rule at
    1.6-3.4 mm): centroid within half, extents within one native spacing. A
    flipped axis or swapped PixelSpacing would be off by 3 to 40 mm."""
    _, result = prepared
    native = max(SERIES[sequence][2])
    slices = result[sequence].slices
    on_lesion = [p for p in slices if 'GTV' in p.masks]
    assert on_lesion, 'no GTV mask'
    best = min(on_lesion, key=lambda p: abs(p.z_mm - LESION[2]))
    assert best.z_mm == pytest.approx(LESION[2], abs=0.5)
    z_span = max(p.z_mm for p in on_lesion) - min(p.z_mm for p in on_lesion) + 1
    assert z_span == pytest.approx(2 * SEMI_AXES[2], abs=native)
    v, u = np.nonzero(best.masks['GTV'])
    step = best.spacing_mm[0]
    x = best.origin_mm[0] + u * step
    y = best.origin_mm[1] + v * step
    assert abs(x.mean() - LESION[0]) <= native / 2 and abs(y.mean() - LESION[1]) <= native / 2
    assert x.max() - x.min() + step == pytest.approx(2 * SEMI_AXES[0], abs=native)
    assert y.max() - y.min() + step == pytest.approx(2 * SEMI_AXES[1], abs=native)
    assert len(u) * step * step == pytest.approx(np.pi * SEMI_AXES[0] * SEMI_AXES[1], rel=0.12)
    v, u = np.nonzero(best.masks['GTVln'])
    assert abs(best.origin_mm[0] + u.mean() * step - LESION[0] - 25) <= native / 2
    assert not (best.masks['GTV'] & best.masks['GTVln']).any()


def test_without_contours_no_rtstruct_is_needed(tmp_path):
    root = tmp_path / PID
    _write_patient(root, with_rtstruct=False)
    result = prepare_patient(root, PID, PrepOptions(), require_contours=False)
    assert all(not p.masks for item in result.values() for p in item.slices)
    assert result['cet1'].info['rtstruct_rois'] == {}
    with pytest.raises(DataPrepError, match=f'patient {PID}: no RTSTRUCT refers to the t1'):
        prepare_patient(root, PID, PrepOptions())


def test_tilted_contour_is_rejected_naming_patient_and_rtstruct(tmp_path):
    root = tmp_path / PID
    written = _write_patient(root, with_rtstruct=False)
    contour = ellipse_contour(LESION + [0, 0, 1.0], (8.0, 5.0), 16)  # 0.25 slice off
    write_rtstruct(root / 'RS.dcm', written['t2'], {'GTV': [contour]}, patient=HEADER,
                   strict_planes=False, rng=np.random.default_rng(1))
    result = prepare_patient(root, PID, PrepOptions(sequences=('t2',)))
    assert any('GTV' in p.masks for p in result['t2'].slices)
    assert "RTSTRUCT RS.dcm, ROI 'GTV': 1 contour(s) lie more" in result['t2'].info['warnings'][0]
    contour[:8, 2] -= 5.0  # half the contour 1 slice below the rest: tilted
    write_rtstruct(root / 'RS.dcm', written['t2'], {'GTV': [contour]}, patient=HEADER,
                   strict_planes=False, rng=np.random.default_rng(1))
    with pytest.raises(DataPrepError, match=f"patient {PID}, RTSTRUCT RS.dcm, ROI 'GTV'.*"
                                            'off the nearest image slice'):
        prepare_patient(root, PID, PrepOptions(sequences=('t2',)))


def test_every_file_is_parsed_once(tmp_path, monkeypatch):
    """Discovery's datasets are what the MR and RTSTRUCT readers use: one parse per file
    (a second pass doubled the reading time, more on network storage)."""
    import pydicom

    root = tmp_path / PID
    _write_patient(root)
    parsed = []
    real_dcmread = pydicom.dcmread

    def counting_dcmread(path, *args, **kwargs):
        parsed.append(str(path))
        return real_dcmread(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, 'dcmread', counting_dcmread)
    prepare_patient(root, PID, PrepOptions())
    files = [str(p) for p in root.rglob('*') if p.is_file()]
    assert sorted(parsed) == sorted(files)
