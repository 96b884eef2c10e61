"""Patient-level split: coverage, stratification by msom, seeds, the held-out test split,
user split files."""
from __future__ import annotations

import logging
import math
from collections import Counter

import pandas as pd
import pytest

from data_prep.split import msom_groups, read_split_file, stratified_split
from data_prep.types import DataPrepError


def cohort(msom: list[str]) -> pd.DataFrame:
    """Clinical table with patients P000.. in shuffled row order and the given msom cells."""
    table = pd.DataFrame({'patient_id': [f'P{i:03d}' for i in range(len(msom))], 'msom': msom})
    return table.sample(frac=1.0, random_state=3)


def test_split_covers_every_patient_once_with_ceil_val_size():
    table = cohort(['1'] * 10 + ['0'] * 26 + [''] * 4)
    splits = stratified_split(table, 0.25, seed=0)
    assert sorted(splits) == sorted(table['patient_id'])
    assert set(splits.values()) == {'train', 'val'}
    assert list(splits.values()).count('val') == math.ceil(0.25 * 40)


@pytest.mark.parametrize('seed', range(8))
def test_split_is_stratified_by_msom_with_missing_as_a_group(seed):
    table = cohort(['1'] * 10 + ['0'] * 22 + [''] * 8)
    splits = stratified_split(table, 0.25, seed=seed)
    groups = dict(zip(table['patient_id'], msom_groups(table)))
    for group, size in {'msom=1': 10, 'msom=0': 22, 'msom=missing': 8}.items():
        in_val = sum(1 for p, s in splits.items() if s == 'val' and groups[p] == group)
        assert math.floor(size * 0.25) <= in_val <= math.ceil(size * 0.25), group


def test_split_is_deterministic_for_a_seed_and_varies_with_it():
    table = cohort(['1'] * 12 + ['0'] * 28)
    first = stratified_split(table, 0.3, seed=5)
    assert stratified_split(table.sample(frac=1.0, random_state=9), 0.3, seed=5) == first
    assert any(stratified_split(table, 0.3, seed=s) != first for s in range(6, 10))


def test_msom_values_written_differently_are_one_group():
    table = pd.DataFrame({'patient_id': ['a', 'b', 'c', 'd'], 'msom': ['1', '1.0', '0', '0']})
    assert msom_groups(table) == ['msom=1', 'msom=1', 'msom=0', 'msom=0']


def test_small_groups_are_pooled_or_split_without_stratification():
    one_positive = cohort(['1'] + ['0'] * 9)
    assert msom_groups(one_positive.sort_values('patient_id'))[0] == 'msom=0'
    splits = stratified_split(one_positive, 0.25, seed=0)
    assert sorted(splits) == sorted(one_positive['patient_id'])
    tiny = cohort(['1', '0', '', '1'])  # 3 groups, 1 val place
    splits = stratified_split(tiny, 0.25, seed=0)
    assert sorted(splits.values()) == ['train', 'train', 'train', 'val']


def test_bad_fraction_or_too_few_patients_is_refused():
    table = cohort(['1', '0', '0', '1'])
    for fraction in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(DataPrepError, match='val_fraction'):
            stratified_split(table, fraction, seed=0)
    with pytest.raises(DataPrepError, match='at least 2 patients'):
        stratified_split(cohort(['1']), 0.25, seed=0)


# --- held-out test split ------------------------------------------------------------------

@pytest.mark.parametrize('n, val_fraction, test_fraction', [(40, 0.2, 0.15), (37, 0.2, 0.15),
                                                            (23, 0.25, 0.3)])
def test_three_way_split_covers_every_patient_once_with_ceil_sizes(n, val_fraction,
                                                                  test_fraction):
    table = cohort([('1', '0', '0', '')[i % 4] for i in range(n)])
    splits = stratified_split(table, val_fraction, seed=0, test_fraction=test_fraction)
    assert sorted(splits) == sorted(table['patient_id'])  # each patient exactly once
    sizes = Counter(splits.values())
    assert sizes['test'] == math.ceil(test_fraction * n)
    assert sizes['val'] == math.ceil(val_fraction * n)  # a share of the whole cohort
    assert sizes['train'] == n - sizes['test'] - sizes['val']


@pytest.mark.parametrize('seed', range(8))
def test_three_way_split_is_stratified_by_msom_in_every_split(seed):
    table = cohort(['1'] * 10 + ['0'] * 22 + [''] * 8)
    splits = stratified_split(table, 0.2, seed=seed, test_fraction=0.2)
    groups = dict(zip(table['patient_id'], msom_groups(table)))
    sizes = Counter(splits.values())
    for group, size in {'msom=1': 10, 'msom=0': 22, 'msom=missing': 8}.items():
        for split in ('train', 'val', 'test'):
            count = sum(1 for p, s in splits.items() if s == split and groups[p] == group)
            assert abs(count - size * sizes[split] / 40) <= 1, (group, split, count)


