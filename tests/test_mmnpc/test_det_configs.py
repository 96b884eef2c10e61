"""Every detection config loads offline, has 2 classes, downloads nothing and keeps the paper settings."""
from __future__ import annotations

import ast
import os.path as osp
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.utils import get_installed_path

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs'
CONFIGS = sorted(CONFIG_DIR.glob('det_*.py'))
FULL = [c for c in CONFIGS if not c.stem.endswith(('_tiny', '_cpu'))]
TINY = [c for c in CONFIGS if c.stem.endswith('_tiny')]
CPU = [c for c in CONFIGS if c.stem.endswith('_cpu')]


def _ids(paths):
    return [p.stem for p in paths]


def _base_files(path: Path) -> list[Path]:
    """The files named in ``_base_`` of one config, ``mmdet::`` resolved to the installed package."""
    tree = ast.parse(path.read_text())
    bases = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            bases = [value] if isinstance(value, str) else list(value)
    resolved = []
    for base in bases:
        if base.startswith('mmdet::'):
            root = Path(get_installed_path('mmdet')) / '.mim' / 'configs'
            resolved.append(root / base[len('mmdet::'):])
        else:
            resolved.append(Path(osp.normpath(path.parent / base)))
    return resolved


def _depth(path: Path) -> int:
    """Inheritance hops from ``path`` to its most distant base."""
    bases = _base_files(path)
    return 1 + max(_depth(b) for b in bases) if bases else 0


@pytest.fixture(scope='module', params=CONFIGS, ids=_ids(CONFIGS))
def any_config(request):
    return request.param, Config.fromfile(str(request.param))


def test_there_are_full_tiny_and_cpu_configs_for_every_sequence():
    assert _ids(FULL) == ['det_cet1', 'det_t1', 'det_t2']
    assert _ids(TINY) == ['det_cet1_tiny', 'det_t1_tiny', 'det_t2_tiny']
    assert _ids(CPU) == ['det_cet1_cpu', 'det_t1_cpu', 'det_t2_cpu']


def test_two_classes_everywhere(any_config):
    _, cfg = any_config
    roi_head = cfg.model.roi_head
    assert roi_head.bbox_head.num_classes == 2
    assert roi_head.mask_head.num_classes == 2
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.metainfo.classes == ('GTV', 'GTVln')
        assert len(cfg[loader].dataset.metainfo.palette) == 2


def test_no_urls_or_pretrained_downloads(any_config):
    _, cfg = any_config
    text = cfg.pretty_text
    for word in ('http', 'torchvision', 'Pretrained', 'open-mmlab://'):
        assert word not in text
    assert cfg.model.backbone.init_cfg is None
    assert cfg.load_from is None


def test_same_model_family_and_project_runtime(any_config):
    path, cfg = any_config
    assert cfg.model.type == 'MaskRCNN'
    assert cfg.model.backbone.type == 'ResNet' and cfg.model.backbone.depth == 50
    assert cfg.model.neck.type == 'FPN'
    assert cfg.custom_imports.imports == ['mmnpc']
    assert cfg.randomness.seed == 0
    assert cfg.test_evaluator.type == 'CocoAP50Metric'


def test_sequence_names_the_data_root(any_config):
    path, cfg = any_config
    sequence = path.stem.split('_')[1]
    assert cfg.sequence == sequence
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == f'data/npc/{sequence}/'
    assert cfg.val_evaluator.ann_file == f'data/npc/{sequence}/annotations/val.json'


def test_tumour_free_slices_are_kept_for_training(any_config):
    _, cfg = any_config
    assert cfg.train_dataloader.dataset.filter_cfg.filter_empty_gt is False


def test_inheritance_at_most_three_levels(any_config):
    path, _ = any_config
    assert _depth(path) <= 3


