"""The classifier configs: paper settings, splits per loader, --data-root, inheritance depth."""
from __future__ import annotations

import ast
import os.path as osp
from pathlib import Path

import pytest
from mmengine.config import Config

from mmnpc.utils import set_data_root

CONFIG_DIR = Path(__file__).resolve().parents[3] / 'configs'
REGION_CONFIGS = [CONFIG_DIR / 'msom_cet1_cpu.py', CONFIG_DIR / 'msom_fusion_cpu.py',
                  CONFIG_DIR / 'msom_cet1_cpu_attention.py']
CONFIGS = sorted(set(CONFIG_DIR.glob('msom_*.py')) - set(REGION_CONFIGS))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _depth(path: Path) -> int:
    """Inheritance hops from ``path`` to its most distant base (no mmdet:: bases here)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == '_base_':
            bases = ast.literal_eval(node.value)
            bases = [bases] if isinstance(bases, str) else bases
            return 1 + max(_depth(Path(osp.normpath(path.parent / b))) for b in bases)
    return 0


def test_the_issue_lists_these_configs():
    assert [p.stem for p in CONFIGS] == [
        'msom_cet1', 'msom_cet1_tiny', 'msom_fusion', 'msom_fusion_t1', 'msom_fusion_t2',
        'msom_fusion_tiny', 'msom_maxslice_cet1', 'msom_maxslice_cet1_tiny', 'msom_t1', 'msom_t2']


def test_the_region_recipes_exist():
    assert sorted(CONFIG_DIR.glob('msom_*_cpu*.py')) == sorted(REGION_CONFIGS)


@pytest.mark.parametrize('path', REGION_CONFIGS, ids=[p.stem for p in REGION_CONFIGS])
def test_region_recipes_read_mm_windows_and_train_per_patient(path):
    cfg = Config.fromfile(str(path))
    train, val, test = (cfg[loader].dataset for loader in LOADERS)
    assert cfg.task == 'msom' and cfg.sequence == 'cet1'
    assert train.ann_files == {'train': 'annotations/train.json'}
    assert val.ann_files == {'train': 'annotations/train.json', 'val': 'annotations/val.json'}
    assert test.ann_files == {'train': 'annotations/train.json', 'test': 'annotations/test.json'}
    for dataset in (train, val, test):
        assert dataset.type == 'MsomRegionDataset'
        assert dataset.region_classes == ('GTV', 'GTVln') and dataset.regions_per_structure == 8
    crops = [[t for t in d.pipeline if t['type'] == 'CropRegion'][0] for d in (train, val, test)]
    assert crops[1] == crops[2] and 'jitter_mm' not in crops[1]  # test windows: no jitter
    assert {k: v for k, v in crops[0].items() if k != 'jitter_mm'} == crops[1]
    assert not any(t['type'] == 'Resize' for d in (train, val, test) for t in d.pipeline)
    assert cfg.train_dataloader.batch_sampler.type == 'PatientBatchSampler'
    assert cfg.model.loss_level == 'patient'
    assert cfg.model.get('bag_pooling', 'mean') == ('attention' if 'attention' in path.stem
                                                    else 'mean')
    # the region fusion recipe adds plasma EBV DNA to the slice configs' variables
    assert (cfg.model.clinical_vars == cfg.fusion_clinical_vars_ebv) is ('fusion' in path.stem)
    assert cfg.fusion_clinical_vars_ebv[:-1] == cfg.fusion_clinical_vars
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.clinical_vars == cfg.model.clinical_vars
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert [h['type'] for h in cfg.custom_hooks] == [
        'TrainPatientsHook', 'ClinicalEncoderHook', 'DetCheckpointGuardHook', 'SplitGuardHook']


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config(path):
    cfg = Config.fromfile(str(path))
    name = path.stem
    assert cfg.task == 'msom' and _depth(path) <= 3
    assert cfg.sequence == ('cet1' if name in ('msom_cet1', 'msom_cet1_tiny', 'msom_fusion',
                                               'msom_fusion_tiny', 'msom_maxslice_cet1',
                                               'msom_maxslice_cet1_tiny')
                            else name.split('_')[-1])
    train, val = cfg.train_dataloader.dataset, cfg.val_dataloader.dataset
    assert train.ann_files == {'train': 'annotations/train.json'}  # training patients only
    assert val.ann_files == {'train': 'annotations/train.json', 'val': 'annotations/val.json'}
    test = cfg.test_dataloader.dataset  # reported: the held-out test patients
    assert test.ann_files == {'train': 'annotations/train.json', 'test': 'annotations/test.json'}
    assert {k: v for k, v in test.items() if k != 'ann_files'} == {
        k: v for k, v in val.items() if k != 'ann_files'}
    assert train.slice_selection == val.slice_selection == (
        'max_area' if 'maxslice' in name else 'tumour')
    uses_clinical = 'fusion' in name
    assert (cfg.model.clinical_vars == cfg.fusion_clinical_vars) is uses_clinical
    assert (cfg.model.clinical_vars == []) is not uses_clinical
    assert cfg.val_evaluator == {'type': 'PatientAUCMetric', 'eval_split': 'val'}
    assert cfg.test_evaluator == {'type': 'PatientAUCMetric', 'eval_split': 'test'}
    assert cfg.default_hooks.checkpoint.save_best == 'msom/auc'
    assert [h['type'] for h in cfg.custom_hooks] == [
        'TrainPatientsHook', 'ClinicalEncoderHook', 'DetCheckpointGuardHook', 'SplitGuardHook']
    assert cfg.train_dataloader.batch_size == 2
    size = [t for t in train.pipeline if t['type'] == 'Resize'][0]['scale']
    if name.endswith('_tiny'):
        assert size == (256, 256) and cfg.train_cfg.type == 'IterBasedTrainLoop'
        assert cfg.train_dataloader.num_workers == 0
        assert val.max_slices_per_patient == 8 and 'max_slices_per_patient' not in train
    else:
        assert 'max_slices_per_patient' not in val
        assert size == (512, 512)
        assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == 20


def test_data_root_sets_images_annotations_and_the_clinical_table():
    cfg = Config.fromfile(str(CONFIG_DIR / 'msom_fusion_t2.py'))
    set_data_root(cfg, '/data/out')
    for loader in LOADERS:
        assert cfg[loader].dataset.data_root == '/data/out/t2/'
        assert cfg[loader].dataset.clinical_file == '/data/out/clinical.csv'
    assert cfg.val_evaluator == {'type': 'PatientAUCMetric', 'eval_split': 'val'}
