"""Refuse a stage-1 detector checkpoint trained on the classifier's validation or test patients."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Set

from mmengine.hooks import Hook
from mmengine.logging import MMLogger

from mmdet.registry import HOOKS

from ...datasets.clinical_table import SPLIT_COLUMN, read_clinical_rows
from ...models.detector_transfer import check_detector_patients
from .loop_datasets import built_loop_datasets, unwrapped_model
from .split_guard_hook import dataset_clinical_file


def held_out_patients(table: Optional[Path], fit_split: str) -> Set[str]:
    """Patients whose ``split`` in the converter's table is set and is not ``fit_split``
    (validation and test patients, even those the current loop does not list)."""
    if table is None or not Path(table).is_file():
        return set()
    rows = read_clinical_rows(table)
    return {p for p, row in rows.items() if row.get(SPLIT_COLUMN) not in ('', None, fit_split)}


@HOOKS.register_module()
class DetCheckpointGuardHook(Hook):
    """Before any weight is loaded, compare ``model.det_checkpoint``'s training patients
    (``meta['train_patient_ids']``) with the validation patients of this run.

    Held-out patients: those of every split other than the training one in
    the built val / test datasets (MsomSliceDataset lists train and val), and
    every ``val`` / ``test`` patient of the converter's clinical.csv (the
    ``split`` column), so that the test patients are protected while training,
    when the test loop is not built.
    Runs in ``before_run``, which MMEngine calls before ``init_weights``.

    Args:
        allow_unrecorded: accept a detector checkpoint without a patient
            record (e.g. one trained only on COCO); refused by default.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_unrecorded: bool = False) -> None:
        self.allow_unrecorded = allow_unrecorded

    def before_run(self, runner) -> None:
        path = getattr(unwrapped_model(runner), 'det_checkpoint', None)
        if not path:
            return
        logger = MMLogger.get_current_instance()
        datasets = built_loop_datasets(runner)
        val_patients: Set[str] = set()
        checked = False
        for dataset in datasets.get('val', []) + datasets.get('test', []):
            if not hasattr(dataset, 'patient_ids'):
                continue
            checked = True
            fit_split = getattr(dataset, 'fit_split', 'train')
            val_patients.update(set(dataset.patient_ids()) - set(dataset.patient_ids(fit_split)))
            val_patients.update(held_out_patients(dataset_clinical_file(dataset), fit_split))
        if not checked:
            logger.warning(f'DetCheckpointGuardHook: no validation dataset with patient ids; '
                           f'{path} is not checked for patient overlap')
            return
        recorded = check_detector_patients(path, val_patients, self.allow_unrecorded)
        if recorded:
            logger.info(f'DetCheckpointGuardHook: {path} was trained on {len(recorded)} patients, '
                        f'none of the {len(val_patients)} validation patients')
        else:
            logger.warning(f'DetCheckpointGuardHook: {path} does not record its training '
                           'patients; accepted because allow_unrecorded=True')
