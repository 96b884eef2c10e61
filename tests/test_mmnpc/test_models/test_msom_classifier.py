"""The MSOM classifier: detector's backbone + FPN, P3 pooling, clinical fusion, weight transfer."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

from mmdet.registry import MODELS
from mmnpc.datasets import ClinicalEncoder
from mmnpc.models import init_msom_classifier, load_detector_weights

CONFIG_DIR = Path(__file__).resolve().parents[3] / 'configs'
MSOM_CONFIGS = sorted(CONFIG_DIR.glob('msom_*.py'))
VARS = [dict(name='age', kind='numeric'),
        dict(name='sex', kind='categorical', categories=['F', 'M'])]  # 5 features


@pytest.fixture(scope='module')
def fusion_cfg() -> Config:
    init_default_scope('mmdet')
    return Config.fromfile(str(CONFIG_DIR / 'msom_fusion_tiny.py'))


@pytest.fixture(scope='module')
def small_model(fusion_cfg):
    return _small(fusion_cfg.model)


def _small(model_cfg, clinical_vars=VARS):
    """The config's classifier shrunk to ResNet-18 (same FPN levels) for fast unit tests."""
    cfg = copy.deepcopy(model_cfg)
    cfg.backbone.depth = 18
    cfg.neck.in_channels = [64, 128, 256, 512]
    cfg.clinical_vars = clinical_vars
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _samples(n: int, num_clinical: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        sample = BaseDataElement(metainfo=dict(patient_id=f'P{i}', split='train'))
        sample.gt_label = torch.tensor([float(i % 2)])
        sample.clinical = torch.randn(num_clinical, generator=generator)
        samples.append(sample)
    return samples


def _images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('path', MSOM_CONFIGS, ids=[p.stem for p in MSOM_CONFIGS])
def test_backbone_neck_and_normalisation_are_the_detectors(path):
    msom = Config.fromfile(str(path))
    det = Config.fromfile(str(CONFIG_DIR / f'det_{msom.sequence}.py')).model
    assert msom.task == 'msom' and msom.model.type == 'MsomClassifier'
    backbone = msom.model.backbone.to_dict()
    # frozen BN statistics when fine-tuning at batch 2; the region recipes (*_cpu) learn them
    # from batches of 32 windows of 8 patients
    assert backbone.pop('norm_eval') is (not path.stem.removesuffix('_attention').endswith('_cpu'))
    assert backbone == {k: v for k, v in det.backbone.to_dict().items() if k != 'norm_eval'}
    assert msom.model.neck.to_dict() == det.neck.to_dict()
    for key in ('mean', 'std', 'bgr_to_rgb', 'pad_size_divisor'):
        assert msom.model.data_preprocessor[key] == det.data_preprocessor[key], key
    assert msom.model.feature_level == 1  # P3 (stride 8)
    assert msom.model.clinical_vars == msom.train_dataloader.dataset.clinical_vars
    assert msom.val_dataloader.dataset.clinical_vars == msom.train_dataloader.dataset.clinical_vars
    assert msom.model.det_checkpoint is None


def test_loss_predict_and_tensor_modes(small_model):
    model = small_model.train()
    samples = _samples(2, 5)
    data = model.data_preprocessor({'inputs': list(_images(2)), 'data_samples': samples}, True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_bce'} and torch.isfinite(losses['loss_bce'])
    losses['loss_bce'].backward()
    assert model.fc.weight.grad is not None and model.backbone.conv1.weight.grad.abs().sum() > 0
    logits = model(**data, mode='tensor')
    assert logits.shape == (2, 1)
    # BCE of sigmoid(logit) against the labels, computed by hand
    p = torch.sigmoid(logits.detach().view(-1))
    expected = -(torch.log(1 - p[0]) + torch.log(p[1])) / 2
    torch.testing.assert_close(losses['loss_bce'].detach(), expected)
    model.eval()
    predicted = model(**data, mode='predict')
    assert predicted is data['data_samples']
    for sample in predicted:
        assert sample.pred_score.shape == (1,) and 0 < sample.pred_score.item() < 1
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(**data, mode='features')


def test_p3_is_pooled_and_the_clinical_vector_reaches_the_fc(fusion_cfg):
    # a fresh model: the shared one's feature standardiser was fitted on two random images
    # by an earlier test, which makes its logits ~1e4 and a clinical change invisible
    model = _small(fusion_cfg.model).eval()
    inputs = _images(2, 64).float()
    levels = model.neck(model.backbone(inputs))
    assert levels[model.feature_level].shape == (2, 256, 8, 8)  # stride 8
    assert model.fc.in_features == 256 + 5
    samples = _samples(2, 5)
    logits = model(inputs, samples, mode='tensor')
    samples[0].clinical = samples[0].clinical + 1.0
    changed = model(inputs, samples, mode='tensor')
    assert not torch.allclose(logits[0], changed[0]) and torch.allclose(logits[1], changed[1])
    with pytest.raises(ValueError, match=r'expects \(2, 5\)'):
        model(inputs, _samples(2, 4), mode='tensor')


def test_pooled_features_are_standardised_with_training_statistics(fusion_cfg):
    model = _small(fusion_cfg.model).train()
    assert model.image_norm.num_batches_tracked.item() == 0
    samples = _samples(2, 5)
    data = model.data_preprocessor({'inputs': list(_images(2)), 'data_samples': samples}, True)
    model(**data, mode='loss')
    assert model.image_norm.num_batches_tracked.item() == 1  # training slices update it
    assert 'image_norm.running_mean' in model.state_dict()  # saved with the checkpoint
    model.eval()
    pooled = model.extract_feat(data['inputs'])
    expected = model.fc(torch.cat([model.image_norm(pooled), torch.stack(
        [s.clinical for s in samples])], 1))
    torch.testing.assert_close(model(**data, mode='tensor'), expected)
    assert model.image_norm.num_batches_tracked.item() == 1  # evaluation does not
    raw_cfg = copy.deepcopy(fusion_cfg.model)
    raw_cfg.standardize_image_features = False
    raw = _small(raw_cfg)
    assert isinstance(raw.image_norm, torch.nn.Identity)


def test_image_only_model_ignores_clinical(fusion_cfg):
    model = _small(fusion_cfg.model, clinical_vars=[])
    assert model.num_clinical == 0 and model.fc.in_features == 256
    assert model(_images(2).float(), _samples(2, 0), mode='tensor').shape == (2, 1)


def test_score_slices_matches_predict_and_keeps_the_mode(small_model):
    model = small_model
    images, samples = _images(3, 64)[:, :1].expand(-1, 3, -1, -1), _samples(3, 5)  # grey
    patient = samples[0].clinical
    for sample in samples:
        sample.clinical = patient
    model.eval()
    data = model.data_preprocessor({'inputs': list(images), 'data_samples': samples}, False)
    expected = torch.cat([s.pred_score for s in model(**data, mode='predict')])
    model.train()
    scores = model.score_slices(images, patient)
    assert model.training
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(model.score_slices(images[:, :1], patient), expected)  # 1 channel
    with pytest.raises(ValueError, match='clinical'):
        model.score_slices(images)


@pytest.fixture(scope='module')
def detector_checkpoint(tmp_path_factory) -> Path:
    """A Mask R-CNN R50-FPN (det_cet1_tiny.py) checkpoint with random weights."""
    init_default_scope('mmdet')
    det_cfg = Config.fromfile(str(CONFIG_DIR / 'det_cet1_tiny.py'))
    torch.manual_seed(1)
    detector = MODELS.build(det_cfg.model)
    detector.init_weights()
    with torch.no_grad():  # BN buffers too must travel
        detector.backbone.bn1.running_mean.uniform_()
    path = tmp_path_factory.mktemp('det') / 'det.pth'
    torch.save({'state_dict': detector.state_dict(),
                'meta': {'train_patient_ids': ['SYN000', 'SYN001']}}, path)
    return path


def test_detector_backbone_and_neck_weights_are_transferred(fusion_cfg, detector_checkpoint):
    det_state = torch.load(detector_checkpoint, weights_only=False)['state_dict']
    cfg = copy.deepcopy(fusion_cfg.model)
    torch.manual_seed(2)
    random_init = MODELS.build(cfg)
    random_init.init_weights()
    cfg.det_checkpoint = str(detector_checkpoint)
    torch.manual_seed(2)
    model = MODELS.build(cfg)
    model.init_weights()
    state = model.state_dict()
    transferred = [k for k in state if k.startswith(('backbone.', 'neck.'))]
    assert len(transferred) > 300
    for key in transferred:
        assert torch.equal(state[key], det_state[key]), key
    # the test can fail: random init differs from the detector, the FC stays at its init
    assert not torch.equal(random_init.state_dict()['neck.fpn_convs.1.conv.weight'],
                           det_state['neck.fpn_convs.1.conv.weight'])
    torch.testing.assert_close(state['fc.weight'], random_init.state_dict()['fc.weight'])


def test_a_different_architecture_is_refused(small_model, detector_checkpoint):
    model = small_model  # ResNet-18: no layer matches the detector's ResNet-50
    with pytest.raises(ValueError, match='cannot transfer backbone./neck. weights'):
        load_detector_weights(model, str(detector_checkpoint))


def test_init_msom_classifier_restores_weights_and_encoder(fusion_cfg, tmp_path):
    cfg = copy.deepcopy(fusion_cfg)
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.model.clinical_vars = VARS
    model = _small(cfg.model).eval()  # a fresh one: the module's model is being trained
    encoder = ClinicalEncoder(VARS).fit({'A': {'age': '40', 'sex': 'F'}, 'B': {'age': '60', 'sex': 'M'}})
    path = tmp_path / 'msom.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'clinical_encoder': encoder.state_dict()}}, path)
    loaded, loaded_encoder = init_msom_classifier(cfg, str(path))
    assert loaded_encoder == encoder and not loaded.training
    clinical = torch.from_numpy(encoder.encode({'age': '55', 'sex': 'M'}, 'C'))
    images = _images(2)
    torch.testing.assert_close(loaded.score_slices(images, clinical),
                               model.score_slices(images, clinical))
    cfg.task = 'detection'
    with pytest.raises(ValueError, match='not an MSOM classifier config'):
        init_msom_classifier(cfg, str(path))
