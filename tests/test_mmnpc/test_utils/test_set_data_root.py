"""--data-root rewrites every dataset root and evaluator annotation file from `sequence`."""
from pathlib import Path

import pytest
from mmengine.config import Config

from mmnpc.utils import set_data_root

CONFIG_DIR = Path(__file__).resolve().parents[3] / 'configs'


def test_every_loader_and_evaluator_follows_the_sequence(tmp_path):
    cfg = Config.fromfile(str(CONFIG_DIR / 'det_t2.py'))
    root = set_data_root(cfg, str(tmp_path / 'out'))
    expected = str(tmp_path / 'out' / 't2') + '/'
    assert root == expected and cfg.data_root == expected
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == expected
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/train.json'
    assert cfg.val_evaluator.ann_file == expected + 'annotations/val.json'
    assert cfg.test_evaluator.ann_file == expected + 'annotations/test.json'  # reported split


def test_evaluator_follows_an_overridden_test_split(tmp_path):
    cfg = Config.fromfile(str(CONFIG_DIR / 'det_cet1.py'))
    cfg.merge_from_dict({'test_dataloader.dataset.ann_file': 'annotations/test.json',
                         'sequence': 't1'})
    set_data_root(cfg, '/data/npc_out')
    assert cfg.test_dataloader.dataset.data_root == '/data/npc_out/t1/'
    assert cfg.test_evaluator.ann_file == '/data/npc_out/t1/annotations/test.json'
    assert cfg.val_evaluator.ann_file == '/data/npc_out/t1/annotations/val.json'


def test_wrapped_datasets_and_metric_lists():
    cfg = Config(dict(
        sequence='cet1',
        train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(
            type='CocoDataset', data_root='x/', ann_file='annotations/train.json'))),
        val_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
            dict(type='CocoDataset', data_root='x/', ann_file='annotations/val.json'),
            dict(type='CocoDataset', data_root='y/', ann_file='annotations/val.json')])),
        val_evaluator=[dict(type='CocoAP50Metric', ann_file='x/annotations/val.json'),
                       dict(type='DumpDetResults', out_file_path='p.pkl')]))
    set_data_root(cfg, '/d')
    assert cfg.train_dataloader.dataset.dataset.data_root == '/d/cet1/'
    assert [d.data_root for d in cfg.val_dataloader.dataset.datasets] == ['/d/cet1/'] * 2
    assert cfg.val_evaluator[0].ann_file == '/d/cet1/annotations/val.json'
    assert 'ann_file' not in cfg.val_evaluator[1]


def test_config_without_sequence_is_refused():
    with pytest.raises(KeyError, match='sequence'):
        set_data_root(Config(dict(train_dataloader=dict(dataset=dict(data_root='x/')))), '/d')
