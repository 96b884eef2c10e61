"""configs/pretrained/: COCO / ImageNet initialisation, the offline error, stage 2 from such a detector.

Nothing is downloaded: the checkpoints are local fakes of the right shapes
(seeded random values), put either where MMEngine's download cache looks
(torch.hub's dir, redirected to a temporary folder) or given as a local path
with --cfg-options; ``torch.hub.download_url_to_file`` is replaced by a function
that fails, as it does offline.
"""
from __future__ import annotations

import json
import os.path as osp
import runpy
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.utils import get_installed_path

from mmdet.registry import MODELS
from mmnpc.models import check_detector_patients, load_detector_weights
from mmnpc.testing import write_synthetic_coco
from mmnpc.utils.pretrained import PretrainedDownloadError, hub_cache_path

REPO = Path(__file__).resolve().parents[3]
CONFIG_DIR = REPO / 'configs' / 'pretrained'
SEQUENCES = ('cet1', 't1', 't2')
COCO_URL = ('https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/'
            'mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth')
IMAGENET_URL = 'https://download.pytorch.org/models/resnet50-0676ba61.pth'
# the COCO class predictors, whose shapes depend on the number of classes
HEAD_PREDICTORS = ('roi_head.bbox_head.fc_cls.', 'roi_head.bbox_head.fc_reg.',
                   'roi_head.mask_head.conv_logits.')


def _config(name: str, **options) -> Config:
    cfg = Config.fromfile(str(CONFIG_DIR / f'{name}.py'))
    cfg.merge_from_dict(options)
    return cfg


def _seeded_like(state: dict, seed: int) -> dict:
    """Same keys and shapes, different (seeded) values; integer buffers kept."""
    generator = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=generator) if v.is_floating_point() else v.clone())
            for k, v in state.items()}


def _runner(cfg: Config, work_dir: Path, name: str) -> Runner:
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name  # several runners in one process and one second
    return Runner.from_cfg(cfg)


def _log_text(runner: Runner) -> str:
    return Path(runner.log_dir, f'{runner.timestamp}.log').read_text()


@pytest.fixture(scope='module')
def fakes(tmp_path_factory) -> dict:
    """A COCO-like 80-class Mask R-CNN checkpoint and a torchvision-like ResNet-50 one."""
    tmp = tmp_path_factory.mktemp('pretrained')
    init_default_scope('mmdet')
    model_cfg = _config('det_cet1_coco').model
    model_cfg.roi_head.bbox_head.num_classes = 80
    model_cfg.roi_head.mask_head.num_classes = 80
    coco = _seeded_like(MODELS.build(model_cfg).state_dict(), seed=1)
    coco_path = tmp / osp.basename(COCO_URL)
    # like the published file: a state dict and an mmdet 2.x meta without patients
    torch.save({'state_dict': coco, 'meta': {'mmdet_version': '2.0.0', 'CLASSES': tuple(
        f'class{i}' for i in range(80)), 'config': 'model = dict(...)'}}, coco_path)
    generator = torch.Generator().manual_seed(2)
    imagenet = {k[len('backbone.'):]: torch.randn(v.shape, generator=generator)
                if v.is_floating_point() else v for k, v in coco.items() if k.startswith('backbone.')}
    imagenet['fc.weight'] = torch.randn(1000, 2048, generator=generator)
    imagenet['fc.bias'] = torch.zeros(1000)
    imagenet_path = tmp / osp.basename(IMAGENET_URL)
    torch.save(imagenet, imagenet_path)  # torchvision files are bare state dicts
    return dict(coco=coco, coco_path=coco_path, imagenet=imagenet, imagenet_path=imagenet_path)


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    """torch.hub's cache in an empty temporary folder; any download fails. Returns the cache."""
    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError(OSError(101, 'Network is unreachable'))

    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    cache = tmp_path / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    return cache


def _assert_frozen_like_mmdetection(model) -> None:
    backbone = model.backbone
    frozen = [backbone.conv1, backbone.norm1, backbone.layer1]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in backbone.layer2.parameters())
    model.train()
    assert not backbone.layer3[0].bn1.training  # norm_eval: BN statistics stay fixed
    assert backbone.layer3[0].bn1.weight.requires_grad  # ... their scale / shift learnt


