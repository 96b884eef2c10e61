"""Which split a test run reports: the held-out test split, or val for two-way cohorts.

:func:`held_out_split` states the rule on a cohort's split labels. The configs' test loops read ``annotations/test.json`` (patients that chose
nothing: not the weights, not the checkpoint, not the cut-off). A cohort
converted without ``--test-fraction`` has no such file; :func:`resolve_test_split`
then points the test loop at the validation split and returns a note saying
that those figures are optimistic, because the checkpoint was selected on the
same patients. Call it after :func:`mmnpc.utils.set_data_root`.
"""
from __future__ import annotations

import json
import os.path as osp
from collections.abc import Iterable
from typing import Any

from .data_root import evaluator_metrics, innermost_datasets

TEST_ANN = 'annotations/test.json'
VAL_ANN = 'annotations/val.json'
OPTIMISTIC_NOTE = ('this cohort has no test split (convert with --test-fraction): the figures '
                   'are on the validation patients, on which the checkpoint was selected, so '
                   'they are optimistic')


def held_out_split(splits: Iterable[str]) -> str:
    """The split a report is on, from the patients' split labels (clinical.csv's
    ``split`` column): 'test' when any patient has it, else 'val' (whose figures
    are optimistic: :data:`OPTIMISTIC_NOTE`)."""
    return 'test' if 'test' in set(splits) else 'val'


def _has_images(path: str) -> bool:
    if not osp.isfile(path):
        return False
    with open(path, encoding='utf-8') as file:
        return bool(json.load(file).get('images'))


def _join(data_root: Any, ann_file: str) -> str:
    return ann_file if osp.isabs(ann_file) or not data_root else osp.join(data_root, ann_file)


def resolve_test_split(cfg) -> tuple[str, list[str]]:
    """Point ``cfg``'s test loop at the test split if it exists, else at val (in place).

    Returns:
        (the evaluated split, notes for the report). A config whose test loop
        was pointed elsewhere by the user (no ``test`` annotation file in it)
        is left alone and reported under the split it names.
    """
    loader = cfg.get('test_dataloader')
    if not loader:
        return 'test', []
    leaf = innermost_datasets(loader['dataset'])[0]
    if 'ann_files' in leaf:  # classifier: {train: ..., test: ...}
        ann_files = dict(leaf['ann_files'])
        if 'test' not in ann_files:
            evaluators = evaluator_metrics(cfg.get('test_evaluator'))
            return (evaluators[0].get('eval_split', 'val') if evaluators else 'val'), []
        if _has_images(_join(leaf.get('data_root'), ann_files['test'])):
            return 'test', []
        ann_files.pop('test')
        ann_files['val'] = VAL_ANN
        leaf['ann_files'] = ann_files
        for metric in evaluator_metrics(cfg.get('test_evaluator')):
            if 'eval_split' in metric:
                metric['eval_split'] = 'val'
        return 'val', [OPTIMISTIC_NOTE]
    ann_file = leaf.get('ann_file', '')
    if osp.basename(ann_file) != osp.basename(TEST_ANN):
        return osp.splitext(osp.basename(ann_file))[0] or 'val', []
    if _has_images(_join(leaf.get('data_root'), ann_file)):
        return 'test', []
    leaf['ann_file'] = osp.join(osp.dirname(ann_file), osp.basename(VAL_ANN))
    for metric in evaluator_metrics(cfg.get('test_evaluator')):
        if 'ann_file' in metric:
            metric['ann_file'] = _join(leaf.get('data_root'), leaf['ann_file'])
    return 'val', [OPTIMISTIC_NOTE]
