"""Point a config at one sequence of a converter output folder.

The converter writes ``<root>/<sequence>/images``,
``<root>/<sequence>/annotations/{train,val}.json`` for every MR sequence and
one ``<root>/clinical.csv``. Configs name their sequence in the top-level
variable ``sequence``; the tools' ``--data-root <root>`` calls
:func:`set_data_root` to rewrite every path (detector and classifier configs).
"""
from __future__ import annotations

import os.path as osp
from typing import Any

from mmengine.config import Config

CLINICAL_FILE = 'clinical.csv'  # the converter's clinical table, one per output folder
DATALOADERS: tuple[str, ...] = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATOR_OF: dict[str, str] = {'val_dataloader': 'val_evaluator', 'test_dataloader': 'test_evaluator'}


def innermost_datasets(dataset_cfg: dict) -> list[dict]:
    """The leaf dataset configs under wrappers (RepeatDataset, ConcatDataset)."""
    if 'dataset' in dataset_cfg:
        return innermost_datasets(dataset_cfg['dataset'])
    if 'datasets' in dataset_cfg:
        return [leaf for child in dataset_cfg['datasets'] for leaf in innermost_datasets(child)]
    return [dataset_cfg]


def evaluator_metrics(evaluator_cfg: Any) -> list[dict]:
    """The metric configs of an evaluator given as a dict or a list of dicts."""
    if evaluator_cfg is None:
        return []
    if isinstance(evaluator_cfg, dict) and 'metrics' in evaluator_cfg:
        return evaluator_metrics(evaluator_cfg['metrics'])
    if isinstance(evaluator_cfg, dict):
        return [evaluator_cfg]
    return list(evaluator_cfg)


def set_data_root(cfg: Config, root: str) -> str:
    """Set every dataset root and evaluator annotation file of ``cfg`` in place.

    Args:
        cfg: a config with a top-level ``sequence`` (``'t1'``, ``'t2'`` or ``'cet1'``).
        root: the converter output folder holding ``t1/``, ``t2/``, ``cet1/``.

    Returns:
        The new data root, ``<root>/<sequence>/``. Each dataloader's dataset
        gets it as ``data_root`` (its ``ann_file`` / ``ann_files`` and
        ``data_prefix`` stay relative to it); a dataset with a
        ``clinical_file`` key (the MSOM classifier's) gets
        ``<root>/clinical.csv``; each evaluator's ``ann_file`` becomes the
        matching dataset's annotation file, so metric and loader read the same split.

    Raises:
        KeyError: the config has no ``sequence``.
    """
    if 'sequence' not in cfg:
        raise KeyError(f'config {cfg.filename} has no top-level `sequence`; '
                       'cannot resolve --data-root')
    data_root = osp.join(root, cfg.sequence, '')
    cfg.data_root = data_root
    for loader_name in DATALOADERS:
        loader = cfg.get(loader_name)
        if not loader:
            continue
        leaves = innermost_datasets(loader['dataset'])
        for leaf in leaves:
            leaf['data_root'] = data_root
            if 'clinical_file' in leaf:
                leaf['clinical_file'] = osp.join(root, CLINICAL_FILE)
        evaluator_name = EVALUATOR_OF.get(loader_name)
        if evaluator_name is None or 'ann_file' not in leaves[0]:
            continue
        ann_file = osp.join(data_root, leaves[0]['ann_file'])
        for metric in evaluator_metrics(cfg.get(evaluator_name)):
            if 'ann_file' in metric:
                metric['ann_file'] = ann_file
    return data_root
