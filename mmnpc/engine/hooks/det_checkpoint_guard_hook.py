"""Refuse a stage-1 detector checkpoint trained on the classifier's validation patients."""
from __future__ import annotations

from typing import Set

from mmengine.hooks import Hook
from mmengine.logging import MMLogger

from mmdet.registry import HOOKS

from ...models.detector_transfer import check_detector_patients
from .loop_datasets import built_loop_datasets, unwrapped_model


@HOOKS.register_module()
class DetCheckpointGuardHook(Hook):
    """Before any weight is loaded, compare ``model.det_checkpoint``'s training patients
    (``meta['train_patient_ids']``) with the validation patients of this run.

    Validation patients: those of every split other than the training one in
    the built val / test datasets (MsomSliceDataset lists train and val).
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
