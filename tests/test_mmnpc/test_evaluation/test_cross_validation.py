"""Fold assignment, fold data roots and the pooling of repeated patient-level cross-validation."""
from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmnpc.evaluation import delong_auc_ci
from mmnpc.evaluation.cross_validation import (check_fold, check_training_patients,
                                               cohort_labels, fold_rows, folds_table,
                                               make_folds,
                                               repartition_coco, summarize_cross_validation,
                                               write_fold_root)
from mmnpc.testing import write_synthetic_coco

PATIENTS = [f'P{i:02d}' for i in range(30)]
LABELS = [1 if i % 3 == 0 else 0 for i in range(30)]  # 10 with MSOM, 20 without
LABEL_OF = dict(zip(PATIENTS, LABELS))


@pytest.fixture(scope='module')
def folds():
    return make_folds(PATIENTS, LABELS, k=5, repeats=3, seed=7)


def test_every_patient_is_tested_exactly_once_per_repeat(folds):
    assert len(folds) == 15
    assert [(f['repeat'], f['fold']) for f in folds] == [(r, k) for r in range(3) for k in range(5)]
    for repeat in range(3):
        tested = [p for f in folds if f['repeat'] == repeat for p in f['test']]
        assert sorted(tested) == sorted(PATIENTS)  # once each, nobody missing
    # the repeats redraw the folds
    assert {tuple(f['test']) for f in folds if f['repeat'] == 0} != \
        {tuple(f['test']) for f in folds if f['repeat'] == 1}


def test_folds_are_stratified_and_splits_disjoint(folds):
    for fold in folds:
        check_fold(fold)
        splits = [set(fold[s]) for s in ('train', 'val', 'test')]
        assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
        assert set().union(*splits) == set(PATIENTS)
        assert sum(LABEL_OF[p] for p in fold['test']) == 2 and len(fold['test']) == 6
        # val: ceil(0.2 * 24) = 5 patients, stratified (1-2 with MSOM of 8)
        assert len(fold['val']) == 5 and sum(LABEL_OF[p] for p in fold['val']) in (1, 2)
        assert 0 < sum(LABEL_OF[p] for p in fold['train']) < len(fold['train'])


def test_same_seed_same_folds_other_seed_other_folds(folds):
    shuffled = list(reversed(range(30)))  # input order does not matter
    again = make_folds([PATIENTS[i] for i in shuffled], [LABELS[i] for i in shuffled],
                       k=5, repeats=3, seed=7)
    assert again == folds
    assert make_folds(PATIENTS, LABELS, k=5, repeats=3, seed=8) != folds


def test_val_fraction_sets_the_val_size():
    two = make_folds(PATIENTS, LABELS, k=2, repeats=1, seed=0, val_fraction=0.5)
    assert all(len(f['val']) == 8 for f in two)


@pytest.mark.parametrize('change, message', [
    (dict(labels=[1] * 3 + [0] * 27), 'at least k = 5'),
    (dict(labels=[2] + LABELS[1:]), 'must be 0 or 1'),
    (dict(patients=['P00'] + PATIENTS[1:29] + ['P00']), 'more than once'),
    (dict(k=1), 'k must be'),
    (dict(val_fraction=1.0), 'val_fraction'),
])
def test_make_folds_refuses(change, message):
    kwargs = dict(patients=PATIENTS, labels=LABELS, k=5, repeats=1, seed=0)
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        make_folds(**kwargs)


def test_too_few_patients_for_train_and_val():
    with pytest.raises(ValueError, match='cannot give a train and a val split'):
        make_folds([f'P{i}' for i in range(4)], [0, 1] * 2, k=2)


def test_check_fold_names_a_patient_in_two_splits():
    with pytest.raises(ValueError, match='P1 is in both train and test'):
        check_fold({'repeat': 0, 'fold': 1, 'train': ['P1', 'P2'], 'val': ['P3'], 'test': ['P1']})


