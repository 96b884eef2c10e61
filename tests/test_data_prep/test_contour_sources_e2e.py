"""Contour sources end to end through prepare_patient / check: label maps and DICOM SEG give
the RTSTRUCT's COCO boxes; a sequence (or a planning CT) in another frame of reference is
registered (DICOM REG matrix, else rigid MI) and lands within 1 mm of the truth.

Truth of the registration cases: a synthetic head (data_prep.synth, 64 x 64 x 24 at 3 mm)
seen from a second frame through a known rigid matrix (1.5, -2, 4 degrees + (7, -3, 2.5) mm).
The 'CE-T1' series of these cases holds the synthetic T1 rendering: registering the
synthetic CE-T1 contrast to T2 leaves ~1.9 mm (max over the tumour region, measured with
registration.rigid_register directly), T1 to T2 0.3-0.9 mm; the registration itself is
tested in test_registration.py, here its wiring.
"""
import time

import highdicom as hd
import numpy as np
import pydicom
import pytest

from data_prep import contour_masks
from data_prep.check import check_patient
from data_prep.coco_writer import slice_annotations
from data_prep.dicom_writer import PatientHeader, write_mr_series, write_rtstruct
from data_prep.discover import scan_patient
from data_prep.mr_volume import load_mr_series
from data_prep.options import PrepOptions
from data_prep.patient import prepare_patient
from data_prep.rasterize import class_masks
from data_prep.registration import load_ct_series, transform_points
from data_prep.rtstruct import read_structure_set
from data_prep.synth import plan_patient as synth_plan, render_patient
from data_prep.testing.label_maps import ellipsoid_contours, write_label_map
from data_prep.testing.registration import (
    moved_volume,
    rigid_matrix,
    spatial_registration_dataset,
    write_ct_series,
    write_spatial_registration,
)
from data_prep.types import DataPrepError, Volume

PID = 'NPC_077'
HEADER = PatientHeader()
FRAME = '1.2.826.0.1.3680043.8.498.7701'
OTHER_FRAME = '1.2.826.0.1.3680043.8.498.7702'
CT_FRAME = '1.2.826.0.1.3680043.8.498.7703'
X, Y, Z = np.eye(3)
MR_DIRECTION = np.column_stack([X, -Y, -Z])
OPTIONS = PrepOptions(output_size=128, sequences=('cet1',))


def _boxes(prepared):
    return [(s.index, a['category_id'], a['bbox'])
            for s in prepared.slices for a in slice_annotations(s.masks, s.image.shape)]


def _same_boxes(a, b, tol_px=1.0):
    assert [(i, c) for i, c, _ in a] == [(i, c) for i, c, _ in b]  # same images, categories
    for (_, _, box_a), (_, _, box_b) in zip(a, b):
        assert np.abs(np.subtract(box_a, box_b)).max() <= tol_px, (box_a, box_b)


# ---------------------------------------------------------------- (a) label map, SEG

@pytest.fixture(scope='module')
def delineated(tmp_path_factory):
    """One CE-T1 series (stored rows anterior, slices inferior) in three patient folders:
    with an RTSTRUCT, with masks/cet1.nii.gz of the RTSTRUCT's masks, with a SEG of them."""
    base = tmp_path_factory.mktemp('delineated')
    rng = np.random.default_rng(11)
    image = rng.normal(300, 30, (10, 48, 52)).clip(0)
    written = {}
    for variant in ('rt', 'nifti', 'seg'):
        written[variant] = write_mr_series(
            base / variant / PID / 'mr', image, spacing=(1.4, 1.2, 3.0),
            origin=(-36.0, 28.0, 14.0), direction=MR_DIRECTION, description='T1 +C',
            patient=HEADER, frame_of_reference_uid=FRAME, rng=np.random.default_rng(1))
    mr = load_mr_series(next(s for s in scan_patient(base / 'rt' / PID, PID)
                             if s.modality == 'MR'))
    rois = {'GTVnx': ellipsoid_contours(mr.volume, (2.0, -2.0, 0.5), (10.0, 8.0, 9.0)),
            'GTVnd_L': ellipsoid_contours(mr.volume, (22.0, 6.0, -2.0), (4.5, 5.0, 6.0))}
    write_rtstruct(base / 'rt' / PID / 'RS.dcm', written['rt'], rois, patient=HEADER,
                   rng=np.random.default_rng(2))
    masks = class_masks(read_structure_set(base / 'rt' / PID / 'RS.dcm', PID, PrepOptions()),
                        mr.volume)
    write_label_map(base / 'nifti' / PID / 'masks' / 'cet1.nii.gz',
                    (masks['GTV'] + 2 * masks['GTVln']).astype(np.uint8), mr.volume)
    sources = [pydicom.dcmread(p) for p in written['seg'].files]
    by_sop = {str(ds.SOPInstanceUID): k for k, ds in enumerate(
        sorted(sources, key=lambda d: -float(d.ImagePositionPatient[2])))}
    order = [by_sop[str(ds.SOPInstanceUID)] for ds in sources]  # volume slice of each file
    pixels = np.stack([masks['GTV'][order], masks['GTVln'][order]], axis=-1).astype(np.uint8)
    from pydicom.sr.codedict import codes
    segments = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, label in ((1, 'GTVnx'), (2, 'GTVnd_L'))]
    hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type='BINARY',
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=9,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer='SYNTHETIC',
        manufacturer_model_name='test', software_versions='0', device_serial_number='0',
    ).save_as(base / 'seg' / PID / 'SEG.dcm')
    return base


