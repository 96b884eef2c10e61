"""Attention pooling: one rule for training, evaluation and prediction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit

from mmnpc.evaluation.patient_table import patient_scores
from mmnpc.models.bag_pooling import SliceScores, patient_score_of, pooled_score
from mmnpc.models.msom_classifier import patient_mean_logits


def test_mean_pooling_weighs_each_slice_once():
    assert pooled_score([0.2, 0.4, 0.9], slice_ids=[1, 1, 2]) == pytest.approx(0.6)
    assert pooled_score([0.2, 0.4, 0.9]) == pytest.approx(0.5)


def test_attention_pooling_is_the_softmax_weighted_logit_by_hand():
    logits, attention = np.array([2.0, -1.0, 0.5]), np.array([0.0, np.log(3.0), 0.0])
    weights = np.array([1.0, 3.0, 1.0]) / 5.0
    expected = expit(weights @ logits)
    assert pooled_score(expit(logits), [1, 1, 2], logits, attention) == pytest.approx(expected)
    # equal attention = the mean logit, whatever the slices
    assert pooled_score(expit(logits), None, logits, np.zeros(3)) == pytest.approx(
        expit(logits.mean()))
    with pytest.raises(ValueError, match='both'):
        pooled_score([0.5], None, [0.0], None)
    with pytest.raises(ValueError, match='at least one'):
        pooled_score([])


def test_training_pooling_equals_the_evaluation_rule():
    logits = torch.tensor([2.0, -1.0, 0.5, 1.0], requires_grad=True)
    attention = torch.tensor([0.0, 1.1, -0.3, 0.7], requires_grad=True)
    labels = torch.tensor([1.0, 1.0, 1.0, 0.0])
    pooled, bag_labels = patient_mean_logits(logits, labels, ['P', 'P', 'P', 'Q'], attention)
    assert expit(pooled[0].item()) == pytest.approx(pooled_score(
        expit(logits[:3].detach().numpy()), None, logits[:3].detach(), attention[:3].detach()))
    assert pooled[1].item() == pytest.approx(1.0) and bag_labels.tolist() == [1.0, 0.0]
    pooled.sum().backward()
    assert attention.grad is not None and attention.grad[:3].abs().sum() > 0


def test_patient_table_pools_by_attention_when_samples_carry_it():
    rows = pd.DataFrame({'patient_id': ['A', 'A', 'B'], 'split': ['val', 'val', 'train'],
                         'score': expit([1.0, -1.0, 0.3]), 'label': [1, 1, 0],
                         'slice_id': [7, 8, 9], 'logit': [1.0, -1.0, 0.3],
                         'attention': [2.0, 0.0, 5.0]})
    table = patient_scores(rows).set_index('patient_id')
    weights = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
    assert table.loc['A', 'score'] == pytest.approx(expit(weights @ [1.0, -1.0]))
    assert table.loc['A', 'n_slices'] == 2 and table.loc['B', 'score'] == pytest.approx(expit(0.3))
    with pytest.raises(ValueError, match='every sample'):
        patient_scores(rows.assign(logit=[1.0, np.nan, 0.3]))


def test_slice_scores_carry_the_pooled_patient_score():
    assert patient_score_of({1: 0.2, 2: 0.6}) == pytest.approx(0.4)
    assert patient_score_of(SliceScores({1: 0.2, 2: 0.6}, patient_score=0.9)) == 0.9


@pytest.fixture(scope='module')
def attention_model():
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmnpc  # noqa: F401
    from pathlib import Path
    init_default_scope('mmdet')
    cfg = Config.fromfile(str(Path(__file__).resolve().parents[3] / 'configs'
                              / 'msom_cet1_cpu_attention.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_the_attention_model_predicts_logits_and_attention_and_learns_through_both(
        attention_model):
    from mmengine.structures import BaseDataElement
    model = attention_model
    images = torch.randint(0, 255, (4, 3, 64, 64), dtype=torch.uint8)
    samples = []
    for k, patient in enumerate(['P', 'P', 'Q', 'Q']):
        sample = BaseDataElement(metainfo={'patient_id': patient})
        sample.gt_label = torch.tensor([float(k < 2)])
        samples.append(sample)
    batch = model.data_preprocessor({'inputs': list(images.float()), 'data_samples': samples},
                                    True)
    model.train()
    loss = model(batch['inputs'], batch['data_samples'], mode='loss')['loss_bce']
    loss.backward()
    assert model.attention[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(batch['inputs'], batch['data_samples'], mode='predict')
    probs, logits, attention = model.score_slices(images, details=True)
    assert [s.pred_logit.item() for s in out] == pytest.approx(logits.tolist(), rel=1e-4)
    assert [s.pred_attention.item() for s in out] == pytest.approx(attention.tolist(), rel=1e-4)
    assert probs.tolist() == pytest.approx(torch.sigmoid(logits).tolist())


def test_attention_needs_patient_level_training():
    from mmdet.registry import MODELS
    with pytest.raises(ValueError, match="loss_level='patient'"):
        MODELS.build(dict(type='MsomClassifier', bag_pooling='attention', loss_level='instance',
                          backbone=dict(type='ResNet', depth=18), neck=dict(
                              type='FPN', in_channels=[64, 128, 256, 512], out_channels=32,
                              num_outs=4)))
