"""The configured Mask R-CNN trains on tumour-free slices and takes COCO weights for 2 classes."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import checkpoint as mmengine_checkpoint

CONFIG = Path(__file__).resolve().parents[3] / 'configs' / 'det_cet1_tiny.py'


@pytest.fixture(scope='module')
def model_cfg():
    init_default_scope('mmdet')
    return Config.fromfile(str(CONFIG)).model


def _build(model_cfg, num_classes=None):
    cfg = copy.deepcopy(model_cfg)
    if num_classes is not None:
        cfg.roi_head.bbox_head.num_classes = num_classes
        cfg.roi_head.mask_head.num_classes = num_classes
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('num_items', [[0, 0], [1, 0], [2, 1]], ids=['both-empty', 'one-empty', 'none-empty'])
def test_loss_is_finite_with_tumour_free_slices(model_cfg, num_items):
    model = _build(model_cfg)
    model.train()
    packed = demo_mm_inputs(batch_size=2, image_shapes=(3, 128, 128), num_items=num_items,
                            num_classes=2, with_mask=True)
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()  # gradients flow even when no slice has a tumour
    grad = model.backbone.conv1.weight.grad
    assert grad is not None and torch.isfinite(grad).all()


def test_coco_checkpoint_loads_with_class_heads_reinitialised(model_cfg, tmp_path, monkeypatch):
    coco = _build(model_cfg, num_classes=80)
    path = tmp_path / 'mask_rcnn_coco.pth'
    torch.save({'state_dict': coco.state_dict(), 'meta': {'epoch': 12}}, path)

    messages = []
    monkeypatch.setattr(mmengine_checkpoint, 'print_log',
                        lambda msg, *args, **kwargs: messages.append(str(msg)))
    npc = _build(model_cfg)
    fc_cls_before = npc.roi_head.bbox_head.fc_cls.weight.detach().clone()
    mmengine_checkpoint.load_checkpoint(npc, str(path), map_location='cpu', strict=False)

    shared = ['backbone.conv1.weight', 'neck.fpn_convs.0.conv.weight',
              'rpn_head.rpn_conv.weight', 'roi_head.bbox_head.shared_fcs.0.weight',
              'roi_head.mask_head.convs.0.conv.weight']
    npc_state, coco_state = npc.state_dict(), coco.state_dict()
    for key in shared:
        assert torch.equal(npc_state[key], coco_state[key]), key
    # 81 -> 3 (classes + background) and 80 -> 2 mask channels: kept at their own init
    assert npc.roi_head.bbox_head.fc_cls.weight.shape == (3, 1024)
    assert torch.equal(npc.roi_head.bbox_head.fc_cls.weight, fc_cls_before)
    assert npc.roi_head.mask_head.conv_logits.weight.shape[0] == 2
    warning = '\n'.join(messages)
    assert 'size mismatch for roi_head.bbox_head.fc_cls.weight' in warning
    assert 'roi_head.mask_head.conv_logits.weight' in warning