def test_label_map_and_seg_give_the_rtstruct_coco_boxes(delineated):
    start = time.perf_counter()
    rt = prepare_patient(delineated / 'rt' / PID, PID, OPTIONS)['cet1']
    expected = _boxes(rt)
    assert len(expected) > 10
    for variant, kind, file in (('nifti', 'label_map', 'masks/cet1.nii.gz'),
                                ('seg', 'seg', 'SEG.dcm')):
        prepared = prepare_patient(delineated / variant / PID, PID, OPTIONS)['cet1']
        _same_boxes(_boxes(prepared), expected)
        assert prepared.info['contour_source'] == {
            'kind': kind, 'drawn_on': 'cet1', 'propagated': False, 'file': file,
            'registration': 'none', 'quality': None}
        assert [s.index for s in prepared.slices] == [s.index for s in rt.slices]
    print(f'label map / SEG vs RTSTRUCT: {len(expected)} boxes, '
          f'{time.perf_counter() - start:.1f} s')


def test_masks_option_and_label_values(delineated, tmp_path):
    """--masks DIR/<patient>_cet1.nrrd with other label values (mapping 'label_values')."""
    source = delineated / 'nifti' / PID / 'masks' / 'cet1.nii.gz'
    import SimpleITK as sitk
    image = sitk.ReadImage(str(source))
    sitk.WriteImage(image * 5, str(tmp_path / f'{PID}_cet1.nrrd'))  # GTV 5, GTVln 10
    folder = tmp_path / 'cohort' / PID
    folder.mkdir(parents=True)
    for path in (delineated / 'nifti' / PID / 'mr').iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    options = PrepOptions(output_size=128, sequences=('cet1',), masks_dir=str(tmp_path),
                          label_values={'GTV': [5], 'GTVln': [10]})
    prepared = prepare_patient(folder, PID, options)['cet1']
    _same_boxes(_boxes(prepared),
                _boxes(prepare_patient(delineated / 'rt' / PID, PID, OPTIONS)['cet1']))
    assert prepared.info['contour_source']['file'] == f'{PID}_cet1.nrrd'
    record = check_patient(folder, PID, options).sequences[0]
    assert (record.contours, record.kind) == ('own label map', 'label_map')


def test_rtstruct_and_seg_on_one_series_prefers_the_rtstruct(delineated, tmp_path):
    folder = tmp_path / PID
    for variant in ('rt', 'seg'):
        for path in (delineated / variant / PID).rglob('*.dcm'):
            if variant == 'rt' or path.name == 'SEG.dcm':
                target = folder / path.relative_to(delineated / variant / PID)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    prepared = prepare_patient(folder, PID, OPTIONS)['cet1']
    assert prepared.info['contour_source']['kind'] == 'rtstruct'
    assert any('RTSTRUCT RS.dcm and SEG SEG.dcm' in w and 'RTSTRUCT is used' in w
               for w in prepared.info['warnings'])


# ---------------------------------------------------------------- (b, c) registration

TRUTH_ANGLES, TRUTH_SHIFT = (1.5, -2.0, 4.0), (7.0, -3.0, 2.5)