@pytest.mark.parametrize('path', FULL, ids=_ids(FULL))
def test_paper_settings(path):
    cfg = Config.fromfile(str(path))
    model = cfg.model
    anchors = model.rpn_head.anchor_generator
    sizes = [anchors.scales[0] * s for s in anchors.strides]
    assert sizes == [32, 64, 128, 256, 512]  # 5 scales (one per FPN level), px
    assert anchors.ratios == [0.5, 1.0, 2.0]
    assert model.train_cfg.rpn.assigner.pos_iou_thr == 0.5
    assert model.train_cfg.rcnn.assigner.pos_iou_thr == 0.5
    assert model.train_cfg.rpn_proposal.nms.iou_threshold == 0.7
    assert model.test_cfg.rpn.nms.iou_threshold == 0.7
    assert model.test_cfg.rcnn.nms.iou_threshold == 0.5
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == 24
    assert model.data_preprocessor.mean == [127.5] * 3
    assert model.data_preprocessor.std == [64.0] * 3


@pytest.mark.parametrize('path', TINY, ids=_ids(TINY))
def test_tiny_changes_only_schedule_input_size_and_roi_samples(path):
    tiny = Config.fromfile(str(path))
    full = Config.fromfile(str(path.with_name(path.stem[:-len('_tiny')] + '.py')))
    tiny_model, full_model = tiny.model.to_dict(), full.model.to_dict()
    # anchors scale with the input (256 px = half of 512 px): same physical size
    assert tiny_model['rpn_head']['anchor_generator'].pop('scales') == [4]
    assert full_model['rpn_head']['anchor_generator'].pop('scales') == [8]
    # fewer RoIs sampled for the R-CNN heads in training (CPU cost), same ratio
    assert tiny_model['train_cfg']['rcnn']['sampler'].pop('num') == 128
    assert full_model['train_cfg']['rcnn']['sampler'].pop('num') == 512
    # fewer detections kept per slice at test time (CPU cost of the mask head)
    assert tiny_model['test_cfg']['rcnn'].pop('max_per_img') == 20
    assert full_model['test_cfg']['rcnn'].pop('max_per_img') == 100
    assert tiny_model['test_cfg']['rpn'].pop('max_per_img') == 300
    assert full_model['test_cfg']['rpn'].pop('max_per_img') == 1000
    assert tiny_model == full_model
    for pipeline in (tiny.train_dataloader.dataset.pipeline, tiny.test_dataloader.dataset.pipeline):
        assert [t for t in pipeline if t['type'] == 'Resize'][0]['scale'] == (256, 256)
    assert tiny.train_cfg.type == 'IterBasedTrainLoop'
    assert tiny.train_dataloader.batch_size == 2


@pytest.mark.parametrize('path', CPU, ids=_ids(CPU))
def test_cpu_recipe_differs_from_the_tiny_configs_in_anchors_rois_and_schedule(path):
    cpu = Config.fromfile(str(path))
    tiny = Config.fromfile(str(path.with_name(path.stem[:-len('_cpu')] + '_tiny.py')))
    cpu_model, tiny_model = cpu.model.to_dict(), tiny.model.to_dict()
    # anchors 8..128 px on the 256 px slice (= 16..256 px at 512; smallest nodes ~5 px)
    anchors = cpu_model['rpn_head']['anchor_generator']
    assert [anchors['scales'][0] * s for s in anchors['strides']] == [8, 16, 32, 64, 128]
    assert tiny_model['rpn_head']['anchor_generator'].pop('scales') == [4]
    anchors.pop('scales')
    # fewer RoIs sampled for the R-CNN heads (a slice holds a few lesions), same ratio
    assert cpu_model['train_cfg']['rcnn']['sampler'].pop('num') == 64
    assert tiny_model['train_cfg']['rcnn']['sampler'].pop('num') == 128
    assert cpu_model == tiny_model  # otherwise the tiny configs' model and test-time limits
    # the same input: the whole slice at 256 px, in training and testing
    for name in ('train_dataloader', 'test_dataloader'):
        assert cpu[name].dataset.pipeline == tiny[name].dataset.pipeline
    # a longer iteration schedule whose milestones follow its length (iteration_overrides)
    assert cpu.train_cfg.type == 'IterBasedTrainLoop'
    assert cpu.train_cfg.max_iters > tiny.train_cfg.max_iters
    step = [s for s in cpu.param_scheduler if s['type'] == 'MultiStepLR'][0]
    assert step['end'] == cpu.train_cfg.max_iters
    assert all(0 < m < cpu.train_cfg.max_iters for m in step['milestones'])
    assert cpu.test_dataloader.dataset.ann_file == 'annotations/test.json'
