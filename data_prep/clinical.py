"""Read, validate and write the cohort's clinical table (``COHORT/clinical.csv``).

One row per patient; ``patient_id`` equals the patient's image folder name.
Cells may be empty (missing). Values are kept as the text the user wrote
(stripped), so the output table reproduces the input exactly apart from the
dropped columns, the sort order and the added ``split`` column. Columns not in
``CLINICAL_COLUMNS`` are dropped with a warning: an unknown column may hold an
identifier (name, hospital number), and nothing unlisted reaches the output.
"""
from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from data_prep.types import DataPrepError

logger = logging.getLogger(__name__)

CLINICAL_COLUMNS: tuple[str, ...] = (
    'patient_id', 'age', 'sex', 't_stage', 'n_stage', 'clinical_stage', 'pni', 'hgb',
    'treatment', 'gtv_dose_gy', 'cisplatin_dose_mg_m2', 'chemo_cycles', 'msom', 'msom_site',
    'dmfs_months', 'dmfs_event', 'os_months', 'os_event')
NUMERIC_COLUMNS: tuple[str, ...] = (
    'age', 'pni', 'hgb', 'gtv_dose_gy', 'cisplatin_dose_mg_m2', 'chemo_cycles', 'msom',
    'dmfs_months', 'dmfs_event', 'os_months', 'os_event')
BINARY_COLUMNS: tuple[str, ...] = ('msom', 'dmfs_event', 'os_event')  # 0 / 1 / missing
SPLIT_COLUMN = 'split'


def read_clinical(path: Path) -> pd.DataFrame:
    """Read and validate the clinical table; return it as stripped text, sorted by patient.

    Returns a DataFrame with exactly ``CLINICAL_COLUMNS`` (str, '' = missing),
    one row per patient, sorted by ``patient_id``. Raises DataPrepError naming
    the file, column, row and patient for: a missing column, an empty or
    duplicated ``patient_id``, a non-numeric value in a numeric column, a value
    other than 0/1 in an event column.
    """
    table = read_text_table(path)
    missing = [name for name in CLINICAL_COLUMNS if name not in table.columns]
    if missing:
        raise DataPrepError(f'{path}: missing required columns {missing}')
    unknown = [name for name in table.columns if name not in CLINICAL_COLUMNS]
    if unknown:
        logger.warning('%s: dropping columns not in the clinical schema (they may hold '
                       'identifiers): %s', path, unknown)
    table = table[list(CLINICAL_COLUMNS)]

    _check_patient_ids(table, path)
    for column in NUMERIC_COLUMNS:
        _check_numeric(table, column, path)
    return table.sort_values('patient_id', kind='stable').reset_index(drop=True)


def read_text_table(path: Path) -> pd.DataFrame:
    """Read a CSV as stripped text cells ('' = empty); refuse repeated column names.

    (pandas would silently rename a repeated ``age`` to ``age.1``, hiding which
    of the two values is meant.)
    """
    if not path.is_file():
        raise DataPrepError(f'{path}: file not found')
    try:
        with path.open(newline='', encoding='utf-8-sig') as handle:
            header = [name.strip() for name in next(csv.reader(handle), [])]
        table = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False,
                            encoding='utf-8-sig')
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            csv.Error) as err:
        raise DataPrepError(f'{path}: cannot read as CSV ({err})') from err
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataPrepError(f'{path}: columns given more than once: {repeated}')
    table.columns = header
    return table.fillna('').apply(lambda column: column.str.strip())


def _row_label(table: pd.DataFrame, row: int) -> str:
    """'row 3 (line 4, patient NPC003)': data row 1-based, file line counting the header."""
    patient = table['patient_id'].iloc[row] or '<empty patient_id>'
    return f'row {row + 1} (line {row + 2}, patient {patient})'


def _check_patient_ids(table: pd.DataFrame, path: Path) -> None:
    """Refuse empty and repeated patient ids."""
    empty = [_row_label(table, row) for row, patient in enumerate(table['patient_id'])
             if not patient]
    if empty:
        raise DataPrepError(f'{path}: empty patient_id in {", ".join(empty)}')
    repeated = sorted(table.loc[table['patient_id'].duplicated(), 'patient_id'].unique())
    if repeated:
        raise DataPrepError(f'{path}: patient_id appears more than once: {repeated}')


def _check_numeric(table: pd.DataFrame, column: str, path: Path) -> None:
    """Every non-empty cell of ``column`` must parse as a finite number (0/1 for events)."""
    for row, text in enumerate(table[column]):
        if text == '':
            continue
        value = pd.to_numeric(text, errors='coerce')
        if pd.isna(value) or not math.isfinite(value):
            raise DataPrepError(
                f'{path}: column {column!r}, {_row_label(table, row)}: {text!r} is not a number')
        if column in BINARY_COLUMNS and value not in (0, 1):
            raise DataPrepError(
                f'{path}: column {column!r}, {_row_label(table, row)}: {text!r} must be 0 or 1')


def check_patients_match(clinical: pd.DataFrame, image_patients: Iterable[str],
                         cohort: Path) -> None:
    """Refuse a cohort whose image folders and clinical rows name different patients.

    Lists both directions in one DataPrepError: folders under ``cohort`` without
    a clinical row, and clinical rows without a folder.
    """
    with_images = set(image_patients)
    with_row = set(clinical['patient_id'])
    no_row, no_images = sorted(with_images - with_row), sorted(with_row - with_images)
    problems = []
    if no_row:
        problems.append(f'image folders without a row in clinical.csv: {no_row}')
    if no_images:
        problems.append(f'rows in clinical.csv without an image folder: {no_images}')
    if problems:
        raise DataPrepError(f'{cohort}: ' + '; '.join(problems))


def write_clinical(clinical: pd.DataFrame, splits: Mapping[str, str], path: Path) -> None:
    """Write the validated table, sorted by patient, with a ``split`` column.

    splits: patient_id -> 'train' / 'val'; every row must have one.
    """
    missing = sorted(set(clinical['patient_id']) - set(splits))
    if missing:
        raise DataPrepError(f'no split assigned to patients {missing}')
    table = clinical.sort_values('patient_id', kind='stable').copy()
    table[SPLIT_COLUMN] = table['patient_id'].map(splits)
    table.to_csv(path, index=False, lineterminator='\n')
