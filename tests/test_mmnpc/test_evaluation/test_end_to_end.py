"""evaluate_end_to_end on hand-made rows: the deployment cut-off sees training patients only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmnpc.evaluation import delong_auc_ci, youden_cutoff
from mmnpc.evaluation.end_to_end import ROW_COLUMNS, deployment_record, evaluate_end_to_end


def rows(seed: int = 0, n_train: int = 12, n_test: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    label = np.array([i % 2 for i in range(n)])
    e2e = rng.uniform(size=n) * 0.6 + 0.3 * label
    e2e[3] = np.nan  # a training patient whose tumour the detector missed
    table = pd.DataFrame({
        'patient_id': [f'P{i:02d}' for i in range(n)],
        'split': ['train'] * n_train + ['test'] * n_test, 'label': label,
        'contour_score': rng.uniform(size=n), 'end_to_end_score': e2e, 'n_slices': 30,
        'n_slices_looked_at': 10, 'n_slices_detected': 4, 'n_slices_scored': 4,
        'n_tumour_slices': 5, 'n_tumour_slices_detected': 4, 'slice_recall': 0.8,
        'slice_precision': 1.0, 'tumour_found': ~np.isnan(e2e)})
    return table[list(ROW_COLUMNS)]


def test_deployment_cutoff_is_youden_on_the_scored_training_patients():
    table = rows()
    evaluation = evaluate_end_to_end(table)
    train = table[(table['split'] == 'train') & table['end_to_end_score'].notna()]
    cutoff = youden_cutoff(train['end_to_end_score'], train['label'])
    assert evaluation.report['end_to_end_cutoff'] == pytest.approx(cutoff)
    assert deployment_record(evaluation)['cutoff'] == pytest.approx(cutoff)
    test = table[table['split'] == 'test']
    assert evaluation.report['end_to_end_auc'] == pytest.approx(
        delong_auc_ci(test['end_to_end_score'], test['label']).auc)


@pytest.mark.parametrize('seed', range(5))
def test_nothing_about_the_test_patients_moves_the_cutoff(seed):
    table = rows()
    before = evaluate_end_to_end(table).report
    changed = table.copy()
    test = changed['split'] == 'test'
    rng = np.random.default_rng(100 + seed)
    changed.loc[test, 'end_to_end_score'] = rng.uniform(size=test.sum())
    changed.loc[test, 'label'] = rng.integers(0, 2, size=test.sum())
    changed.loc[changed.index[test][0], 'label'] = 0
    changed.loc[changed.index[test][1], 'label'] = 1
    after = evaluate_end_to_end(changed)
    # exactly: the deployment and intention-to-treat cut-offs are fitted on train rows only
    assert after.report['end_to_end_cutoff'] == before['end_to_end_cutoff']
    assert after.report['itt_cutoff'] == before['itt_cutoff']


def test_intention_to_treat_gives_missed_patients_the_fallback_and_drops_nobody():
    from mmnpc.evaluation.end_to_end import FALLBACK_PREVALENCE, intention_to_treat_scores

    table = rows()
    table.loc[15, 'end_to_end_score'] = np.nan  # a test patient missed by the detector
    scores, used, name = intention_to_treat_scores(table)
    prevalence = table.loc[table['split'] == 'train', 'label'].mean()
    assert name == FALLBACK_PREVALENCE and used.tolist() == [i in (3, 15) for i in range(20)]
    assert scores[3] == scores[15] == pytest.approx(prevalence)
    assert scores[0] == table.loc[0, 'end_to_end_score']
    evaluation = evaluate_end_to_end(table)
    test = table['split'] == 'test'
    assert evaluation.report['itt_n_val_patients'] == test.sum()  # nobody dropped
    assert evaluation.report['end_to_end_n_val_patients'] == test.sum() - 1
    assert evaluation.report['test_n_fallback'] == 1 and evaluation.report['train_n_fallback'] == 1
    assert evaluation.report['itt_auc'] == pytest.approx(
        delong_auc_ci(scores[test], table.loc[test, 'label']).auc)
    # the fallback never reads a test patient's label
    flipped = table.copy()
    flipped.loc[test, 'label'] = 1 - flipped.loc[test, 'label']
    assert intention_to_treat_scores(flipped)[0][15] == scores[15]
    # a fallback model's scores, and a refusal when one is missing
    fallback = {p: 0.123 for p in table['patient_id']}
    model_scores, _, name = intention_to_treat_scores(table, fallback)
    assert model_scores[15] == 0.123 and name == 'fallback model score'
    with pytest.raises(ValueError, match='P15'):
        intention_to_treat_scores(table, {p: 0.1 for p in table['patient_id'] if p != 'P15'})
    with pytest.raises(ValueError, match='not a number'):
        intention_to_treat_scores(table, dict(fallback, P15=float('nan')))


def test_contour_units_are_the_region_datasets_windows_for_a_region_model():
    from mmnpc.evaluation.end_to_end import contour_units

    images = [{'id': i, 'patient_id': 'P1', 'slice_index': i, 'file_name': f'{i}.jpg'}
              for i in (1, 2)]
    coco = {'images': images, 'categories': [{'id': 1, 'name': 'GTV'}, {'id': 2, 'name': 'GTVln'}],
            'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [5, 5, 10, 10],
                             'area': 80},
                            {'id': 2, 'image_id': 1, 'category_id': 2, 'bbox': [50, 5, 4, 4],
                             'area': 12},
                            {'id': 3, 'image_id': 2, 'category_id': 1, 'bbox': [6, 6, 8, 8],
                             'area': 50}]}
    region_cfg = {'type': 'MsomRegionDataset', 'region_classes': ('GTV', 'GTVln'),
                  'regions_per_structure': None}
    assert contour_units(coco, region_cfg, 'x') == {
        'P1': [(1, [5.0, 5.0, 15.0, 15.0]), (1, [50.0, 5.0, 54.0, 9.0]), (2, [6.0, 6.0, 14.0, 14.0])]}
    nodes = dict(region_cfg, region_classes=('GTVln',))
    assert contour_units(coco, nodes, 'x') == {'P1': [(1, [50.0, 5.0, 54.0, 9.0])]}
    assert contour_units(coco, {'type': 'MsomSliceDataset'}, 'x') == {'P1': [(1, None), (2, None)]}


def _coco(n_patients: int, slices: int = 3) -> dict:
    images, annotations = [], []
    for p in range(n_patients):
        for k in range(slices):
            image_id = p * slices + k
            images.append({'id': image_id, 'patient_id': f'P{p:02d}', 'slice_index': k})
            annotations.append({'id': image_id, 'image_id': image_id, 'category_id': 1,
                                'area': 10.0})
    return {'images': images, 'annotations': annotations,
            'categories': [{'id': 1, 'name': 'GTV'}, {'id': 2, 'name': 'GTVln'}]}


def test_sample_patients_keeps_whole_patients_stratified_and_reproducible():
    from mmnpc.evaluation.end_to_end import sample_patients
    coco = _coco(30)
    labels = {f'P{p:02d}': float(p % 3 == 0) for p in range(30)}  # 10 MSOM of 30
    sample = sample_patients(coco, labels, 12, seed=4)
    kept = {im['patient_id'] for im in sample['images']}
    assert len(kept) == 12 and sum(labels[p] for p in kept) == 4  # the cohort's 1 in 3
    assert len(sample['images']) == 36  # every slice of a kept patient
    assert {a['image_id'] for a in sample['annotations']} == {im['id'] for im in sample['images']}
    assert sample['categories'] == coco['categories']
    assert sample == sample_patients(coco, labels, 12, seed=4)
    assert kept != {im['patient_id'] for im in sample_patients(coco, labels, 12, 5)['images']}
    assert sample_patients(coco, labels, 30, seed=4) is coco
    with pytest.raises(ValueError, match='at least 2'):
        sample_patients(coco, labels, 1, seed=4)


def test_sample_training_patients_cuts_the_training_split_only_and_says_so(tmp_path):
    from mmnpc.evaluation.end_to_end import CohortInputs, sample_training_patients
    coco = _coco(30)
    labels = {f'P{p:02d}': float(p % 3 == 0) for p in range(30)}
    cohorts = [CohortInputs('test', coco, 'test.json', tmp_path),
               CohortInputs('train', coco, 'train.json', tmp_path)]
    cut, note = sample_training_patients(cohorts, labels, 9, seed=0)
    assert cut[0] is cohorts[0]  # the evaluated patients: all of them
    assert len({im['patient_id'] for im in cut[1].coco['images']}) == 9
    assert cut[1].tumour_ids == {im['id'] for im in cut[1].coco['images']}
    assert note.startswith('train patients scored: 9 of 30') and 'seed 0' in note


def test_score_cohort_takes_rows_scored_earlier_and_hands_on_the_new_ones(tmp_path):
    import cv2

    from mmnpc.evaluation.end_to_end import CohortInputs, score_cohort
    coco = _coco(2, slices=2)
    for image in coco['images']:
        image['file_name'] = f'{image["id"]}.jpg'
        cv2.imwrite(str(tmp_path / image['file_name']), np.full((8, 8), 100, np.uint8))
    cohort = CohortInputs('test', coco, 'test.json', tmp_path)
    scored = []

    def score_fn_for(patient_id):
        assert patient_id != 'P00', 'a stored patient must not be scored again'
        return lambda slices, spacing_mm: ({0: object()}, [0, 1], {0: 0.25})

    stored = {'patient_id': 'P00', 'split': 'test', 'label': 1, 'contour_score': 0.9,
              'end_to_end_score': 0.8}
    table = score_cohort([cohort], {'type': 'MsomSliceDataset'}, {'P00': 1, 'P01': 0},
                         score_fn_for, lambda p: (lambda slices, boxes, spacing_mm: [0.5] * len(
                             slices)), done={('test', 'P00'): stored}, on_row=scored.append)
    assert list(table['patient_id']) == ['P00', 'P01']
    assert table.loc[0, 'end_to_end_score'] == 0.8  # as stored
    assert [row['patient_id'] for row in scored] == ['P01']
    assert scored[0]['end_to_end_score'] == 0.25 and scored[0]['contour_score'] == 0.5


def test_row_store_keeps_rows_of_its_fingerprint_only(tmp_path):
    from mmnpc.evaluation.row_store import RowStore, file_identity, fingerprint_of
    key = fingerprint_of({'classifier': 'a.pth', 'thr': 0.5})
    assert key == fingerprint_of({'thr': 0.5, 'classifier': 'a.pth'})  # key order is no matter
    store = RowStore(tmp_path / 'rows', key)
    assert store.load() == {}
    row = {'patient_id': 'P1', 'split': 'test', 'label': np.int64(1),
           'contour_score': np.float32(0.5), 'end_to_end_score': float('nan')}
    store.save(row)
    loaded = RowStore(tmp_path / 'rows', key).load()
    assert list(loaded) == [('test', 'P1')] and loaded[('test', 'P1')]['label'] == 1
    assert np.isnan(loaded[('test', 'P1')]['end_to_end_score'])
    other = RowStore(tmp_path / 'rows', fingerprint_of({'classifier': 'b.pth', 'thr': 0.5}))
    assert other.load() == {} and other.n_stale == 1
    (tmp_path / 'rows' / 'test__P2.json').write_text('{"fingerprint": ')  # a torn file
    again = RowStore(tmp_path / 'rows', key)
    assert list(again.load()) == [('test', 'P1')] and again.n_stale == 1
    assert not list((tmp_path / 'rows').glob('.*.tmp'))
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'12')
    first = file_identity(ckpt)
    ckpt.write_bytes(b'34')  # same size, written again: another file to a fingerprint
    import os
    os.utime(ckpt, ns=(first['mtime_ns'] + 10**9, first['mtime_ns'] + 10**9))
    assert file_identity(ckpt) != first