@pytest.mark.parametrize('sequence', SEQUENCES)
def test_configs_name_the_published_weights_and_change_nothing_else(sequence):
    plain = Config.fromfile(str(REPO / 'configs' / f'det_{sequence}.py'))
    coco, imagenet = _config(f'det_{sequence}_coco'), _config(f'det_{sequence}_imagenet')
    mmdet = Path(get_installed_path('mmdet')) / '.mim' / 'configs'
    metafile = yaml.safe_load((mmdet / 'mask_rcnn' / 'metafile.yml').read_text())
    weights = {m['Name']: m['Weights'] for m in metafile['Models']}
    assert coco.load_from == weights['mask-rcnn_r50_fpn_1x_coco'] == COCO_URL
    # what MMDetection's torchvision://resnet50 resolves to (without importing torchvision)
    torchvision_urls = json.loads((Path(get_installed_path('mmengine')) / 'hub' /
                                   'torchvision_0.12.json').read_text())
    assert imagenet.model.backbone.init_cfg == dict(type='Pretrained',
                                                    checkpoint=torchvision_urls['resnet50'])
    assert torchvision_urls['resnet50'] == IMAGENET_URL
    stock = Config.fromfile(str(mmdet / '_base_' / 'models' / 'mask-rcnn_r50_fpn.py')).model.backbone
    for cfg in (coco, imagenet):
        for key in ('frozen_stages', 'norm_eval', 'norm_cfg'):
            assert cfg.model.backbone[key] == stock[key]
        assert cfg.custom_imports.imports == ['mmnpc', 'mmnpc.utils.pretrained']
        assert cfg.sequence == sequence
    # everything else is the random-init config
    for cfg in (coco, imagenet):
        a, b = cfg.to_dict(), plain.to_dict()
        for d in (a, b):
            d.pop('load_from'), d.pop('custom_imports')
            for key in ('frozen_stages', 'norm_eval', 'init_cfg'):
                d['model']['backbone'].pop(key)
        assert a == b


@pytest.mark.parametrize('source', ['download cache', '--cfg-options load_from'])
def test_coco_checkpoint_loads_everything_but_the_class_predictors(source, fakes, offline, tmp_path,
                                                                  capsys):
    if source == 'download cache':  # the config's URL, found in the cache: no download
        (offline / osp.basename(COCO_URL)).symlink_to(fakes['coco_path'])
        cfg = _config('det_cet1_coco')
    else:
        cfg = _config('det_cet1_coco', load_from=str(fakes['coco_path']))
    runner = _runner(cfg, tmp_path / 'work', f'coco_{source.split()[0]}')
    runner._init_model_weights()  # what Runner.train() does first ...
    runner.load_or_resume()  # ... then load_from
    state = runner.model.state_dict()
    loaded = [k for k in state if not k.startswith(HEAD_PREDICTORS)]
    assert any(k.startswith('backbone.') for k in loaded) and any(k.startswith('neck.') for k in loaded)
    for key in loaded:
        assert torch.equal(state[key], fakes['coco'][key]), key
    assert state['roi_head.bbox_head.fc_cls.weight'].shape == (3, 1024)  # GTV, GTVln, background
    assert state['roi_head.mask_head.conv_logits.weight'].shape[0] == 2
    log = ''.join(capsys.readouterr())  # Runner.load_checkpoint prints the mismatch report
    for key in ('bbox_head.fc_cls.weight', 'bbox_head.fc_reg.weight', 'mask_head.conv_logits.weight'):
        assert f'size mismatch for roi_head.{key}' in log
    _assert_frozen_like_mmdetection(runner.model)


