"""Record in every checkpoint which patients its weights were trained on."""
from __future__ import annotations

from typing import List, Optional, Set

from mmengine.fileio import load
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from torch.utils.data import Dataset

from mmdet.registry import HOOKS

from .loop_datasets import built_loop_datasets

META_KEY = 'train_patient_ids'


def dataset_patient_ids(dataset: Dataset) -> Optional[List[str]]:
    """Sorted patient ids of one (leaf) dataset; None when they cannot be known.

    An MsomSliceDataset knows them (``patient_ids()``); a COCO dataset's
    annotation file is read again (mmdet's CocoDataset drops the image
    entries' ``patient_id``), and every image must carry one.
    """
    if hasattr(dataset, 'patient_ids'):
        return dataset.patient_ids()
    ann_file = getattr(dataset, 'ann_file', None)
    if not ann_file:
        return None
    images = load(ann_file).get('images', [])
    if not images or any('patient_id' not in image for image in images):
        return None
    return sorted({image['patient_id'] for image in images})


@HOOKS.register_module()
class TrainPatientsHook(Hook):
    """Write ``meta['train_patient_ids']`` into every checkpoint (detector and classifier).

    The list holds the patients of the training dataset plus those recorded
    in a checkpoint this run resumed or loaded (``load_from``): every patient
    whose data shaped the weights. Stage 2 uses it to refuse a detector
    trained on its validation patients (DetCheckpointGuardHook). When the
    training data carry no patient ids nothing is written (and a warning is
    logged): an empty list would wrongly claim "trained on nobody".
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._inherited: Set[str] = set()
        self._current: Optional[Set[str]] = None
        self._known = True

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        recorded = (checkpoint.get('meta') or {}).get(META_KEY)
        if recorded:
            self._inherited.update(recorded)

    def before_train(self, runner) -> None:
        self._current = set()
        for dataset in built_loop_datasets(runner).get('train', []):
            ids = dataset_patient_ids(dataset)
            if ids is None:
                self._known = False
                MMLogger.get_current_instance().warning(
                    f'TrainPatientsHook: {type(dataset).__name__} has no patient ids; checkpoints '
                    f'will not record {META_KEY} and stage 2 will refuse them')
                return
            self._current.update(ids)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._current is None:
            self.before_train(runner)
        if self._known:
            checkpoint.setdefault('meta', {})[META_KEY] = sorted(self._current | self._inherited)
