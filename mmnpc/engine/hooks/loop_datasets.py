"""Find the datasets of a Runner's already-built loops, without building any."""
from __future__ import annotations

from typing import Dict, List

from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop
from torch import nn
from torch.utils.data import Dataset

LOOPS: tuple[str, ...] = ('train', 'val', 'test')


def leaf_datasets(dataset: Dataset) -> List[Dataset]:
    """The datasets inside wrappers (RepeatDataset ``.dataset``, ConcatDataset ``.datasets``)."""
    if hasattr(dataset, 'datasets'):
        return [leaf for child in dataset.datasets for leaf in leaf_datasets(child)]
    if hasattr(dataset, 'dataset'):
        return leaf_datasets(dataset.dataset)
    return [dataset]


def built_loop_datasets(runner) -> Dict[str, List[Dataset]]:
    """loop name ('train', 'val', 'test') -> its leaf datasets, for loops already built.

    Reads the Runner's private ``_<name>_loop`` on purpose: its public
    properties would *build* a loop (and its dataset) that this run does not use.
    """
    found = {}
    for name in LOOPS:
        loop = getattr(runner, f'_{name}_loop', None)
        if isinstance(loop, BaseLoop):
            found[name] = leaf_datasets(loop.dataloader.dataset)
    return found


def unwrapped_model(runner) -> nn.Module:
    """The runner's model without a (Distributed)DataParallel wrapper."""
    return runner.model.module if is_model_wrapper(runner.model) else runner.model
