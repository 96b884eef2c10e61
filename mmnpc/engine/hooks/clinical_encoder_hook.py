"""Keep the fitted clinical encoder with the weights: save it, restore it, share it."""
from __future__ import annotations

from typing import List

from mmengine.hooks import Hook
from mmengine.logging import MMLogger

from mmdet.registry import HOOKS

from ...datasets.clinical_encoder import ClinicalEncoder
from ...datasets.msom_slice_dataset import MsomSliceDataset
from .loop_datasets import built_loop_datasets

META_KEY = 'clinical_encoder'


def _msom_datasets(runner, loops=('train', 'val', 'test')) -> List[MsomSliceDataset]:
    found = built_loop_datasets(runner)
    return [d for loop in loops for d in found.get(loop, []) if isinstance(d, MsomSliceDataset)]


@HOOKS.register_module()
class ClinicalEncoderHook(Hook):
    """The classifier's clinical encoder travels in ``checkpoint['meta']['clinical_encoder']``.

    * ``before_run`` (training): the val / test datasets use the training
      dataset's encoder (fitted on the training patients only).
    * ``before_save_checkpoint``: the training dataset's encoder state is saved.
    * ``after_load_checkpoint`` (``--resume``, ``load_from``, tools/test.py):
      every built dataset switches to the checkpoint's encoder, so a resumed
      run and a test use the statistics the weights were trained with, even
      if clinical.csv changed since (a differing refit is logged).
    """

    priority = 'NORMAL'

    def before_run(self, runner) -> None:
        train = _msom_datasets(runner, ('train',))
        if not train:
            return
        encoder = train[0].clinical_encoder
        for dataset in _msom_datasets(runner, ('val', 'test')):
            dataset.set_clinical_encoder(encoder)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        train = _msom_datasets(runner, ('train',))
        if train:
            state = train[0].clinical_encoder.state_dict()
            checkpoint.setdefault('meta', {})[META_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        logger = MMLogger.get_current_instance()
        datasets = _msom_datasets(runner)
        state = (checkpoint.get('meta') or {}).get(META_KEY)
        if state is None:
            if any(d.clinical_encoder.variables for d in datasets):
                logger.warning('ClinicalEncoderHook: the loaded checkpoint has no clinical '
                               'encoder; the datasets keep the one fitted on their training split')
            return
        encoder = ClinicalEncoder.from_state_dict(state)
        for dataset in datasets:
            if dataset.clinical_encoder.is_fitted and dataset.clinical_encoder != encoder:
                logger.info('ClinicalEncoderHook: the checkpoint\'s clinical encoder differs from '
                            'the one fitted on the current data; using the checkpoint\'s '
                            f'({encoder})')
            dataset.set_clinical_encoder(encoder)
