"""Clinical table: schema, validation messages, patient matching, output with split."""
from __future__ import annotations

import logging

import pandas as pd
import pytest

from data_prep.clinical import (
    CLINICAL_COLUMNS,
    check_patients_match,
    load_clinical,
    read_clinical,
    write_clinical,
)
from data_prep.types import DataPrepError

ROW = {'age': '52', 'sex': 'M', 't_stage': 'T3', 'n_stage': 'N2', 'clinical_stage': 'III',
       'pni': '48.5', 'hgb': '131', 'treatment': 'CCRT', 'gtv_dose_gy': '70',
       'cisplatin_dose_mg_m2': '200', 'chemo_cycles': '2', 'msom': '1', 'msom_site': 'liver',
       'dmfs_months': '14.2', 'dmfs_event': '1', 'os_months': '40.0', 'os_event': '0'}


def write_table(tmp_path, rows: list[dict], extra: dict | None = None):
    """clinical.csv with ``rows`` (patient_id + overrides of ROW) and extra columns."""
    records = [{**ROW, **row, **(extra or {})} for row in rows]
    path = tmp_path / 'clinical.csv'
    pd.DataFrame(records).to_csv(path, index=False)
    return path


def test_valid_table_is_sorted_text_with_missing_cells(tmp_path):
    path = write_table(tmp_path, [{'patient_id': 'NPC002', 'hgb': ''},
                                  {'patient_id': 'NPC001', 'msom': '', 'pni': ' 50.25 '}])
    table = read_clinical(path)
    assert list(table.columns) == list(CLINICAL_COLUMNS)
    assert list(table['patient_id']) == ['NPC001', 'NPC002']
    assert table.loc[0, 'pni'] == '50.25' and table.loc[0, 'msom'] == ''
    assert table.loc[1, 'hgb'] == '' and table.loc[1, 'os_months'] == '40.0'


def test_unknown_columns_are_dropped_with_a_warning(tmp_path, caplog):
    path = write_table(tmp_path, [{'patient_id': 'NPC001'}], extra={'name': 'Doe^John'})
    with caplog.at_level(logging.WARNING, logger='data_prep.clinical'):
        table = read_clinical(path)
    assert 'name' not in table.columns
    assert "['name']" in caplog.text and 'Doe^John' not in caplog.text


def test_missing_column_is_named(tmp_path):
    path = write_table(tmp_path, [{'patient_id': 'NPC001'}])
    pd.read_csv(path, dtype=str).drop(columns=['os_event']).to_csv(path, index=False)
    with pytest.raises(DataPrepError, match=r"missing required columns \['os_event'\]"):
        read_clinical(path)


def test_non_numeric_value_names_column_row_and_patient(tmp_path):
    path = write_table(tmp_path, [{'patient_id': 'NPC001'}, {'patient_id': 'NPC007', 'hgb': '13o'}])
    with pytest.raises(DataPrepError) as error:
        read_clinical(path)
    message = str(error.value)
    assert str(path) in message and "'hgb'" in message and 'row 2' in message
    assert 'NPC007' in message and "'13o'" in message


def test_event_columns_must_be_binary(tmp_path):
    path = write_table(tmp_path, [{'patient_id': 'NPC001', 'os_event': '2'}])
    with pytest.raises(DataPrepError, match=r"'os_event'.*must be 0 or 1"):
        read_clinical(path)


@pytest.mark.parametrize('ids, message', [
    (['NPC001', 'NPC001'], r"patient_id 'NPC001' appears more than once \(lines 2, 3\)"),
    (['NPC001', ''], 'empty patient_id in row 2'),
])
def test_bad_patient_ids_are_refused(tmp_path, ids, message):
    path = write_table(tmp_path, [{'patient_id': pid} for pid in ids])
    with pytest.raises(DataPrepError, match=message):
        read_clinical(path)


def test_repeated_header_and_missing_file_are_refused(tmp_path):
    path = write_table(tmp_path, [{'patient_id': 'NPC001'}])
    lines = path.read_text().splitlines()
    path.write_text(f'{lines[0]},age\n{lines[1]},60\n')
    with pytest.raises(DataPrepError, match=r"more than once: \['age'\]"):
        read_clinical(path)
    with pytest.raises(DataPrepError, match='not found'):
        read_clinical(tmp_path / 'absent.csv')


def test_patients_must_match_the_image_folders(tmp_path):
    table = pd.DataFrame({'patient_id': ['NPC001', 'NPC002', 'NPC003']})
    check_patients_match(table, ['NPC003', 'NPC001', 'NPC002'], tmp_path)
    with pytest.raises(DataPrepError) as error:
        check_patients_match(table, ['NPC001', 'NPC002', 'NPC009'], tmp_path)
    message = str(error.value)
    assert "image folders without a row in clinical.csv: ['NPC009']" in message
    assert "rows in clinical.csv without an image folder: ['NPC003']" in message


