"""Grad-CAM of the classifier: equal to a hand computation, and on the region that decides."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmnpc.inference.grad_cam import cam_layer, cam_mass_shares, cam_overlay, grad_cam

SIZE = 64


def _tiny_classifier(seed=0):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmnpc  # noqa: F401
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='MsomClassifier',
        data_preprocessor=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3,
                               bgr_to_rgb=False, pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                      frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                      norm_eval=False, style='pytorch', init_cfg=None),
        neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=32, num_outs=5),
        feature_level=1, standardize_image_features=False))
    model.init_weights()
    return model


def test_grad_cam_equals_a_hand_computation():
    model = _tiny_classifier()
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, 1, SIZE, SIZE),
                                                                dtype=np.uint8))
    cams = grad_cam(model, images)
    # by hand: weights = spatial mean of d logit / d A, map = ReLU(sum_c w_c A_c), upsampled
    model.eval()
    inputs = model.data_preprocessor({'inputs': images.expand(-1, 3, -1, -1).float(),
                                      'data_samples': None}, False)['inputs']
    store = {}
    handle = cam_layer(model).register_forward_hook(lambda m, i, o: store.update(a=o))
    logits = model._logits(inputs, None)
    handle.remove()
    grads, = torch.autograd.grad(logits.sum(), store['a'])
    weights = grads.mean(dim=(2, 3), keepdim=True)
    expected = F.relu((weights * store['a']).sum(1, keepdim=True))
    expected = F.interpolate(expected, (SIZE, SIZE), mode='bilinear')[:, 0].detach().numpy()
    assert cams.shape == (3, SIZE, SIZE)
    np.testing.assert_allclose(cams, expected, rtol=1e-4, atol=1e-6)


def _decided_by_one_region(rng, n):
    """Label 1 iff the top-left square is textured; a bright bottom-right square in every
    image, of random brightness, decides nothing."""
    images = rng.normal(100, 8, (n, 1, SIZE, SIZE))
    labels = rng.integers(0, 2, n)
    images[:, 0, 40:56, 40:56] += rng.uniform(20, 120, (n, 1, 1))  # distractor
    texture = rng.normal(0, 60, (n, 16, 16))
    images[:, 0, 8:24, 8:24] += 60 + texture * labels[:, None, None]
    return torch.from_numpy(images.clip(0, 255).astype(np.float32)), torch.from_numpy(labels)


def test_the_map_sits_on_the_region_that_decides_the_label():
    rng = np.random.default_rng(1)
    model = _tiny_classifier(seed=1)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(60):
        images, labels = _decided_by_one_region(rng, 16)
        inputs = model.data_preprocessor({'inputs': images.expand(-1, 3, -1, -1),
                                          'data_samples': None}, True)['inputs']
        loss = F.binary_cross_entropy_with_logits(model._logits(inputs, None).view(-1),
                                                  labels.float())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    images, labels = _decided_by_one_region(np.random.default_rng(2), 32)
    scores = model.score_slices(images)
    assert np.mean((scores.numpy() > 0.5) == labels.numpy()) > 0.9  # it learnt the rule
    decisive = np.zeros((SIZE, SIZE), bool)
    decisive[8:24, 8:24] = True
    distractor = np.zeros((SIZE, SIZE), bool)
    distractor[40:56, 40:56] = True
    positives = images[labels == 1]
    shares = [cam_mass_shares(cam, {'GTV': decisive, 'GTVln': distractor}, (1.0, 1.0), 4.0)
              for cam in grad_cam(model, positives)]
    gtv = np.nanmean([s['GTV'] + s['ring'] for s in shares])  # the deciding square + ring
    nodes = np.nanmean([s['GTVln'] for s in shares])  # the distractor
    # P3 of a 64 px input is an 8 x 8 grid, so the map is coarse and its mass spreads; what
    # must hold is that it concentrates on the deciding square (with its 4 mm ring), per area
    area = {'decisive': (16 + 8) ** 2 / SIZE ** 2, 'distractor': 16 ** 2 / SIZE ** 2}
    area['elsewhere'] = 1 - area['decisive'] - area['distractor']
    density = {'decisive': gtv / area['decisive'], 'distractor': nodes / area['distractor'],
               'elsewhere': np.nanmean([s['elsewhere'] for s in shares]) / area['elsewhere']}
    assert density['decisive'] > 2 * density['elsewhere']
    assert density['decisive'] > 4 * density['distractor']


def test_mass_shares_split_the_map_and_sum_to_one():
    cam = np.zeros((20, 20))
    gtv = np.zeros((20, 20), bool)
    gtv[5:10, 5:10] = True
    nodes = np.zeros((20, 20), bool)
    nodes[15:17, 15:17] = True
    cam[gtv] = 1.0  # 25
    cam[nodes] = 2.0  # 8
    cam[5:10, 11] = 1.0  # 5, one pixel column right of the GTV: in a 2 mm ring
    cam[0, 19] = 2.0  # 2, far away
    shares = cam_mass_shares(cam, {'GTV': gtv, 'GTVln': nodes}, (1.0, 1.0), ring_mm=2.0)
    assert shares == pytest.approx({'GTV': 25 / 40, 'GTVln': 8 / 40, 'ring': 5 / 40,
                                    'elsewhere': 2 / 40})
    assert all(np.isnan(v) for v in cam_mass_shares(np.zeros((4, 4)), {}, (1, 1)).values())
    overlay = cam_overlay(np.full((20, 20), 90, np.uint8), cam, {'GTV': gtv})
    assert overlay.shape == (20, 20, 3) and overlay.dtype == np.uint8


def test_map_has_the_input_size_when_the_preprocessor_pads():
    model = _tiny_classifier()
    images = torch.zeros((1, 1, 50, 70), dtype=torch.uint8)  # padded to 64 x 96 inside
    assert grad_cam(model, images).shape == (1, 50, 70)
