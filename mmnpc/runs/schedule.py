"""One way to change an iteration-based config's length (demo, cross-validation, experiments).

:func:`iteration_overrides` re-derives everything a config computed from its
``max_iters``; :func:`no_in_training_validation` adds the options of a run that
``tools/test.py`` evaluates afterwards (no validation during training, no
"best" copy: the last checkpoint is the one tested).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def iteration_overrides(cfg: Mapping[str, Any], iters: int) -> list[str]:
    """``--cfg-options`` (``key=value``) that make an iteration-based config run ``iters`` steps.

    Besides ``train_cfg.max_iters``, everything the config derived from its
    ``max_iters`` when it was parsed is re-derived: ``train_cfg.val_interval``
    and ``default_hooks.checkpoint.interval`` become ``iters`` (one validation
    and one checkpoint, at the end), and an iteration-based LR scheduler that
    ended at the old ``max_iters`` ends at ``iters``, its milestones scaled
    in proportion (the tiny detector's MultiStepLR at 80 %). A fixed-length
    warm-up (e.g. 50 iterations) is left as it is.

    Args:
        cfg: the loaded config (``train_cfg``, ``param_scheduler``, ``default_hooks``).

    Raises:
        ValueError: ``iters`` < 1, or the config's loop is not iteration-based.
    """
    if int(iters) != iters or iters < 1:
        raise ValueError(f'iterations must be an integer >= 1, got {iters}')
    train_cfg = cfg.get('train_cfg') or {}
    if train_cfg.get('type') != 'IterBasedTrainLoop' or 'max_iters' not in train_cfg:
        raise ValueError(f'the config trains with {train_cfg.get("type")!r}, not an '
                         'IterBasedTrainLoop with max_iters: set its length with '
                         '--det-cfg-options / --cls-cfg-options instead')
    old = int(train_cfg['max_iters'])
    options = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
               f'default_hooks.checkpoint.interval={iters}']
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, Mapping):
        schedulers = [schedulers]
        prefix = lambda i: 'param_scheduler'  # noqa: E731
    else:
        prefix = lambda i: f'param_scheduler.{i}'  # noqa: E731
    for i, scheduler in enumerate(schedulers):
        if scheduler.get('by_epoch', True) or scheduler.get('end') != old:
            continue
        options.append(f'{prefix(i)}.end={iters}')
        if scheduler.get('milestones'):
            milestones = [max(1, int(round(m * iters / old))) for m in scheduler['milestones']]
            options.append(f'{prefix(i)}.milestones=[{",".join(map(str, milestones))}]')
    return options


def no_in_training_validation(iters: int) -> list[str]:
    """``--cfg-options`` of an ``iters``-step run validated once, by tools/test.py
    afterwards: no validation during training, no 'best' checkpoint (add them to
    :func:`iteration_overrides`)."""
    return [f'train_cfg.val_begin={iters + 1}', 'default_hooks.checkpoint.save_best=None']


def last_checkpoint_options(config_path: str, iters: int | None) -> list[str]:
    """``--cfg-options`` of a run of ``iters`` steps whose last checkpoint tools/test.py
    tests afterwards (:func:`iteration_overrides` of the config file, then
    :func:`no_in_training_validation`); none when ``iters`` is None (the config's own
    length, its own validation)."""
    if not iters:
        return []
    from mmengine.config import Config
    return [*iteration_overrides(Config.fromfile(str(config_path)), iters),
            *no_in_training_validation(iters)]
