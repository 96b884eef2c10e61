"""One schedule shortener: the length, intervals and LR milestones follow ``iters``."""
from __future__ import annotations

import pytest

from mmnpc.runs import iteration_overrides, no_in_training_validation


def test_iteration_overrides_rescale_what_derives_from_max_iters():
    cfg = {'train_cfg': {'type': 'IterBasedTrainLoop', 'max_iters': 200, 'val_interval': 200},
           'param_scheduler': [
               {'type': 'LinearLR', 'by_epoch': False, 'begin': 0, 'end': 50},
               {'type': 'MultiStepLR', 'by_epoch': False, 'begin': 0, 'end': 200,
                'milestones': [160]}]}
    assert iteration_overrides(cfg, 1000) == [
        'train_cfg.max_iters=1000', 'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=1000', 'param_scheduler.1.end=1000',
        'param_scheduler.1.milestones=[800]']
    with pytest.raises(ValueError, match='EpochBasedTrainLoop'):
        iteration_overrides({'train_cfg': {'type': 'EpochBasedTrainLoop', 'max_epochs': 24}}, 5)
    with pytest.raises(ValueError, match='integer >= 1'):
        iteration_overrides(cfg, 0)


def test_a_single_scheduler_dict_is_rescaled_too():
    cfg = {'train_cfg': {'type': 'IterBasedTrainLoop', 'max_iters': 100},
           'param_scheduler': {'type': 'MultiStepLR', 'by_epoch': False, 'end': 100,
                               'milestones': [50, 90]}}
    assert iteration_overrides(cfg, 10)[-2:] == ['param_scheduler.end=10',
                                                 'param_scheduler.milestones=[5,9]']


def test_no_in_training_validation_turns_validation_and_best_copy_off():
    assert no_in_training_validation(300) == ['train_cfg.val_begin=301',
                                        'default_hooks.checkpoint.save_best=None']


def test_the_real_tiny_classifier_keeps_its_fixed_warm_up():
    """The classifier recipes' warm-up is fixed length: shortening leaves it alone."""
    from pathlib import Path

    from mmengine.config import Config
    repo = Path(__file__).resolve().parents[3]
    cfg = Config.fromfile(str(repo / 'configs' / 'msom_cet1_tiny.py'))
    options = iteration_overrides(cfg, 7)
    assert options == ['train_cfg.max_iters=7', 'train_cfg.val_interval=7',
                       'default_hooks.checkpoint.interval=7']


def test_last_checkpoint_options_of_a_config_file():
    from pathlib import Path

    from mmnpc.runs import last_checkpoint_options
    config = Path(__file__).resolve().parents[3] / 'configs' / 'msom_cet1_tiny.py'
    assert last_checkpoint_options(config, None) == []
    assert last_checkpoint_options(config, 12) == [
        'train_cfg.max_iters=12', 'train_cfg.val_interval=12',
        'default_hooks.checkpoint.interval=12', 'train_cfg.val_begin=13',
        'default_hooks.checkpoint.save_best=None']