def test_three_way_split_is_deterministic_for_a_seed_and_varies_with_it():
    table = cohort(['1'] * 12 + ['0'] * 28)
    first = stratified_split(table, 0.2, seed=5, test_fraction=0.25)
    shuffled = table.sample(frac=1.0, random_state=9)
    assert stratified_split(shuffled, 0.2, seed=5, test_fraction=0.25) == first
    assert any(stratified_split(table, 0.2, seed=s, test_fraction=0.25) != first
               for s in range(6, 10))


def test_no_test_fraction_is_the_two_way_split():
    table = cohort(['1'] * 10 + ['0'] * 26 + [''] * 4)
    for seed in range(4):
        assert stratified_split(table, 0.25, seed, test_fraction=0.0) == stratified_split(
            table, 0.25, seed)
    assert 'test' not in stratified_split(table, 0.25, 0).values()


def test_tiny_three_way_split_falls_back_to_unstratified_with_a_warning(caplog):
    tiny = cohort(['1', '0', '', '1', '0'])  # 3 groups, 1 test place
    with caplog.at_level(logging.WARNING, logger='data_prep.split'):
        splits = stratified_split(tiny, 0.2, seed=0, test_fraction=0.2)
    assert sorted(splits.values()) == ['test', 'train', 'train', 'train', 'val']
    assert 'test_fraction=0.2 ' in caplog.text and 'without stratification' in caplog.text


@pytest.mark.parametrize('val_fraction, test_fraction, message', [
    (0.25, -0.1, r'test_fraction must be in \[0, 1\), got -0.1'),
    (0.25, 1.0, r'test_fraction must be in \[0, 1\), got 1.0'),
    (0.25, math.nan, r'test_fraction must be in \[0, 1\), got nan'),
    (0.5, 0.5, r'val_fraction \+ test_fraction must be below 1.*0.5 \+ 0.5'),
    (0.0, 0.2, r'val_fraction must be between 0 and 1'),
    (0.34, 0.2, r'leave no train patient among 3 \(val 2, test 1\)'),
])
def test_bad_test_fraction_is_refused(val_fraction, test_fraction, message):
    with pytest.raises(DataPrepError, match=message):
        stratified_split(cohort(['1', '0', '0']), val_fraction, seed=0,
                         test_fraction=test_fraction)


def test_three_way_split_needs_three_patients():
    with pytest.raises(DataPrepError, match='at least 3 patients to split into train, val and'):
        stratified_split(cohort(['1', '0']), 0.25, seed=0, test_fraction=0.25)


def write(tmp_path, text: str):
    path = tmp_path / 'split.csv'
    path.write_text(text)
    return path


def test_split_file_is_read_for_the_cohort(tmp_path):
    path = write(tmp_path, 'patient_id,split\nP2,val\nP1,train\nP3, train\n')
    assert read_split_file(path, ['P1', 'P2', 'P3']) == {'P1': 'train', 'P2': 'val', 'P3': 'train'}


def test_split_file_may_hold_test_patients_and_may_leave_test_out(tmp_path, caplog):
    path = write(tmp_path, 'patient_id,split\nP2,val\nP1,train\nP3,test\n')
    assert read_split_file(path, ['P1', 'P2', 'P3']) == {'P1': 'train', 'P2': 'val', 'P3': 'test'}
    with caplog.at_level(logging.WARNING, logger='data_prep.split'):
        read_split_file(write(tmp_path, 'patient_id,split\nP1,train\nP2,val\n'), ['P1', 'P2'])
    assert 'empty' not in caplog.text  # no test split is normal, not a warning


@pytest.mark.parametrize('text, message', [
    ('patient_id,split\nP1,train\nP1,val\nP2,val\n', r"more than once: \['P1'\]"),
    ('patient_id,split\nP1,train\nP2,testing\n',
     r"one of \['train', 'val', 'test'\].*P2: 'testing'"),
    ('patient_id,split\nP1,train\n', r"not in the file: \['P2'\]"),
    ('patient_id,split\nP1,train\nP2,val\nP9,val\n', r"not in the cohort: \['P9'\]"),
    ('patient,split\nP1,train\nP2,val\n', r"missing \['patient_id'\]"),
])
def test_bad_split_files_are_refused(tmp_path, text, message):
    with pytest.raises(DataPrepError, match=message):
        read_split_file(write(tmp_path, text), ['P1', 'P2'])
