"""Read, validate and write the cohort's clinical table (``COHORT/clinical.csv``).

One row per patient; ``patient_id`` equals the patient's image folder name.
Cells may be empty (missing). Values are kept as the text the user wrote
(stripped), so the output table reproduces the input exactly apart from the
dropped columns, the sort order and the added ``split`` column. Columns not in
``CLINICAL_COLUMNS`` or ``OPTIONAL_COLUMNS`` are dropped with a warning: an
unknown column may hold an identifier (name, hospital number), and nothing
unlisted reaches the output. ``OPTIONAL_COLUMNS`` (pre-treatment plasma EBV DNA,
copies/mL) are validated and kept when the table has them; a config that uses
one needs it.

"No value" spellings: hospital tables write a missing value in many ways. A
cell (of any column but ``patient_id``) that reads one of ``MISSING_MARKERS``
-- ``none``, ``NA``, ``N/A``, ``-``, ``null``, ``NaN``, in any letter case --
is read as empty before validation, so ``msom_site`` = ``none`` with
``msom`` = 0 is consistent, and the written table holds '' for it.
``patient_id`` is kept as written (it names an image folder).
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
# Kept when present, numeric, >= 0 (plasma EBV DNA before treatment, copies/mL; 0 = undetectable)
OPTIONAL_COLUMNS: tuple[str, ...] = ('ebv_dna_copies_ml',)
NON_NEGATIVE_COLUMNS: tuple[str, ...] = ('ebv_dna_copies_ml',)
SPLIT_COLUMN = 'split'
# Cell texts meaning "no value", compared in lower case after stripping (see the module doc).
MISSING_MARKERS: frozenset[str] = frozenset({'none', 'na', 'n/a', '-', 'null', 'nan'})


def read_clinical(path: Path) -> pd.DataFrame:
    """Read and validate the clinical table; return it as stripped text, sorted by patient.

    Returns a DataFrame with exactly ``CLINICAL_COLUMNS`` and the
    ``OPTIONAL_COLUMNS`` the file has (str, '' = missing),
    one row per patient, sorted by ``patient_id``. Raises DataPrepError naming
    the file, column, row and patient for every problem ``load_clinical``
    finds (all bad rows in one message).
    """
    table, bad_rows = load_clinical(path)
    if bad_rows:
        raise DataPrepError('; '.join(bad_rows.values()))
    return table


def load_clinical(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The valid rows of the clinical table, and patient_id -> problem for the others.

    Raises DataPrepError for problems of the whole table: file missing or not a
    CSV, a required column missing or repeated, an empty ``patient_id``. A row
    is bad (and left out of the table) when its ``patient_id`` is repeated, a
    numeric column holds a non-number, an event column holds other than 0/1,
    or the outcome columns contradict each other (``outcome_problem``).
    Cells spelling "no value" (``MISSING_MARKERS``) are empty in the result.
    """
    table = read_text_table(path)
    missing = [name for name in CLINICAL_COLUMNS if name not in table.columns]
    if missing:
        raise DataPrepError(f'{path}: missing required columns {missing}')
    kept = [*CLINICAL_COLUMNS, *(name for name in OPTIONAL_COLUMNS if name in table.columns)]
    unknown = [name for name in table.columns if name not in kept]
    if unknown:
        logger.warning('%s: dropping columns not in the clinical schema (they may hold '
                       'identifiers): %s', path, unknown)
    table = blank_missing_markers(table[kept].reset_index(drop=True))
    _check_patient_ids(table, path)
    bad_rows: dict[str, str] = {}
    for pid, rows in table.groupby('patient_id', sort=True).groups.items():
        if len(rows) > 1:
            lines = ', '.join(str(row + 2) for row in rows)
            bad_rows[pid] = f'{path}: patient_id {pid!r} appears more than once (lines {lines})'
    for row in range(len(table)):
        pid = table['patient_id'].iloc[row]
        if pid not in bad_rows:
            problem = _row_problem(table, row, path)
            if problem:
                bad_rows[pid] = problem
    good = table.loc[~table['patient_id'].isin(bad_rows)]
    return good.sort_values('patient_id', kind='stable').reset_index(drop=True), bad_rows


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


