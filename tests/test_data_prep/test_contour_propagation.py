"""One RTSTRUCT per patient: contours drawn on CE-T1 reach T1 and T2 of the same frame of
reference (data_prep.contour_sources.contour_source_for + data_prep.contour_masks).

The truth is independent of the propagation: the same contours written as an RTSTRUCT
on each series and converted the ordinary way.
"""
import numpy as np
import pytest

from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.options import PrepOptions
from data_prep.patient import prepare_patient
from data_prep.contour_sources import ContourSource, contour_source_for
from data_prep.registration import masks_to_grid, outside_fraction
from data_prep.types import DataPrepError, SeriesInfo, Volume

PID = 'NPC_042'
FRAME = '1.2.826.0.1.3680043.8.498.4242'
OTHER_FRAME = '1.2.826.0.1.3680043.8.498.4343'
HEADER = PatientHeader()
X, Y, Z = np.eye(3)
GTV = (np.array([10.0, -15.0, 0.0]), np.array([9.0, 6.0, 7.5]))  # centre, semi-axes (LPS mm)
NODE = (np.array([38.0, -11.0, 1.0]), np.array([4.5, 4.0, 4.5]))
# sequence -> (description, direction columns, spacing (i, j, k), shape (k, j, i), origin)
# Same slice planes z = -13.5 + 3 n for all three (T2 stored upside down), other pixels.
SAME_PLANES = {
    't1': ('T1_TSE_TRA', np.eye(3), (1.8, 1.8, 3.0), (10, 48, 56), (-45.0, -50.0, -13.5)),
    't2': ('T2_TSE_TRA', np.column_stack([X, -Y, -Z]), (1.6, 2.0, 3.0), (10, 44, 60),
           (-40.0, 40.0, 13.5)),
    'cet1': ('T1_CE_TRA', np.eye(3), (2.0, 2.0, 3.0), (10, 40, 48), (-42.0, -45.0, -13.5)),
}
# CE-T1 every 1.5 mm; T2 every 4 mm on planes CE-T1 does not have.
OTHER_PLANES = {
    't2': ('T2_TSE_TRA', np.eye(3), (2.0, 2.0, 4.0), (7, 40, 44), (-38.0, -50.0, -12.0)),
    'cet1': ('T1_CE_TRA', np.eye(3), (1.5, 1.5, 1.5), (20, 56, 64), (-45.0, -58.0, -14.25)),
}
OPTIONS = PrepOptions(output_size=128)


def plane_contours(direction, spacing, shape, origin, centre, semi):
    """Cross-sections of an axis-aligned ellipsoid with the axial slice planes of a series."""
    contours = []
    for k in range(shape[0]):
        z = origin[2] + k * spacing[2] * direction[2, 2]
        shrink = 1 - ((z - centre[2]) / semi[2]) ** 2
        if shrink > 0.05:
            contours.append(ellipse_contour([centre[0], centre[1], z],
                                            tuple(semi[:2] * np.sqrt(shrink)), 48))
    return contours


def write_patient(root, geometry, *, rtstruct_on, frames=None, seed=3):
    """MR series of ``geometry`` in ``root/<seq>/``; RTSTRUCT ``root/RS_<seq>.dcm`` for
    each sequence in ``rtstruct_on``, drawn on that series' planes."""
    rng = np.random.default_rng(seed)
    written = {}
    for number, (sequence, (description, direction, spacing, shape, origin)) in enumerate(
            geometry.items(), start=1):
        written[sequence] = write_mr_series(
            root / sequence, rng.normal(300, 30, shape).clip(0), spacing=spacing, origin=origin,
            direction=direction, description=description, patient=HEADER,
            frame_of_reference_uid=(frames or {}).get(sequence, FRAME), series_number=number,
            rng=np.random.default_rng([seed, number]))
    for sequence in rtstruct_on:
        geo = geometry[sequence][1:]
        write_rtstruct(root / f'RS_{sequence}.dcm', written[sequence],
                       {'GTVnx': plane_contours(*geo, *GTV),
                        'GTVnd_R': plane_contours(*geo, *NODE)},
                       patient=HEADER, rng=np.random.default_rng([seed, 99, len(sequence)]))
    return written