def test_folds_table_lists_every_patient_once_per_fold(folds):
    table = folds_table(folds)
    assert list(table.columns) == ['repeat', 'fold', 'patient_id', 'split']
    assert len(table) == 15 * 30
    assert (table.groupby(['repeat', 'fold'])['patient_id'].nunique() == 30).all()
    tests = table[table['split'] == 'test'].groupby('repeat')['patient_id']
    assert (tests.nunique() == 30).all() and (tests.size() == 30).all()


# ------------------------------------------------------------------ fold data roots

COHORT = [f'SYN{p:03d}' for p in range(8)]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Two sequences, train (SYN000-005) / val (SYN006-007) files, ids colliding across files."""
    root = tmp_path / 'data'
    write_synthetic_coco(root, ('cet1', 't2'), n_patients=8, slices_per_patient=3,
                         n_val_patients=2, size=32, seed=0)
    with open(root / 'clinical.csv', 'w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['patient_id', 'age', 'msom', 'split'])
        for p, patient in enumerate(COHORT):
            writer.writerow([patient, 40 + p, p % 2, 'val' if p >= 6 else 'train'])
        writer.writerow(['NOIMG', 50, 1, 'train'])  # a row without images
    return root


FOLD = {'repeat': 0, 'fold': 1, 'train': ['SYN000', 'SYN001', 'SYN006', 'SYN007'],
        'val': ['SYN002', 'SYN003'], 'test': ['SYN004', 'SYN005']}


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_write_fold_root_repartitions_every_image_and_annotation(source, tmp_path):
    out = write_fold_root(source, FOLD, tmp_path / 'fold')
    for sequence in ('cet1', 't2'):
        originals = [_read(source / sequence / 'annotations' / f'{s}.json')
                     for s in ('train', 'val')]
        assert originals[0]['images'][0]['id'] == originals[1]['images'][0]['id'] == 1  # collide
        # what each source image carries: its entry (less id) and its annotations (less ids)
        expected = {}
        for coco in originals:
            for image in coco['images']:
                anns = [{k: v for k, v in a.items() if k not in ('id', 'image_id')}
                        for a in coco['annotations'] if a['image_id'] == image['id']]
                expected[image['file_name']] = ({k: v for k, v in image.items() if k != 'id'}, anns)
        found = {}
        for split in ('train', 'val', 'test'):
            coco = _read(out / sequence / 'annotations' / f'{split}.json')
            assert coco['categories'] == originals[0]['categories']
            ids = [image['id'] for image in coco['images']]
            assert ids == list(range(1, len(ids) + 1))
            n_annotations = len(coco['annotations'])
            assert [a['id'] for a in coco['annotations']] == list(range(1, n_annotations + 1))
            assert {image['patient_id'] for image in coco['images']} == set(FOLD[split])
            for image in coco['images']:
                anns = [{k: v for k, v in a.items() if k not in ('id', 'image_id')}
                        for a in coco['annotations'] if a['image_id'] == image['id']]
                found[image['file_name']] = ({k: v for k, v in image.items() if k != 'id'}, anns)
        assert found == expected  # every image once, with exactly its own annotations
        link = out / sequence / 'images'
        assert link.is_symlink() and link.resolve() == (source / sequence / 'images').resolve()
        assert sorted(p.name for p in link.iterdir()) == sorted(expected)


def test_write_fold_root_rewrites_the_split_column(source, tmp_path):
    out = write_fold_root(source, FOLD, tmp_path / 'fold')
    table = pd.read_csv(out / 'clinical.csv', dtype=str, keep_default_na=False)
    original = pd.read_csv(source / 'clinical.csv', dtype=str, keep_default_na=False)
    assert list(table.columns) == list(original.columns)
    assert table.drop(columns='split').equals(original.drop(columns='split'))
    split = dict(zip(table['patient_id'], table['split']))
    assert split == {**{p: s for s in ('train', 'val', 'test') for p in FOLD[s]}, 'NOIMG': ''}
    # rewriting (a resumed run) gives the same files
    before = (out / 'cet1' / 'annotations' / 'test.json').read_text()
    write_fold_root(source, FOLD, tmp_path / 'fold')
    assert (out / 'cet1' / 'annotations' / 'test.json').read_text() == before


def test_write_fold_root_adds_a_missing_split_column(source, tmp_path):
    table = pd.read_csv(source / 'clinical.csv', dtype=str).drop(columns='split')
    table.to_csv(source / 'clinical.csv', index=False)
    out = write_fold_root(source, FOLD, tmp_path / 'fold')
    assert pd.read_csv(out / 'clinical.csv', dtype=str)['split'].iloc[4] == 'test'


def test_write_fold_root_refuses_overlap_and_missing_patients(source, tmp_path):
    with pytest.raises(ValueError, match='in both train and test'):
        write_fold_root(source, {**FOLD, 'test': ['SYN004', 'SYN005', 'SYN000']}, tmp_path / 'a')
    with pytest.raises(ValueError, match='SYN005 is in no split'):
        write_fold_root(source, {**FOLD, 'test': ['SYN004']}, tmp_path / 'b')
    with pytest.raises(ValueError, match=r"without images.*\['GHOST'\]"):
        write_fold_root(source, {**FOLD, 'test': ['SYN004', 'SYN005', 'GHOST']}, tmp_path / 'c')


def test_repartition_refuses_an_image_in_two_files(source):
    coco = _read(source / 'cet1' / 'annotations' / 'train.json')
    split_of = {p: 'train' for p in COHORT}
    with pytest.raises(ValueError, match='is in both'):
        repartition_coco([(coco, Path('a.json')), (coco, Path('b.json'))], split_of)


def test_cohort_labels(source):
    assert cohort_labels(source) == {p: i % 2 for i, p in enumerate(COHORT)}  # NOIMG not included
    table = pd.read_csv(source / 'clinical.csv', dtype=str, keep_default_na=False)
    table.loc[2, 'msom'] = ''
    table.to_csv(source / 'clinical.csv', index=False)
    with pytest.raises(ValueError, match=r"SYN002 \(''\)"):
        cohort_labels(source)


# ------------------------------------------------------------------ checkpoints

def test_check_training_patients():
    check_training_patients(['SYN001', 'SYN000', 'SYN007', 'SYN006'], FOLD)
    with pytest.raises(ValueError, match=r"outside the training split.*\['SYN004'\]"):
        check_training_patients(FOLD['train'] + ['SYN004'], FOLD)
    with pytest.raises(ValueError, match='records no training patients'):
        check_training_patients(None, FOLD)


# ------------------------------------------------------------------ pooling

def _made_up_results(folds, seed=0):
    """A classifier / end-to-end patient table per fold, as the tools write them."""
    rng = np.random.default_rng(seed)
    tables = []
    for fold in folds:
        rows = [{'patient_id': p, 'split': s, 'label': LABEL_OF[p],
                 'score': float(np.clip(0.3 * LABEL_OF[p] + rng.uniform(0, 0.7), 0, 1))}
                for s in ('train', 'test') for p in fold[s]]
        scores = pd.DataFrame(rows)
        e2e = scores.rename(columns={'score': 'contour_score'}).assign(
            end_to_end_score=lambda t: t['contour_score'] + rng.normal(0, 0.1, len(t)))
        tables.append((scores, e2e))
    return tables


def test_fold_rows_and_summary_math(folds):
    results = _made_up_results(folds)
    rows_list = []
    for fold, (scores, e2e) in zip(folds, results):
        rows, notes = fold_rows(fold, scores, e2e)
        assert not notes
        assert list(rows.columns) == ['repeat', 'fold', 'patient_id', 'split', 'label', 'score',
                                      'end_to_end_score']
        rows_list.append(rows)
    table = pd.concat(rows_list, ignore_index=True)
    det = {(f['repeat'], f['fold']): {'GTV_AP50': 0.5 + 0.01 * i, 'GTVln_AP50': None,
                                      'mAP50': 0.25} for i, f in enumerate(folds)}
    summary = summarize_cross_validation(folds, table, det)
    json.dumps(summary, allow_nan=False)  # JSON-ready: no NaN

    fold_aucs = []
    for record, fold in zip(summary['folds'], folds):
        test = table[(table['repeat'] == fold['repeat']) & (table['fold'] == fold['fold'])
                     & (table['split'] == 'test')]
        interval = delong_auc_ci(test['score'], test['label'])
        assert record['score']['auc'] == pytest.approx(interval.auc)
        assert record['score']['auc_ci_low'] == pytest.approx(interval.ci_low)
        assert record['score']['n_patients'] == 6 and record['score']['n_positive'] == 2
        fold_aucs.append(interval.auc)
    stats = summary['fold_auc']['score']['all_folds']
    assert stats['mean'] == pytest.approx(np.mean(fold_aucs))
    assert stats['sd'] == pytest.approx(np.std(fold_aucs, ddof=1))
    assert stats['n'] == 15 and stats['n_undefined'] == 0
    assert summary['fold_auc']['score']['per_repeat'][1]['mean'] == pytest.approx(
        np.mean(fold_aucs[5:10]))
    for entry in summary['pooled']:
        test = table[(table['repeat'] == entry['repeat']) & (table['split'] == 'test')]
        assert len(test) == 30  # each patient once
        for column in ('score', 'end_to_end_score'):
            interval = delong_auc_ci(test[column], test['label'])
            assert entry[column]['auc'] == pytest.approx(interval.auc)
            assert entry[column]['auc_ci_low'] == pytest.approx(interval.ci_low)
            assert entry[column]['auc_ci_high'] == pytest.approx(interval.ci_high)
    assert 'mixes models' in summary['pooling_note']
    gtv = summary['detector_ap50']['GTV_AP50']
    assert gtv['mean'] == pytest.approx(np.mean([0.5 + 0.01 * i for i in range(15)]))
    assert summary['detector_ap50']['GTVln_AP50'] == {'mean': None, 'sd': None, 'n': 0,
                                                       'n_undefined': 15}


def test_undefined_fold_auc_is_null_and_left_out_of_the_mean():
    fold = {'repeat': 0, 'fold': 0, 'train': ['A', 'B'], 'val': ['C'], 'test': ['D', 'E']}
    other = {'repeat': 0, 'fold': 1, 'train': ['D', 'E'], 'val': ['C'], 'test': ['A', 'B']}
    table = pd.DataFrame({'repeat': 0, 'fold': [0, 0, 1, 1], 'patient_id': ['D', 'E', 'A', 'B'],
                          'split': 'test', 'label': [1, 1, 0, 1], 'score': [0.2, 0.4, 0.1, 0.9]})
    summary = summarize_cross_validation([fold, other], table)
    assert summary['folds'][0]['score']['auc'] is None  # one class only
    assert summary['fold_auc']['score']['all_folds'] == {'mean': 1.0, 'sd': None, 'n': 1,
                                                         'n_undefined': 1}
    assert summary['detector_ap50'] is None
    assert math.isclose(summary['pooled'][0]['score']['auc'],
                        delong_auc_ci(table['score'], table['label']).auc)


def test_fold_rows_notes_unscored_test_patients_and_refuses_wrong_splits(folds):
    fold = folds[0]
    scores, _ = _made_up_results([fold])[0]
    missing = fold['test'][0]
    rows, notes = fold_rows(fold, scores[scores['patient_id'] != missing])
    assert len(notes) == 1 and missing in notes[0]
    assert Counter(rows['split']) == {'train': len(fold['train']), 'test': 5}
    bad = scores.copy()
    bad.loc[bad['patient_id'] == missing, 'split'] = 'train'
    with pytest.raises(ValueError, match='disagrees with the fold'):
        fold_rows(fold, bad)


def test_statistics_helpers_agree_with_statistics_module():
    from mmnpc.evaluation.cross_validation import mean_sd
    values = [0.6, 0.7, None, 0.9, float('nan')]
    assert mean_sd(values) == {'mean': pytest.approx(statistics.fmean([0.6, 0.7, 0.9])),
                               'sd': pytest.approx(statistics.stdev([0.6, 0.7, 0.9])),
                               'n': 3, 'n_undefined': 2}
