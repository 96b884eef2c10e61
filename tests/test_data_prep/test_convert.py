"""convert_cohort on fake prepared patients: layout, COCO content, splits, atomicity,
resume, overwrite, determinism, parallel == serial, and one run on the synthetic cohort."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO

from data_prep import convert
from data_prep.clinical import CLINICAL_COLUMNS
from data_prep.options import PrepOptions
from data_prep.types import DataPrepError, PreparedSequence, PreparedSlice

SIZE = 32  # px; the converter takes the image shape from the slices
N_SLICES = 4


def fake_prepare(patient_dir: Path, patient_id: str, options: PrepOptions, *,
                 require_contours: bool = True) -> dict[str, PreparedSequence]:
    """Seeded per patient: 4 slices per sequence, a GTV with a hole on slice 1, two nodes on
    slice 2."""
    rng = np.random.default_rng(int(patient_id[-3:]))
    prepared = {}
    for sequence in options.sequences:
        slices = []
        for index in range(N_SLICES):
            masks = {}
            if index == 1:
                masks['GTV'] = np.zeros((SIZE, SIZE), bool)
                masks['GTV'][4:10, 5:12] = True
                masks['GTV'][6, 8] = False  # a hole: written as RLE
            if index == 2:
                masks['GTVln'] = np.zeros((SIZE, SIZE), bool)
                masks['GTVln'][20:23, 2:5] = masks['GTVln'][25:30, 25:28] = True
            slices.append(PreparedSlice(
                index=index, image=rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8),
                masks=masks, z_mm=-20.0 + index, spacing_mm=(0.5, 0.5),
                origin_mm=(-8.0 + 0.1 * int(patient_id[-3:]), -8.25)))
        prepared[sequence] = PreparedSequence(
            patient_id, sequence, slices[::-1],  # unsorted on purpose
            info={'series_description': f'{sequence} tra', 'source_spacing_mm': (0.9, 0.9, 3.0),
                  'warnings': [f'{sequence}: note'] if patient_id == 'NPC002' else [],
                  'series_instance_uid': '1.2.3.4'})
    return prepared


def failing_on(patient_id: str):
    def prepare(patient_dir, pid, options, *, require_contours=True):
        if pid == patient_id:
            raise DataPrepError(f'patient {pid}: broken series')
        return fake_prepare(patient_dir, pid, options)
    return prepare


@pytest.fixture
def cohort(tmp_path) -> Path:
    """8 patient folders (one file each) and their clinical rows; msom 1 for odd ids."""
    root = tmp_path / 'cohort'
    rows = []
    for i in range(1, 9):
        pid = f'NPC{i:03d}'
        (root / pid).mkdir(parents=True)
        (root / pid / 'image.dcm').write_bytes(b'fake')
        rows.append({'patient_id': pid, 'age': str(40 + i), 'msom': str(i % 2),
                     'hospital_number': f'H{i}'})
    table = pd.DataFrame(rows).reindex(columns=[*CLINICAL_COLUMNS, 'hospital_number'])
    table.to_csv(root / 'clinical.csv', index=False)
    return root


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(convert, 'prepare_patient', fake_prepare)


def run(cohort: Path, out: Path, **kwargs) -> dict:
    return convert.convert_cohort(cohort, out, progress=False, **kwargs)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_output_layout_and_coco_content(cohort, tmp_path, fake):
    out = tmp_path / 'out'
    summary = run(cohort, out)
    assert sorted(p.name for p in out.iterdir()) == ['cet1', 'clinical.csv', 'manifest.json',
                                                      't1', 't2']
    clinical = pd.read_csv(out / 'clinical.csv', dtype=str)
    assert 'hospital_number' not in clinical.columns
    splits = dict(zip(clinical['patient_id'], clinical['split']))
    assert summary['patients'] == {'train': 6, 'val': 2}
    for sequence in ('t1', 't2', 'cet1'):
        seen = {}
        for split in ('train', 'val'):
            coco = COCO(str(out / sequence / 'annotations' / f'{split}.json'))
            images = coco.dataset['images']
            patients = sorted({image['patient_id'] for image in images})
            assert patients == sorted(p for p, s in splits.items() if s == split)
            seen[split] = set(patients)
            assert len(images) == N_SLICES * len(patients)
            assert [i['id'] for i in images] == list(range(1, len(images) + 1))
            assert [(i['patient_id'], i['slice_index']) for i in images] == sorted(
                (i['patient_id'], i['slice_index']) for i in images)
            for image in images:
                assert (out / sequence / 'images' / image['file_name']).is_file()
                assert image['file_name'] == (f'{image["patient_id"]}_{sequence}_'
                                              f'{image["slice_index"]:04d}.jpg')
                assert image['sequence'] == sequence and image['height'] == SIZE
                assert image['z_mm'] == -20.0 + image['slice_index']
                assert image['spacing_mm'] == [0.5, 0.5]
                assert image['origin_mm'] == [round(-8.0 + 0.1 * int(image['patient_id'][-3:]), 6),
                                              -8.25]
                categories = sorted(coco.anns[a]['category_id']
                                    for a in coco.getAnnIds(imgIds=[image['id']]))
                assert categories == {1: [1], 2: [2, 2]}.get(image['slice_index'], [])
            assert summary['sequences'][sequence][split]['annotations'] == 3 * len(patients)
        assert not seen['train'] & seen['val']
        assert len(list((out / sequence / 'images').iterdir())) == N_SLICES * 8


def test_manifest_has_info_and_parameters_but_no_identifiers(cohort, tmp_path, fake, caplog):
    out = tmp_path / 'out'
    summary = run(cohort, out, seed=3)
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['format'] == convert.MANIFEST_FORMAT
    assert manifest['parameters']['seed'] == 3 and manifest['parameters']['val_fraction'] == 0.25
    assert manifest['parameters']['options']['sequences'] == ['t1', 't2', 'cet1']
    entry = manifest['patients']['NPC002']['sequences']['cet1']
    assert entry['series_description'] == 'cet1 tra'
    assert entry['source_spacing_mm'] == [0.9, 0.9, 3.0]
    assert entry['warnings'] == ['cet1: note'] and entry['n_images'] == N_SLICES
    assert list(summary['warnings']) == ['NPC002']
    text = '\n'.join(p.read_text() for p in out.rglob('*') if p.suffix in ('.json', '.csv'))
    assert '1.2.3.4' not in text and 'series_instance_uid' not in text
    assert 'H1' not in text and str(cohort) not in text
    assert 'series_instance_uid' in caplog.text  # its removal is logged


def test_failure_leaves_no_output_and_a_rerun_resumes(cohort, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    monkeypatch.setattr(convert, 'prepare_patient', failing_on('NPC003'))
    with pytest.raises(DataPrepError, match='NPC003'):
        run(cohort, out)
    assert not out.exists()
    assert convert.staging_dir(out).is_dir()

    calls = []

    def counting(patient_dir, pid, options, *, require_contours=True):
        calls.append(pid)
        return fake_prepare(patient_dir, pid, options)
    monkeypatch.setattr(convert, 'prepare_patient', counting)
    summary = run(cohort, out)
    assert calls == ['NPC003', 'NPC004', 'NPC005', 'NPC006', 'NPC007', 'NPC008']
    assert (summary['converted_patients'], summary['reused_patients']) == (6, 2)
    assert not convert.staging_dir(out).exists()

    fresh = tmp_path / 'fresh'
    run(cohort, fresh)
    assert tree_bytes(out) == tree_bytes(fresh)


def test_other_options_discard_the_partial_work(cohort, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    monkeypatch.setattr(convert, 'prepare_patient', failing_on('NPC008'))
    with pytest.raises(DataPrepError):
        run(cohort, out)
    calls = []

    def counting(patient_dir, pid, options, *, require_contours=True):
        calls.append(pid)
        return fake_prepare(patient_dir, pid, options)
    monkeypatch.setattr(convert, 'prepare_patient', counting)
    run(cohort, out, options=PrepOptions(sequences=('t2',)))
    assert calls == [f'NPC{i:03d}' for i in range(1, 9)]  # nothing re-used
    assert sorted(p.name for p in out.iterdir()) == ['clinical.csv', 'manifest.json', 't2']


def test_resume_redoes_a_patient_whose_input_changed(cohort, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    monkeypatch.setattr(convert, 'prepare_patient', failing_on('NPC008'))
    with pytest.raises(DataPrepError):
        run(cohort, out)
    (cohort / 'NPC001' / 'extra.dcm').write_bytes(b'new file')
    calls = []

    def counting(patient_dir, pid, options, *, require_contours=True):
        calls.append(pid)
        return fake_prepare(patient_dir, pid, options)
    monkeypatch.setattr(convert, 'prepare_patient', counting)
    run(cohort, out)
    assert calls == ['NPC001', 'NPC008']


def test_existing_output_is_refused_unless_overwrite(cohort, tmp_path, fake):
    out = tmp_path / 'out'
    run(cohort, out, seed=0)
    before = tree_bytes(out)
    with pytest.raises(DataPrepError, match='already exists'):
        run(cohort, out, seed=1)
    assert tree_bytes(out) == before
    run(cohort, out, seed=1, overwrite=True)
    assert json.loads((out / 'manifest.json').read_text())['parameters']['seed'] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cohort', 'out']  # nothing left aside


def test_overwrite_never_replaces_a_foreign_folder(cohort, tmp_path, fake):
    foreign = tmp_path / 'documents'
    foreign.mkdir()
    (foreign / 'thesis.txt').write_text('precious')
    with pytest.raises(DataPrepError, match='not a data_prep output'):
        run(cohort, foreign, overwrite=True)
    assert (foreign / 'thesis.txt').read_text() == 'precious'
    with pytest.raises(DataPrepError, match='outside the cohort'):
        run(cohort, cohort / 'out')


def test_two_runs_give_identical_bytes_and_parallel_equals_serial(cohort, tmp_path, fake):
    if multiprocessing.get_start_method() != 'fork':
        pytest.skip('the fake prepare_patient reaches worker processes only when forked')
    run(cohort, tmp_path / 'a')
    run(cohort, tmp_path / 'b')
    run(cohort, tmp_path / 'parallel', workers=3)
    reference = tree_bytes(tmp_path / 'a')
    assert len(reference) == 3 * 8 * N_SLICES + 3 * 2 + 2
    assert tree_bytes(tmp_path / 'b') == reference
    assert tree_bytes(tmp_path / 'parallel') == reference


def test_parallel_failure_leaves_no_output(cohort, tmp_path, monkeypatch):
    if multiprocessing.get_start_method() != 'fork':
        pytest.skip('the fake prepare_patient reaches worker processes only when forked')
    monkeypatch.setattr(convert, 'prepare_patient', failing_on('NPC005'))
    with pytest.raises(DataPrepError, match='NPC005'):
        run(cohort, tmp_path / 'out', workers=2)
    assert not (tmp_path / 'out').exists()


def test_split_file_overrides_the_stratified_split(cohort, tmp_path, fake):
    split_file = tmp_path / 'split.csv'
    split_file.write_text('patient_id,split\n' + ''.join(
        f'NPC{i:03d},{"val" if i <= 3 else "train"}\n' for i in range(1, 9)))
    summary = run(cohort, tmp_path / 'out', split_file=split_file)
    assert summary['patients'] == {'train': 5, 'val': 3}
    clinical = pd.read_csv(tmp_path / 'out' / 'clinical.csv', dtype=str)
    assert list(clinical.loc[clinical['split'] == 'val', 'patient_id']) == ['NPC001', 'NPC002',
                                                                           'NPC003']
    manifest = json.loads((tmp_path / 'out' / 'manifest.json').read_text())
    assert manifest['parameters']['split_source'].startswith('split file sha256:')


def coco_patients(out: Path, sequence: str) -> dict[str, set[str]]:
    """annotation file stem -> patients of its images, for every json of one sequence."""
    return {path.stem: {image['patient_id'] for image in json.loads(path.read_text())['images']}
            for path in sorted((out / sequence / 'annotations').iterdir())}


def test_test_fraction_writes_a_held_out_test_split(cohort, tmp_path, fake):
    out = tmp_path / 'out'
    summary = run(cohort, out, val_fraction=0.25, test_fraction=0.25, seed=1)
    assert summary['patients'] == {'train': 4, 'val': 2, 'test': 2}  # ceil(0.25 * 8) each
    clinical = pd.read_csv(out / 'clinical.csv', dtype=str)
    column = dict(zip(clinical['patient_id'], clinical['split']))
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['parameters']['test_fraction'] == 0.25
    assert {pid: entry['split'] for pid, entry in manifest['patients'].items()} == column
    for sequence in ('t1', 't2', 'cet1'):
        by_file = coco_patients(out, sequence)
        assert sorted(by_file) == ['test', 'train', 'val']
        everyone = [pid for patients in by_file.values() for pid in patients]
        assert sorted(everyone) == sorted(column)  # every patient in exactly one file
        assert {pid: split for split, ids in by_file.items() for pid in ids} == column
        assert summary['sequences'][sequence]['test']['images'] == 2 * N_SLICES
        assert manifest['counts'][sequence]['test']['patients'] == 2
        assert len(list((out / sequence / 'images').iterdir())) == N_SLICES * 8


def test_without_test_patients_there_is_no_test_json(cohort, tmp_path, fake):
    out = tmp_path / 'out'
    summary = run(cohort, out)
    assert list(summary['patients']) == ['train', 'val']
    clinical = pd.read_csv(out / 'clinical.csv', dtype=str)
    assert set(clinical['split']) == {'train', 'val'}
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['parameters']['test_fraction'] == 0.0
    for sequence in ('t1', 't2', 'cet1'):
        assert sorted(coco_patients(out, sequence)) == ['train', 'val']
        assert list(manifest['counts'][sequence]) == ['train', 'val']


def test_split_file_with_test_patients_writes_test_json(cohort, tmp_path, fake):
    split_file = tmp_path / 'split.csv'
    names = {1: 'test', 2: 'val', 3: 'test', 4: 'val'}
    split_file.write_text('patient_id,split\n' + ''.join(
        f'NPC{i:03d},{names.get(i, "train")}\n' for i in range(1, 9)))
    summary = run(cohort, tmp_path / 'out', split_file=split_file)
    assert summary['patients'] == {'train': 4, 'val': 2, 'test': 2}
    assert coco_patients(tmp_path / 'out', 'cet1')['test'] == {'NPC001', 'NPC003'}
    clinical = pd.read_csv(tmp_path / 'out' / 'clinical.csv', dtype=str)
    assert list(clinical.loc[clinical['split'] == 'test', 'patient_id']) == ['NPC001', 'NPC003']
    with pytest.raises(DataPrepError, match='cannot be used with a split file'):
        run(cohort, tmp_path / 'other', split_file=split_file, test_fraction=0.25)


def test_bad_test_fraction_is_refused_before_writing(cohort, tmp_path, fake):
    for val_fraction, test_fraction in ((0.25, 1.0), (0.6, 0.4), (0.25, -0.5)):
        with pytest.raises(DataPrepError, match='test_fraction'):
            run(cohort, tmp_path / 'out', val_fraction=val_fraction, test_fraction=test_fraction)
    assert not (tmp_path / 'out').exists() and not convert.staging_dir(tmp_path / 'out').exists()


def test_resume_with_a_test_split_reuses_the_fragments(cohort, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    monkeypatch.setattr(convert, 'prepare_patient', failing_on('NPC008'))
    with pytest.raises(DataPrepError):
        run(cohort, out)  # a two-way run fails ...
    calls = []

    def counting(patient_dir, pid, options, *, require_contours=True):
        calls.append(pid)
        return fake_prepare(patient_dir, pid, options)
    monkeypatch.setattr(convert, 'prepare_patient', counting)
    run(cohort, out, test_fraction=0.25)  # ... and the three-way re-run re-uses its patients
    assert calls == ['NPC008']
    run(cohort, tmp_path / 'fresh', test_fraction=0.25)
    assert tree_bytes(out) == tree_bytes(tmp_path / 'fresh')


@pytest.mark.parametrize('files, message', [
    ({'train': ['A'], 'val': ['B'], 'test': ['B']}, r"more than one split: \['B'\]"),
    ({'train': ['A', 'C'], 'val': ['B'], 'test': ['C']}, r"more than one split: \['C'\]"),
    ({'train': ['A'], 'test': ['B']}, 'expected train.json, val.json and optionally test'),
    ({'train': ['A'], 'val': ['B'], 'holdout': ['C']}, 'expected train.json, val.json'),
])
def test_split_integrity_check_covers_the_test_split(tmp_path, files, message):
    for split, patients in files.items():
        images = [{'patient_id': pid, 'file_name': f'{pid}_t2_0000.jpg'} for pid in patients]
        path = tmp_path / 't2' / 'annotations' / f'{split}.json'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({'images': images}))
        (tmp_path / 't2' / 'images').mkdir(exist_ok=True)
        for image in images:
            (tmp_path / 't2' / 'images' / image['file_name']).write_bytes(b'jpg')
    with pytest.raises(RuntimeError, match=message):
        convert._check_split_integrity(tmp_path, 't2')


def test_bad_input_is_refused_before_writing(cohort, tmp_path, fake):
    (cohort / 'NPC099').mkdir()
    with pytest.raises(DataPrepError, match=r"without a row in clinical.csv: \['NPC099'\]"):
        run(cohort, tmp_path / 'out')
    assert not (tmp_path / 'out').exists() and not convert.staging_dir(tmp_path / 'out').exists()
    with pytest.raises(DataPrepError, match='workers'):
        run(cohort, tmp_path / 'out', workers=0)


def test_missing_sequence_from_prepare_is_an_error(cohort, tmp_path, monkeypatch):
    def without_t2(patient_dir, pid, options, *, require_contours=True):
        prepared = fake_prepare(patient_dir, pid, options)
        del prepared['t2']
        return prepared
    monkeypatch.setattr(convert, 'prepare_patient', without_t2)
    with pytest.raises(DataPrepError, match=r"NPC001.*\['t2'\]"):
        run(cohort, tmp_path / 'out')


# --- integration with the synthetic cohort (data_prep.synth + data_prep.patient) ---------

PHI_KEYWORDS = ('PatientName', 'PatientID', 'PatientBirthDate', 'AccessionNumber',
                'InstitutionName', 'StudyDate', 'StudyInstanceUID', 'SeriesInstanceUID',
                'SOPInstanceUID', 'FrameOfReferenceUID')


def identifying_values(cohort: Path) -> set[str]:
    """Identifying header values (8+ characters) of every DICOM file of the cohort."""
    import pydicom

    values = set()
    for path in cohort.rglob('*'):
        if path.is_file() and path.name not in ('clinical.csv', 'notes.txt'):
            header = pydicom.dcmread(path, stop_before_pixels=True)
            values |= {str(header.get(k, '')) for k in PHI_KEYWORDS}
    return {v for v in values if len(v) >= 8}


@pytest.fixture(scope='module')
def serial_parallel_cohort(tmp_path_factory) -> Path:
    from data_prep.synth import synthesize_cohort

    return synthesize_cohort(tmp_path_factory.mktemp('synth') / 'cohort', 2, seed=0, matrix=64,
                             pixel_mm=3.6, n_slices=8, slice_mm=5.0, progress=False)


def test_synthetic_cohort_converts_identically_serial_and_parallel(serial_parallel_cohort,
                                                                  tmp_path):
    serial = run(serial_parallel_cohort, tmp_path / 'serial', val_fraction=0.5)
    run(serial_parallel_cohort, tmp_path / 'parallel', val_fraction=0.5, workers=2)
    files = tree_bytes(tmp_path / 'serial')
    assert tree_bytes(tmp_path / 'parallel') == files
    assert serial['patients'] == {'train': 1, 'val': 1}

    identifiers = identifying_values(serial_parallel_cohort)
    assert len(identifiers) > 10
    leaks = {v for v in identifiers for content in files.values() if v.encode() in content}
    assert not leaks

    for sequence in ('t1', 't2', 'cet1'):
        for split in ('train', 'val'):
            coco = COCO(str(tmp_path / 'serial' / sequence / 'annotations' / f'{split}.json'))
            assert {a['category_id'] for a in coco.dataset['annotations']} == {1, 2}
            for annotation in coco.dataset['annotations']:
                image = coco.imgs[annotation['image_id']]
                mask = coco.annToMask(annotation)
                assert mask.shape == (image['height'], image['width']) == (512, 512)
                assert int(mask.sum()) == annotation['area'] > 0


def test_mmdetection_loads_the_written_masks_exactly(cohort, tmp_path, fake):
    """CocoDataset + LoadAnnotations(poly2mask=True) reads polygons and RLE as written."""
    pytest.importorskip('mmdet')
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules

    register_all_modules()
    out = tmp_path / 'out'
    run(cohort, out)
    dataset = CocoDataset(
        data_root=str(out / 'cet1'), ann_file='annotations/train.json',
        data_prefix=dict(img='images/'), metainfo=dict(classes=('GTV', 'GTVln')),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=True),
                  dict(type='PackDetInputs')])
    coco = COCO(str(out / 'cet1' / 'annotations' / 'train.json'))
    assert len(dataset) == 2 * 6  # slices 1 and 2 of the 6 train patients
    kinds = set()
    for index in range(len(dataset)):
        sample = dataset[index]['data_samples']
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[sample.img_id]))
        masks = sample.gt_instances.masks.to_ndarray().astype(bool)
        assert len(masks) == len(annotations) > 0
        for mask, annotation in zip(masks, annotations):
            assert np.array_equal(mask, coco.annToMask(annotation).astype(bool))
            assert mask.sum() == annotation['area']
            kinds.add(type(annotation['segmentation']).__name__)
        assert sample.gt_instances.labels.tolist() == [a['category_id'] - 1 for a in annotations]
    assert kinds == {'list', 'dict'}  # polygons and RLE


def test_bad_prepared_slice_names_patient_sequence_and_slice(cohort, tmp_path, monkeypatch):
    def wrong_mask(patient_dir, pid, options, *, require_contours=True):
        prepared = fake_prepare(patient_dir, pid, options)
        prepared['t1'].slices[0].masks['GTV'] = np.zeros((SIZE, SIZE + 1), bool)
        return prepared
    monkeypatch.setattr(convert, 'prepare_patient', wrong_mask)
    with pytest.raises(DataPrepError, match=r'patient NPC001, t1 slice \d+: GTV mask shape'):
        run(cohort, tmp_path / 'out')


# --- a cohort with CE-T1 only (--sequences cet1) ----------------------------------------

def test_a_cet1_only_cohort_converts_completely_with_sequences_cet1(tmp_path):
    from data_prep.testing.tiny_cohorts import write_cet1_only_cohort

    cohort = write_cet1_only_cohort(tmp_path / 'cohort')
    out = tmp_path / 'out'
    options = PrepOptions(output_size=64, sequences=('cet1',))
    summary = run(cohort, out, val_fraction=0.5, options=options)
    assert sorted(p.name for p in out.iterdir()) == ['cet1', 'clinical.csv', 'manifest.json']
    assert sorted(p.name for p in (out / 'cet1').iterdir()) == ['annotations', 'images']
    assert sorted(p.name for p in (out / 'cet1' / 'annotations').iterdir()) == [
        'train.json', 'val.json']
    names = set()
    for split in ('train', 'val'):
        coco = json.loads((out / 'cet1' / 'annotations' / f'{split}.json').read_text())
        assert len({i['patient_id'] for i in coco['images']}) == 2
        assert {a['category_id'] for a in coco['annotations']} == {1, 2}
        names |= {image['file_name'] for image in coco['images']}
    assert {p.name for p in (out / 'cet1' / 'images').iterdir()} == names
    assert len(names) == 4 * 13  # 12 mm of slice centres at 1 mm: 13 slices per patient
    clinical = pd.read_csv(out / 'clinical.csv', dtype=str)
    assert clinical['patient_id'].tolist() == ['NPC001', 'NPC002', 'NPC003', 'NPC004']
    assert sorted(clinical['split']) == ['train', 'train', 'val', 'val']
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['parameters']['sequences'] == ['cet1']
    assert list(manifest['counts']) == ['cet1'] and list(summary['sequences']) == ['cet1']
    for entry in manifest['patients'].values():
        assert list(entry['sequences']) == ['cet1']
        info = entry['sequences']['cet1']
        assert info['contour_source'] == {'kind': 'rtstruct', 'drawn_on': 'cet1',
                                          'propagated': False, 'file': 'RS.dcm',
                                          'registration': 'none', 'quality': None}
        assert info['series_selection'] == {
            'chosen': {'description': 'T1_FS_TRA_POST', 'folder': 'MR'}, 'rejected': [],
            'reason': 'only candidate'}

    with pytest.raises(DataPrepError, match='patient NPC001: no series matches t1'):
        run(cohort, tmp_path / 'all_three', options=PrepOptions(output_size=64))


def test_a_second_converter_into_the_same_output_is_refused_naming_the_first(cohort, tmp_path,
                                                                             fake):
    import subprocess
    import sys

    from data_prep.folder_lock import lock_path
    out = tmp_path / 'out'
    first = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        lock_path(out).write_text(json.dumps({
            'pid': first.pid, 'host': __import__('socket').gethostname(),
            'command': f'convert {cohort} into {out}', 'started': '2026-12-07 10:00:00'}))
        with pytest.raises(DataPrepError, match=f'process {first.pid}.*convert'):
            run(cohort, out, seed=0)
        assert sorted(p.name for p in tmp_path.iterdir()) == ['cohort', 'out.lock']
    finally:
        first.kill()
        first.wait()
    run(cohort, out, seed=0)  # its process gone, the lock is taken over and removed at the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cohort', 'out']