def test_written_table_has_split_column_and_input_text(tmp_path):
    path = write_table(tmp_path, [{'patient_id': 'NPC002'}, {'patient_id': 'NPC001', 'age': '61'}])
    table = read_clinical(path)
    out = tmp_path / 'out.csv'
    write_clinical(table, {'NPC001': 'val', 'NPC002': 'train'}, out)
    lines = out.read_text().splitlines()
    assert lines[0] == ','.join(CLINICAL_COLUMNS) + ',split'
    assert lines[1].startswith('NPC001,61,') and lines[1].endswith(',val')
    assert lines[2].startswith('NPC002,52,') and ',40.0,' in lines[2]
    with pytest.raises(DataPrepError, match='no split'):
        write_clinical(table, {'NPC001': 'val'}, out)


NO_VALUE = ['none', 'None', 'NONE', 'NA', 'na', 'N/A', 'n/a', '-', 'null', 'NULL', 'NaN',
            'nan', ' n/a ']


@pytest.mark.parametrize('marker', NO_VALUE)
def test_no_value_spellings_are_missing_cells(tmp_path, marker):
    """Real tables write 'none', 'NA', 'N/A', '-', 'null', 'NaN' for an empty cell."""
    no_metastasis = {'msom': '0', 'msom_site': marker, 'dmfs_event': '0'}
    path = write_table(tmp_path, [
        {'patient_id': 'NPC001', **no_metastasis},  # msom_site none + msom 0: consistent
        {'patient_id': 'NPC002', 'hgb': marker, 'sex': marker, 'msom': marker,
         'dmfs_months': marker, 'dmfs_event': marker, 'os_months': marker, 'os_event': marker}])
    table = read_clinical(path)
    assert list(table['patient_id']) == ['NPC001', 'NPC002']
    assert table.loc[0, 'msom_site'] == '' and table.loc[0, 'msom'] == '0'
    for column in ('hgb', 'sex', 'msom', 'dmfs_months', 'dmfs_event', 'os_months', 'os_event'):
        assert table.loc[1, column] == '', column
    out = tmp_path / 'out.csv'
    write_clinical(table, {'NPC001': 'train', 'NPC002': 'val'}, out)
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(written['msom_site']) == ['', 'liver']
    assert list(written['hgb']) == ['131', ''] and list(written['sex']) == ['M', '']
    assert marker.strip() not in out.read_text().split(',')


def test_no_value_spellings_do_not_hide_real_problems(tmp_path):
    """A real site with msom 0, a time without its event and a word in a number column are
    still problems; a patient_id spelled like a marker is an id, not a missing value."""
    path = write_table(tmp_path, [
        {'patient_id': 'NPC001', 'msom': '0', 'msom_site': 'bone', 'dmfs_event': '0'},
        {'patient_id': 'NPC002', 'os_event': 'N/A'},
        {'patient_id': 'NPC003', 'age': 'unknown'},
        {'patient_id': 'NA'}])
    table, bad = load_clinical(path)
    assert list(table['patient_id']) == ['NA']
    assert sorted(bad) == ['NPC001', 'NPC002', 'NPC003']
    assert bad['NPC001'].endswith('patient NPC001): msom_site is given but msom is 0')
    assert bad['NPC002'].endswith('patient NPC002): os_months is given but os_event is empty')
    assert bad['NPC003'].endswith("patient NPC003): 'unknown' is not a number")


def test_ebv_dna_is_kept_when_present_and_checked(tmp_path):
    path = write_table(tmp_path, [{'patient_id': 'NPC001', 'ebv_dna_copies_ml': '4000'},
                                  {'patient_id': 'NPC002', 'ebv_dna_copies_ml': ''}])
    table = read_clinical(path)
    assert list(table.columns) == [*CLINICAL_COLUMNS, 'ebv_dna_copies_ml']
    assert list(table['ebv_dna_copies_ml']) == ['4000', '']
    assert 'ebv_dna_copies_ml' not in read_clinical(write_table(tmp_path, [
        {'patient_id': 'NPC001'}])).columns  # optional: absent stays absent
    for bad, message in (('-5', 'is negative'), ('many', 'is not a number')):
        path = write_table(tmp_path, [{'patient_id': 'NPC003', 'ebv_dna_copies_ml': bad}])
        with pytest.raises(DataPrepError, match=f"'ebv_dna_copies_ml'.*NPC003.*{message}"):
            read_clinical(path)
