"""Refuse a run that trains on, or selects checkpoints with, patients of the wrong split."""
from __future__ import annotations

import os.path as osp
from pathlib import Path
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import MMLogger

from data_prep.types import DataPrepError
from mmdet.registry import HOOKS

from ...datasets.clinical_table import SPLIT_COLUMN, read_clinical_rows
from .loop_datasets import built_loop_datasets
from .train_patients_hook import dataset_patient_ids

# loop -> the splits its patients may come from (the converter's `split` column)
ALLOWED_SPLITS: Dict[str, frozenset] = {
    'train': frozenset({'train'}),
    # checkpoint selection: training patients (they choose the classifier's
    # cut-off) and validation patients; never the reported test patients
    'val': frozenset({'train', 'val'}),
}


def dataset_clinical_file(dataset) -> Optional[Path]:
    """The converter's clinical.csv of a leaf dataset.

    A classifier dataset names it (``clinical_file``); a detector dataset's
    ``data_root`` is ``<root>/<sequence>/`` and the table is ``<root>/clinical.csv``.
    """
    if getattr(dataset, 'clinical_file', None):
        return Path(dataset.clinical_file)
    data_root = getattr(dataset, 'data_root', None)
    if not data_root:
        return None
    return Path(osp.dirname(osp.normpath(data_root))) / 'clinical.csv'


@HOOKS.register_module()
class SplitGuardHook(Hook):
    """Check, before any weight is loaded, that each loop sees only its own patients.

    The converter records every patient's split in ``clinical.csv``
    (``train`` / ``val`` / ``test``). The training loop may hold only
    ``train`` patients; the validation loop, which chooses the checkpoint
    (``save_best``), may hold ``train`` and ``val`` patients but never a
    ``test`` patient, so the test figures stay untouched by any selection.
    A breach stops the run (``DataPrepError`` naming the loop, the patients,
    their split and the table). Loops without patient ids or without a
    split column are logged and not checked.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        logger = MMLogger.get_current_instance()
        for loop, datasets in built_loop_datasets(runner).items():
            allowed = ALLOWED_SPLITS.get(loop)
            if allowed is None:
                continue
            for dataset in datasets:
                problem = self.check(dataset, loop, allowed)
                if problem:
                    logger.warning(f'SplitGuardHook: {loop} loop not checked: {problem}')

    @staticmethod
    def check(dataset, loop: str, allowed: frozenset) -> Optional[str]:
        """Raise on a patient of a split not in ``allowed``; return why nothing was checked."""
        patients = dataset_patient_ids(dataset)
        table = dataset_clinical_file(dataset)
        if patients is None:
            return f'{type(dataset).__name__} carries no patient ids'
        if table is None or not table.is_file():
            return f'no clinical table ({table})'
        rows = read_clinical_rows(table)
        splits = {p: rows[p].get(SPLIT_COLUMN, '') for p in patients if p in rows}
        if not any(splits.values()):
            return f'{table} has no split column'
        wrong = sorted(f'{p} ({s})' for p, s in splits.items() if s and s not in allowed)
        if wrong:
            raise DataPrepError(
                f'the {loop} loop holds patients of split(s) other than {sorted(allowed)} '
                f'according to {table}: {", ".join(wrong)}; '
                + ('checkpoint selection must never see test patients'
                   if loop == 'val' else 'training may use training patients only'))
        return None
