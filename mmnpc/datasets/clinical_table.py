"""Read the converter's ``clinical.csv`` for the MSOM classifier: rows and labels.

The file is the one ``python -m data_prep convert`` writes (one row per
patient, cells kept as text, empty = missing, plus a ``split`` column). The
label is the ``msom`` column (1 = metachronous single-organ metastasis).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Mapping, Sequence

from data_prep.clinical import read_text_table
from data_prep.types import DataPrepError

LABEL_COLUMN = 'msom'
SPLIT_COLUMN = 'split'

ClinicalRows = Dict[str, Dict[str, str]]  # patient_id -> {column: cell text ('' = missing)}


def read_clinical_rows(path: Path, required: Sequence[str] = ()) -> ClinicalRows:
    """patient_id -> row (column -> stripped text) of ``path``.

    Raises DataPrepError naming the file for a missing ``patient_id``,
    ``msom`` or ``required`` column, an empty or repeated patient id.
    """
    table = read_text_table(Path(path))
    needed = ['patient_id', LABEL_COLUMN, *required]
    missing = [name for name in needed if name not in table.columns]
    if missing:
        raise DataPrepError(f'{path}: missing columns {missing}')
    ids = list(table['patient_id'])
    if '' in ids:
        raise DataPrepError(f'{path}: empty patient_id on data row {ids.index("") + 1}')
    repeated = sorted({p for p in ids if ids.count(p) > 1})
    if repeated:
        raise DataPrepError(f'{path}: patient_id appears more than once: {repeated}')
    return {row['patient_id']: row for row in table.to_dict(orient='records')}


def patient_labels(rows: Mapping[str, Mapping[str, str]], patient_ids: Iterable[str],
                   path: Path) -> Dict[str, float]:
    """patient_id -> msom label (0.0 / 1.0) of each of ``patient_ids``.

    Raises DataPrepError listing the patients without a row in ``path`` and
    those whose ``msom`` is missing or not 0/1: every patient the classifier
    trains or is evaluated on needs a known outcome.
    """
    patient_ids = sorted(set(patient_ids))
    no_row = [p for p in patient_ids if p not in rows]
    if no_row:
        raise DataPrepError(f'{path}: no clinical row for patients {no_row} '
                            '(they have images in the annotation files)')
    labels, bad = {}, []
    for patient_id in patient_ids:
        text = rows[patient_id][LABEL_COLUMN]
        if text in ('0', '1', '0.0', '1.0'):
            labels[patient_id] = float(text)
        else:
            bad.append(f'{patient_id} ({text!r})')
    if bad:
        raise DataPrepError(f'{path}: column {LABEL_COLUMN!r} must be 0 or 1 for every patient '
                            f'the classifier uses; missing or invalid for {", ".join(bad)}')
    return labels