@pytest.fixture(scope='module')
def head():
    # generator version 1: the registration phantom these tolerances were set on (version 2
    # draws the tumour's appearance slice by slice, an artefact of 3 mm slices that moves
    # rigid registration's worst point by up to 2 mm; see test_registration.py's phantom)
    plan = synth_plan(1, 0, matrix=64, pixel_mm=3.0, n_slices=24, slice_mm=3.0,
                      generator_version=1)
    volumes = render_patient(plan, np.random.default_rng(0))
    grid = Volume(np.zeros(plan.grid.shape, np.float32), tuple(plan.grid.spacing),
                  tuple(plan.grid.origin))
    centre = np.array(plan.gtv.center)
    truth = rigid_matrix(TRUTH_ANGLES, TRUTH_SHIFT, center_mm=centre)  # other frame -> FRAME
    moving_grid = Volume(np.zeros((22, 70, 70), np.float32), (2.7, 2.7, 3.3),
                         (grid.origin[0] - 5, grid.origin[1] + 3, grid.origin[2] + 2))
    rng = np.random.default_rng(1)

    def seen_from_other_frame(array):
        moved = moved_volume(Volume(array, grid.spacing, grid.origin), truth, moving_grid)
        return np.abs(moved.array + rng.normal(0, 12, moved.array.shape))

    return {'grid': grid, 'volumes': volumes, 'centre': centre, 'truth': truth,
            'moving_grid': moving_grid, 'other': seen_from_other_frame}


def _write_fixed_cet1(root, head, frame=FRAME):
    grid = head['grid']
    return write_mr_series(root / 'cet1', head['volumes']['t1'], spacing=grid.spacing,
                           origin=grid.origin, description='T1_CE_TRA', patient=HEADER,
                           frame_of_reference_uid=frame, series_number=3,
                           rng=np.random.default_rng(3))


def _gtv_contours(head, grid):
    return {'GTVnx': ellipsoid_contours(grid, head['centre'], (12.0, 10.0, 9.0))}


def _centroid_mm(prepared, cls='GTV'):
    points, weights = [], []
    for s in prepared.slices:
        mask = s.masks.get(cls)
        if mask is not None and mask.any():
            v, u = np.nonzero(mask)
            points.append(np.column_stack([s.origin_mm[0] + u * s.spacing_mm[0],
                                           s.origin_mm[1] + v * s.spacing_mm[1],
                                           np.full(len(u), s.z_mm)]))
    points = np.concatenate(points)
    return points.mean(axis=0), len(points)


@pytest.fixture(scope='module')
def t2_other_frame(tmp_path_factory, head):
    """cet1 (frame A, RTSTRUCT) + t2 (frame B = A moved by the truth); one copy with a REG."""
    base = tmp_path_factory.mktemp('t2_other_frame')
    for variant in ('rigid', 'reg'):
        root = base / variant / PID
        cet1 = _write_fixed_cet1(root, head)
        mg = head['moving_grid']
        write_mr_series(root / 't2', head['other'](head['volumes']['t2']), spacing=mg.spacing,
                        origin=mg.origin, description='T2_TSE_TRA', patient=HEADER,
                        frame_of_reference_uid=OTHER_FRAME, series_number=2,
                        rng=np.random.default_rng(4))
        write_rtstruct(root / 'RS.dcm', cet1, _gtv_contours(head, head['grid']), patient=HEADER,
                       rng=np.random.default_rng(5))
    # the REG registers frame B to frame A (its own): R_M_B = truth
    write_spatial_registration(base / 'reg' / PID / 'REG.dcm', spatial_registration_dataset(
        FRAME, [(OTHER_FRAME, head['truth'])]))
    return base