def stacked(prepared, cls):
    """bool [slice, row, column] of one class over the prepared output slices."""
    return np.stack([s.masks.get(cls, np.zeros(s.image.shape, bool)) for s in prepared.slices])


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope='module')
def same_planes(tmp_path_factory):
    """(per-sequence RTSTRUCTs, one RTSTRUCT on CE-T1): the same MR series in both."""
    base = tmp_path_factory.mktemp('same')
    write_patient(base / 'each' / PID, SAME_PLANES, rtstruct_on=('t1', 't2', 'cet1'))
    write_patient(base / 'one' / PID, SAME_PLANES, rtstruct_on=('cet1',))
    return (prepare_patient(base / 'each' / PID, PID, OPTIONS),
            prepare_patient(base / 'one' / PID, PID, OPTIONS))


def test_one_rtstruct_on_cet1_gives_every_sequence_the_same_masks(same_planes):
    each, one = same_planes
    assert list(one) == ['t1', 't2', 'cet1']
    for sequence in one:
        for cls in ('GTV', 'GTVln'):
            truth = stacked(each[sequence], cls)
            assert truth.sum() > 100, (sequence, cls)
            assert np.array_equal(stacked(one[sequence], cls), truth), (sequence, cls)
        assert one[sequence].info['rtstruct_rois'] == {'GTV': ['GTVnx'], 'GTVln': ['GTVnd_R']}
        assert one[sequence].info['warnings'] == []


def test_the_manifest_says_where_the_contours_come_from(same_planes):
    each, one = same_planes
    assert one['cet1'].info['contour_source'] == {
        'kind': 'rtstruct', 'drawn_on': 'cet1', 'propagated': False, 'file': 'RS_cet1.dcm',
        'registration': 'none', 'quality': None}
    for sequence in ('t1', 't2'):
        assert one[sequence].info['contour_source'] == {
            'kind': 'rtstruct', 'drawn_on': 'cet1', 'propagated': True, 'file': 'RS_cet1.dcm',
            'registration': 'none', 'quality': None,
            'method': 'rasterised on this series (contours on its slice planes)'}
        assert each[sequence].info['contour_source']['file'] == f'RS_{sequence}.dcm'
    assert FRAME not in repr([p.info for p in one.values()])


def test_contours_on_other_planes_are_resampled_from_the_series_they_were_drawn_on(tmp_path):
    """T2 planes lie between CE-T1 planes (4 mm vs 1.5 mm): the CE-T1 masks are
    interpolated. The truth, T2's own cross-sections, differs by at most the CE-T1
    slice spacing along z and a pixel in-plane: Dice >= 0.9 for the GTV (measured 0.94)
    and >= 0.75 for the 9 mm node (measured 0.83); 0 if it were misplaced by a node's size."""
    write_patient(tmp_path / 'each' / PID, OTHER_PLANES, rtstruct_on=('t2', 'cet1'))
    write_patient(tmp_path / 'one' / PID, OTHER_PLANES, rtstruct_on=('cet1',))
    options = PrepOptions(output_size=128, sequences=('t2',))
    each = prepare_patient(tmp_path / 'each' / PID, PID, options)['t2']
    one = prepare_patient(tmp_path / 'one' / PID, PID, options)['t2']
    assert dice(stacked(one, 'GTV'), stacked(each, 'GTV')) >= 0.9
    assert dice(stacked(one, 'GTVln'), stacked(each, 'GTVln')) >= 0.75
    assert one.info['contour_source'] == {
        'kind': 'rtstruct', 'drawn_on': 'cet1', 'propagated': True, 'file': 'RS_cet1.dcm',
        'registration': 'none', 'quality': None,
        'method': 'rasterised on the cet1 series, resampled to this one'}
    assert one.info['warnings'] == []


def test_a_sequence_in_another_frame_with_its_own_rtstruct_uses_it(tmp_path):
    """Registration between frames: tests/test_data_prep/test_contour_sources_e2e.py."""
    write_patient(tmp_path / 'own' / PID, SAME_PLANES, rtstruct_on=('t2', 'cet1'),
                  frames={'t2': OTHER_FRAME})
    prepared = prepare_patient(tmp_path / 'own' / PID, PID, OPTIONS)
    assert prepared['t2'].info['contour_source']['propagated'] is False
    assert prepared['t1'].info['contour_source']['drawn_on'] == 'cet1'


def test_no_rtstruct_at_all_is_an_error_naming_the_series(tmp_path):
    root = tmp_path / PID
    write_patient(root, SAME_PLANES, rtstruct_on=())
    with pytest.raises(DataPrepError, match=f"patient {PID}: no RTSTRUCT refers to the t1 series "
                                            r"'T1_TSE_TRA' \(t1/, 10 files\) nor to another"):
        prepare_patient(root, PID, OPTIONS)