def blank_missing_markers(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every ``MISSING_MARKERS`` cell ('NA', 'none', ...) made '' (missing).

    ``patient_id`` is left alone. Cells are already stripped (``read_text_table``).
    """
    table = table.copy()
    for column in table.columns:
        if column != 'patient_id':
            missing = table[column].str.lower().isin(MISSING_MARKERS)
            table.loc[missing, column] = ''
    return table


def _row_label(table: pd.DataFrame, row: int) -> str:
    """'row 3 (line 4, patient NPC003)': data row 1-based, file line counting the header."""
    patient = table['patient_id'].iloc[row] or '<empty patient_id>'
    return f'row {row + 1} (line {row + 2}, patient {patient})'


def _check_patient_ids(table: pd.DataFrame, path: Path) -> None:
    """Refuse empty patient ids (a row that names no patient cannot be skipped)."""
    empty = [_row_label(table, row) for row, patient in enumerate(table['patient_id'])
             if not patient]
    if empty:
        raise DataPrepError(f'{path}: empty patient_id in {", ".join(empty)}')


def _row_problem(table: pd.DataFrame, row: int, path: Path) -> str | None:
    """The first problem of one row (non-numeric, non-binary, outcome contradiction)."""
    values = {}
    numeric = [*NUMERIC_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in table.columns)]
    for column in numeric:
        text = table[column].iloc[row]
        if text == '':
            continue
        value = pd.to_numeric(text, errors='coerce')
        if pd.isna(value) or not math.isfinite(value):
            return f'{path}: column {column!r}, {_row_label(table, row)}: {text!r} is not a number'
        if column in BINARY_COLUMNS and value not in (0, 1):
            return f'{path}: column {column!r}, {_row_label(table, row)}: {text!r} must be 0 or 1'
        if column in NON_NEGATIVE_COLUMNS and value < 0:
            return f'{path}: column {column!r}, {_row_label(table, row)}: {text!r} is negative'
        values[column] = float(value)
    problem = outcome_problem(values, table['msom_site'].iloc[row] != '')
    return f'{path}: {_row_label(table, row)}: {problem}' if problem else None


def outcome_problem(values: Mapping[str, float], has_site: bool) -> str | None:
    """What contradicts in one patient's outcome columns, or None.

    values: numeric column -> value, absent = empty cell. Checked: a survival
    time and its event given together (an event without its time, or a time
    without its event, cannot be analysed); no negative time; DMFS not longer
    than OS; msom = 1 only with a distant metastasis (dmfs_event = 1 when
    given); no metastasis site with msom = 0.
    """
    for time, event in (('dmfs_months', 'dmfs_event'), ('os_months', 'os_event')):
        if (time in values) != (event in values):
            given, empty = (event, time) if event in values else (time, event)
            return f'{given} is given but {empty} is empty'
        if values.get(time, 0.0) < 0:
            return f'{time} is negative ({values[time]:g})'
    if values.get('dmfs_months', -math.inf) > values.get('os_months', math.inf):
        return (f'dmfs_months ({values["dmfs_months"]:g}) is longer than os_months '
                f'({values["os_months"]:g})')
    if values.get('msom') == 1 and values.get('dmfs_event') == 0:
        return 'msom is 1 but dmfs_event is 0'
    if has_site and values.get('msom') == 0:
        return 'msom_site is given but msom is 0'
    return None


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


def unmatched_patients(clinical: pd.DataFrame, image_patients: Iterable[str],
                       cohort: Path) -> dict[str, str]:
    """patient_id -> reason, for image folders without a clinical row and the reverse."""
    with_images, with_row = set(image_patients), set(clinical['patient_id'])
    reasons = {pid: f'patient {pid}: image folder {cohort / pid} has no row in clinical.csv'
               for pid in with_images - with_row}
    reasons |= {pid: f'patient {pid}: row in {cohort / "clinical.csv"} has no image folder'
                for pid in with_row - with_images}
    return dict(sorted(reasons.items()))


def write_clinical(clinical: pd.DataFrame, splits: Mapping[str, str], path: Path) -> None:
    """Write the validated table, sorted by patient, with a ``split`` column.

    splits: patient_id -> 'train' / 'val' / 'test'; every row must have one.
    """
    missing = sorted(set(clinical['patient_id']) - set(splits))
    if missing:
        raise DataPrepError(f'no split assigned to patients {missing}')
    table = clinical.sort_values('patient_id', kind='stable').copy()
    table[SPLIT_COLUMN] = table['patient_id'].map(splits)
    table.to_csv(path, index=False, lineterminator='\n')