@pytest.mark.parametrize('source', ['download cache', '--cfg-options checkpoint'])
def test_imagenet_backbone_is_loaded_and_frozen(source, fakes, offline, tmp_path):
    if source == 'download cache':
        (offline / osp.basename(IMAGENET_URL)).symlink_to(fakes['imagenet_path'])
        cfg = _config('det_cet1_imagenet')
    else:
        cfg = _config('det_cet1_imagenet',
                      **{'model.backbone.init_cfg.checkpoint': str(fakes['imagenet_path'])})
    runner = _runner(cfg, tmp_path / 'work', f'imagenet_{source.split()[0]}')
    runner._init_model_weights()
    backbone = runner.model.backbone.state_dict()
    assert set(backbone) == set(fakes['imagenet']) - {'fc.weight', 'fc.bias'}
    for key, value in backbone.items():
        assert torch.equal(value, fakes['imagenet'][key]), key
    assert 'unexpected key in source state_dict: fc.weight, fc.bias' in _log_text(runner)
    _assert_frozen_like_mmdetection(runner.model)


@pytest.mark.parametrize('url, option', [
    (COCO_URL, 'load_from=/path/to/'),
    (IMAGENET_URL, 'model.backbone.init_cfg.checkpoint=/path/to/')])
def test_offline_download_says_which_file_to_place_where(url, option, offline):
    with pytest.raises(PretrainedDownloadError) as info:
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    message = str(info.value)
    assert url in message
    assert hub_cache_path(url) == str(offline / osp.basename(url)) and hub_cache_path(url) in message
    assert f'--cfg-options {option}{osp.basename(url)}' in message
    assert 'Network is unreachable' in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_train_tool_prints_the_offline_message(offline, tmp_path, monkeypatch):
    data = tmp_path / 'data'
    write_synthetic_coco(data, n_patients=2, slices_per_patient=2, n_val_patients=1, size=64)
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    monkeypatch.syspath_prepend(str(REPO / 'tools'))
    monkeypatch.setattr(sys, 'argv', [
        'train.py', str(CONFIG_DIR / 'det_cet1_coco.py'), '--data-root', str(data),
        '--work-dir', str(tmp_path / 'work'), '--cfg-options', 'experiment_name=train_offline',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False'])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO / 'tools' / 'train.py'), run_name='__main__')
    message = str(info.value.code)
    assert message.startswith('cannot download pretrained weights from')
    assert COCO_URL in message and str(offline / osp.basename(COCO_URL)) in message


def test_stage2_starts_from_a_coco_initialised_detector(fakes, offline, tmp_path):
    init_default_scope('mmdet')
    classifier = MODELS.build(Config.fromfile(str(REPO / 'configs' / 'msom_cet1.py')).model)
    # the published COCO checkpoint itself: same backbone + FPN, but no patient record
    copied = load_detector_weights(classifier, str(fakes['coco_path']))
    assert copied and all(torch.equal(classifier.state_dict()[k], fakes['coco'][k]) for k in copied)
    assert check_detector_patients(str(fakes['coco_path']), ['P9'], allow_unrecorded=True) == []
    # a detector fine-tuned from it (frozen stage 1) with its patients recorded
    runner = _runner(_config('det_cet1_coco', load_from=str(fakes['coco_path'])),
                     tmp_path / 'work', 'coco_stage2')
    runner.load_or_resume()
    detector = tmp_path / 'detector.pth'
    torch.save({'state_dict': runner.model.state_dict(),
                'meta': {'train_patient_ids': ['P1', 'P2']}}, detector)
    copied = load_detector_weights(classifier, str(detector))
    assert {k.split('.')[0] for k in copied} == {'backbone', 'neck'}
    assert check_detector_patients(str(detector), ['P9']) == ['P1', 'P2']


@pytest.mark.skipif(torch.cuda.is_available(), reason='the refusal is for machines without a GPU')
def test_train_tool_refuses_amp_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.syspath_prepend(str(REPO / 'tools'))
    monkeypatch.setattr(sys, 'argv', ['train.py', str(REPO / 'configs' / 'det_cet1_tiny.py'),
                                      '--amp', '--work-dir', str(tmp_path / 'work')])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO / 'tools' / 'train.py'), run_name='__main__')
    assert str(info.value.code).startswith('--amp (mixed precision')