def test_a_donor_that_is_not_converted_still_lends_its_contours(tmp_path, same_planes):
    """--sequences t2 with the contours on CE-T1: CE-T1 is read for its contours only."""
    root = tmp_path / PID
    write_patient(root, SAME_PLANES, rtstruct_on=('cet1',))
    prepared = prepare_patient(root, PID, PrepOptions(output_size=128, sequences=('t2',)))
    assert list(prepared) == ['t2']
    assert prepared['t2'].info['contour_source']['drawn_on'] == 'cet1'
    each, _ = same_planes
    assert np.array_equal(stacked(prepared['t2'], 'GTV'), stacked(each['t2'], 'GTV'))


def _series(name, frame=FRAME):
    return SeriesInfo(patient_id=PID, modality='MR', series_uid=f'1.2.{name}',
                      frame_of_reference_uid=frame, description=name,
                      files=(f'/c/{PID}/{name}/1.dcm',), sop_instance_uids=(f'1.2.{name}.1',))


@pytest.mark.parametrize('own, frames, expected', [
    ({'t2': 'RS_t2', 'cet1': 'RS_cet1'}, {}, ('propagated', 'cet1')),  # cet1 before t2
    ({'t2': 'RS_t2'}, {}, ('propagated', 't2')),
    ({'t1': 'RS_t1'}, {}, ('own', 't1')),
    ({'t2': 'RS_t2', 'cet1': 'RS_cet1'}, {'cet1': OTHER_FRAME}, ('propagated', 't2')),
    ({'cet1': 'RS_cet1'}, {'cet1': OTHER_FRAME}, ('registered', 'cet1')),
    ({}, {}, ('missing', None)),
])
def test_contour_source_rule(own, frames, expected):
    series_of = {s: _series(s, frames.get(s, FRAME)) for s in ('t1', 't2', 'cet1')}
    source = contour_source_for('t1', series_of, own)
    assert (source.kind, source.drawn_on) == expected
    assert source.rtstruct == own.get(expected[1])


def test_frames_of_reference_without_uid_are_never_the_same():
    series_of = {'t1': _series('t1', ''), 'cet1': _series('cet1', '')}
    assert contour_source_for('t1', series_of, {'cet1': 'RS'}).kind == 'registered'
    assert ContourSource('missing').manifest_entry(PID) == {'kind': 'missing'}


def test_resample_mask_moves_a_block_through_patient_coordinates():
    """A 4 x 4 x 4 mm block on a 1 mm grid seen by a 2 mm grid shifted by 10 mm in x and
    flipped in y: the target voxels whose centres lie inside the block are 1, others 0."""
    source = Volume(np.zeros((20, 20, 20), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    mask = np.zeros((20, 20, 20), bool)
    mask[8:12, 4:8, 12:16] = True  # x 12..15, y 4..7, z 8..11 mm (voxel centres)
    target = Volume(np.zeros((10, 10, 10), np.float32), (2.0, 2.0, 2.0), (10.0, 18.0, 0.0),
                    np.diag([1.0, -1.0, 1.0]))
    out = masks_to_grid({'GTV': mask}, source, target, np.eye(4))['GTV']
    centres = target.index_to_lps(np.argwhere(out >= 0.5)[:, ::-1].astype(float))
    assert len(centres) == 8  # 2 x 2 x 2 target voxels
    assert centres.min(axis=0) == pytest.approx([12, 4, 8]) and centres.max(axis=0) == \
        pytest.approx([14, 6, 10])
    assert outside_fraction(mask, source, target) == 0
    narrow = Volume(np.zeros((10, 10, 2), np.float32), (2.0, 2.0, 2.0), (10.0, 18.0, 0.0),
                    np.diag([1.0, -1.0, 1.0]))  # 2 columns: x 9..13 mm, so x 14, 15 are out
    assert outside_fraction(mask, source, narrow) == pytest.approx(0.5)


def test_lost_volume_outside_the_target_is_reported(tmp_path):
    geometry = {**OTHER_PLANES, 't2': ('T2_TSE_TRA', np.eye(3), (2.0, 2.0, 4.0), (3, 40, 44),
                                        (-38.0, -50.0, 0.0))}  # z 0..8 mm: half the lesion
    write_patient(tmp_path / PID, geometry, rtstruct_on=('cet1',))
    prepared = prepare_patient(tmp_path / PID, PID, PrepOptions(output_size=64,
                                                                sequences=('t2',)))['t2']
    warnings = prepared.info['warnings']
    assert any('of the GTV volume lies outside this series and is lost' in w for w in warnings)
    assert any('GTV' in s.masks for s in prepared.slices)