def test_t2_in_another_frame_is_registered_to_the_cet1_contours(t2_other_frame, head):
    options = PrepOptions(output_size=128, sequences=('t2', 'cet1'))
    start = time.perf_counter()
    prepared = prepare_patient(t2_other_frame / 'rigid' / PID, PID, options)
    seconds = time.perf_counter() - start
    cet1_centre, _ = _centroid_mm(prepared['cet1'])
    expected = transform_points(cet1_centre[None], np.linalg.inv(head['truth']))[0]
    got, n = _centroid_mm(prepared['t2'])
    error = float(np.linalg.norm(got - expected))
    source = prepared['t2'].info['contour_source']
    print(f'rigid MI t2 <- cet1: centroid error {error:.2f} mm ({n} px), {seconds:.1f} s, '
          f'quality {source["quality"]}')
    assert error < 1.0
    assert source['registration'] == 'rigid MI' and source['quality']['ok'] is True
    assert {'overlap', 'nmi_final', 'peak'} <= set(source['quality'])
    assert (source['kind'], source['drawn_on'], source['propagated']) == ('rtstruct', 'cet1', True)
    assert OTHER_FRAME not in repr(prepared['t2'].info) and FRAME not in repr(source)


def test_a_reg_object_gives_the_matrix_and_no_registration_runs(t2_other_frame, head,
                                                                monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('rigid_register must not run when a REG links the frames')

    monkeypatch.setattr(contour_masks, 'rigid_register', refuse)
    options = PrepOptions(output_size=128, sequences=('t2', 'cet1'))
    prepared = prepare_patient(t2_other_frame / 'reg' / PID, PID, options)
    cet1_centre, _ = _centroid_mm(prepared['cet1'])
    expected = transform_points(cet1_centre[None], np.linalg.inv(head['truth']))[0]
    error = float(np.linalg.norm(_centroid_mm(prepared['t2'])[0] - expected))
    print(f'DICOM REG t2 <- cet1: centroid error {error:.3f} mm')
    assert error < 0.5
    source = prepared['t2'].info['contour_source']
    assert (source['registration'], source['quality']) == ('DICOM REG', None)


def test_poor_registration_fails_the_patient_unless_accepted(t2_other_frame, tmp_path,
                                                            monkeypatch):
    real = contour_masks.rigid_register

    def noisy(fixed, moving, **kwargs):  # the t2 replaced by noise: nothing to align
        noise = np.random.default_rng(3).normal(500, 100, fixed.array.shape)
        return real(Volume(noise.astype(np.float32), fixed.spacing, fixed.origin,
                           fixed.direction), moving, **kwargs)

    monkeypatch.setattr(contour_masks, 'rigid_register', noisy)
    options = PrepOptions(output_size=64, sequences=('t2',))
    with pytest.raises(DataPrepError, match=rf"patient {PID}: rigid registration of the cet1 "
                                            r"series 'T1_CE_TRA' .* to the t2 series "
                                            r"'T2_TSE_TRA' .*--accept-poor-registration"):
        prepare_patient(t2_other_frame / 'rigid' / PID, PID, options)
    options.accept_poor_registration = True
    prepared = prepare_patient(t2_other_frame / 'rigid' / PID, PID, options)['t2']
    assert prepared.info['contour_source']['quality']['ok'] is False
    assert any('accepted' in w for w in prepared.info['warnings'])


@pytest.fixture(scope='module')
def ct_contoured(tmp_path_factory, head):
    """Planning CT (frame C, RTSTRUCT on it) + CE-T1 (frame A = C moved by the truth)."""
    base = tmp_path_factory.mktemp('ct')
    mg = head['moving_grid']
    scaled = head['other'](head['volumes']['t2']) / 1300.0  # CT-like: tissues swap brightness
    hu = 800.0 * np.sin(2.2 * np.pi * scaled) + np.random.default_rng(2).normal(0, 20,
                                                                              scaled.shape)
    for variant in ('rigid', 'reg'):
        root = base / variant / PID
        _write_fixed_cet1(root, head)
        ct = write_ct_series(root / 'ct', hu + 1024.0, spacing=mg.spacing, origin=mg.origin,
                             frame_of_reference_uid=CT_FRAME, rng=np.random.default_rng(6))
        write_rtstruct(root / 'RS_CT.dcm', ct, _gtv_contours(head, mg), patient=HEADER,
                       rng=np.random.default_rng(7))
    write_spatial_registration(base / 'reg' / PID / 'REG.dcm', spatial_registration_dataset(
        FRAME, [(CT_FRAME, head['truth'])]))
    return base


@pytest.mark.parametrize('variant, route, tol', [('reg', 'DICOM REG', 0.5),
                                                  ('rigid', 'rigid MI', 1.0)])
def test_contours_drawn_on_a_planning_ct_reach_the_mr(ct_contoured, head, variant, route, tol):
    root = ct_contoured / variant / PID
    start = time.perf_counter()
    prepared = prepare_patient(root, PID, OPTIONS)['cet1']
    seconds = time.perf_counter() - start
    ct = load_ct_series(next(s for s in scan_patient(root, PID) if s.modality == 'CT'))
    ct_mask = class_masks(read_structure_set(root / 'RS_CT.dcm', PID, PrepOptions()),
                          ct.volume)['GTV']
    ct_centre = ct.volume.index_to_lps(np.argwhere(ct_mask)[:, ::-1].astype(float)).mean(0)
    expected = transform_points(ct_centre[None], head['truth'])[0]
    error = float(np.linalg.norm(_centroid_mm(prepared)[0] - expected))
    source = prepared.info['contour_source']
    print(f'CT -> cet1 by {route}: centroid error {error:.2f} mm, {seconds:.1f} s')
    assert error < tol
    assert (source['kind'], source['drawn_on'], source['file'], source['registration']) == (
        'rtstruct', 'CT', 'RS_CT.dcm', route)


# ---------------------------------------------------------------- (d) check

def test_check_names_the_source_and_the_registration_route_without_running_it(
        t2_other_frame, ct_contoured, delineated, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('check must not register')

    monkeypatch.setattr(contour_masks, 'rigid_register', refuse)
    monkeypatch.setattr('data_prep.registration.rigid_register', refuse)
    both = PrepOptions(sequences=('t2', 'cet1'))
    cases = [
        (t2_other_frame / 'rigid' / PID, both, 't2',
         ('registered from cet1', 'rtstruct', 'rigid registration at conversion')),
        (t2_other_frame / 'reg' / PID, both, 't2',
         ('registered from cet1', 'rtstruct', 'REG found (REG.dcm)')),
        (ct_contoured / 'rigid' / PID, OPTIONS, 'cet1',
         ('registered from CT', 'rtstruct', 'rigid registration at conversion')),
        (ct_contoured / 'reg' / PID, OPTIONS, 'cet1',
         ('registered from CT', 'rtstruct', 'REG found (REG.dcm)')),
        (delineated / 'seg' / PID, OPTIONS, 'cet1', ('own SEG', 'seg', 'none')),
        (delineated / 'nifti' / PID, OPTIONS, 'cet1', ('own label map', 'label_map', 'none')),
    ]
    for folder, options, sequence, expected in cases:
        check = check_patient(folder, PID, options)
        record = next(r for r in check.sequences if r.sequence == sequence)
        assert check.would_convert, check.problems
        assert (record.contours, record.kind, record.registration) == expected, folder
        assert record.classes.get('GTV'), record
    from data_prep.cli import format_check
    text = format_check([check_patient(ct_contoured / 'reg' / PID, PID, OPTIONS)])
    assert 'contours: registered from CT RS_CT.dcm; classes: GTV: GTVnx; registration: ' \
           'REG found (REG.dcm)' in text
    assert 'planning CT ct/' in text


# ---------------------------------------------------------------- options

def test_label_values_in_the_mapping_file_and_the_command_line_options(tmp_path):
    from data_prep.cli import build_parser, options_from_args
    from data_prep.options import load_options

    mapping = tmp_path / 'mapping.json'
    mapping.write_text('{"label_values": {"GTV": [1], "GTVln": [2, 3]}}')
    (tmp_path / 'masks').mkdir()
    args = build_parser().parse_args(['convert', 'C', 'O', '--mapping', str(mapping), '--masks',
                                      str(tmp_path / 'masks'), '--accept-poor-registration'])
    options = options_from_args(args)
    assert options.label_values == {'GTV': [1], 'GTVln': [2, 3]}
    assert options.masks_dir == str((tmp_path / 'masks').resolve())
    assert options.accept_poor_registration is True
    for bad, message in (('{"label_values": {"GTV": [1], "GTVln": [1]}}', 'both GTV and GTVln'),
                         ('{"label_values": {"CTV": [1]}}', 'unknown class'),
                         ('{"label_values": {"GTV": [0]}}', 'positive integers')):
        mapping.write_text(bad)
        with pytest.raises(DataPrepError, match=message):
            load_options(mapping)
    with pytest.raises(DataPrepError, match='masks folder .* does not exist'):
        load_options(None, masks=tmp_path / 'nowhere')
