"""PatientAUCMetric: patient = mean of slices; cut-off from train applied to val; NaN, no crash."""
from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import BaseDataElement
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from mmnpc.evaluation import (PatientAUCMetric, delong_auc_ci, evaluate_patient_table,
                              median_cutoff, patient_scores, youden_cutoff)

# (patient_id, split, label, slice scores)
PATIENTS = [
    ('T1', 'train', 1, [0.9, 0.7]), ('T2', 'train', 1, [0.6, 0.5, 0.4]),
    ('T3', 'train', 0, [0.3, 0.5]), ('T4', 'train', 0, [0.2]), ('T5', 'train', 1, [0.35, 0.25]),
    ('T6', 'train', 0, [0.45, 0.53]),
    ('V1', 'val', 1, [0.8, 0.6]), ('V2', 'val', 1, [0.45]), ('V3', 'val', 0, [0.5, 0.3, 0.4]),
    ('V4', 'val', 0, [0.1, 0.2]), ('V5', 'val', 1, [0.3, 0.2]), ('V6', 'val', 0, [0.52]),
]


def _samples(patients=PATIENTS, score_shape=1):
    """Data samples as MMEngine's Evaluator hands them to a metric (dicts of tensors)."""
    samples = []
    for patient_id, split, label, scores in patients:
        for score in scores:
            pred = torch.tensor([score]) if score_shape == 1 else torch.tensor([1 - score, score])
            samples.append({'patient_id': patient_id, 'split': split,
                            'gt_label': torch.tensor([label]), 'pred_score': pred})
    return samples


def _evaluate(samples, **kwargs):
    metric = PatientAUCMetric(**kwargs)
    metric.process({}, samples)
    return metric, metric.evaluate(len(samples))


def _means(split):
    rows = [(np.mean(s), label) for _, sp, label, s in PATIENTS if sp == split]
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def test_patient_score_is_the_mean_of_its_slices():
    slices = pd.DataFrame([(pid, split, score, label) for pid, split, label, scores in PATIENTS
                           for score in scores], columns=['patient_id', 'split', 'score', 'label'])
    table = patient_scores(slices.sample(frac=1, random_state=0))  # order must not matter
    assert list(table['patient_id']) == [p[0] for p in PATIENTS]
    t2 = table.set_index('patient_id').loc['T2']
    assert t2['score'] == pytest.approx(0.5) and t2['n_slices'] == 3 and t2['label'] == 1
    assert t2['split'] == 'train'


def test_slices_of_a_patient_must_agree():
    slices = pd.DataFrame({'patient_id': ['P1', 'P1'], 'split': ['val', 'val'],
                           'score': [0.1, 0.2], 'label': [0, 1]})
    with pytest.raises(ValueError, match='P1.*label'):
        patient_scores(slices)
    with pytest.raises(ValueError, match='columns'):
        patient_scores(slices.drop(columns='split'))


def test_results_match_sklearn_on_validation_patients():
    metric, results = _evaluate(_samples())
    val_scores, val_labels = _means('val')
    train_scores, train_labels = _means('train')
    cutoff = youden_cutoff(train_scores, train_labels)
    predicted = (val_scores >= cutoff).astype(int)
    # J: 2/3 at T2's mean 0.5, at most 1/3 elsewhere; the model's scores are float32: approx
    assert results['msom/cutoff'] == pytest.approx(cutoff) == pytest.approx(0.5)
    assert results['msom/auc'] == pytest.approx(roc_auc_score(val_labels, val_scores))
    assert results['msom/train_auc'] == pytest.approx(roc_auc_score(train_labels, train_scores))
    assert results['msom/precision'] == pytest.approx(precision_score(val_labels, predicted))
    assert results['msom/recall'] == pytest.approx(recall_score(val_labels, predicted))
    assert results['msom/specificity'] == pytest.approx(
        recall_score(val_labels, predicted, pos_label=0))
    assert results['msom/accuracy'] == pytest.approx(accuracy_score(val_labels, predicted))
    assert results['msom/n_val_patients'] == 6 and results['msom/n_train_patients'] == 6
    assert results['msom/auc_ci_low'] <= results['msom/auc'] <= results['msom/auc_ci_high']
    median = median_cutoff(train_scores)
    assert results['msom/median_cutoff'] == pytest.approx(median)
    assert results['msom/median_accuracy'] == pytest.approx(
        accuracy_score(val_labels, (val_scores >= median).astype(int)))
    report = metric.last_evaluation.report
    assert report['cutoff_rule'] == 'youden_train'
    assert report['median_cutoff_rule'] == 'median_train'
    assert 'DeLong' in report['auc_ci_method']


def test_risk_groups_follow_the_cutoff():
    metric, results = _evaluate(_samples())
    table = metric.last_evaluation.table
    assert list(table.columns) == ['patient_id', 'split', 'score', 'label', 'risk_group',
                                   'n_slices']
    expected = np.where(table['score'] >= results['msom/cutoff'], 'high', 'low')
    assert (table['risk_group'] == expected).all() and set(expected) == {'high', 'low'}


def test_cutoff_is_chosen_on_train_and_ignores_validation_scores():
    _, results = _evaluate(_samples())
    shifted = [(pid, split, label, [min(1.0, s + 0.3) if label else s for s in scores]
                if split == 'val' else scores) for pid, split, label, scores in PATIENTS]
    _, shifted_results = _evaluate(_samples(shifted))
    assert shifted_results['msom/cutoff'] == results['msom/cutoff']
    assert shifted_results['msom/median_cutoff'] == results['msom/median_cutoff']
    assert shifted_results['msom/auc'] > results['msom/auc']  # the validation numbers did move


def test_runs_inside_an_mmengine_evaluator_with_data_elements():
    evaluator = Evaluator(PatientAUCMetric())
    elements = []
    for sample in _samples(score_shape=2):  # class probabilities: the MSOM column is used
        element = BaseDataElement(metainfo={'patient_id': sample['patient_id'],
                                            'split': sample['split']})
        element.gt_label, element.pred_score = sample['gt_label'], sample['pred_score']
        elements.append(element)
    evaluator.process(elements)
    results = evaluator.evaluate(len(elements))
    val_scores, val_labels = _means('val')
    assert results['msom/auc'] == pytest.approx(roc_auc_score(val_labels, val_scores))


def test_single_class_validation_gives_nan_and_a_warning(caplog):
    one_class = [p for p in PATIENTS if p[1] == 'train' or p[2] == 0]
    with caplog.at_level(logging.WARNING):
        metric, results = _evaluate(_samples(one_class))
    assert math.isnan(results['msom/auc']) and math.isnan(results['msom/auc_ci_low'])
    assert math.isnan(results['msom/recall'])  # no positive validation patient
    assert results['msom/specificity'] >= 0 and not math.isnan(results['msom/cutoff'])
    assert any('AUC is undefined' in note for note in metric.last_evaluation.notes)


def test_single_class_training_patients_give_no_cutoff_but_an_auc():
    one_class = [p for p in PATIENTS if p[1] == 'val' or p[2] == 0]
    metric, results = _evaluate(_samples(one_class))
    assert math.isnan(results['msom/cutoff']) and math.isnan(results['msom/accuracy'])
    assert not math.isnan(results['msom/auc'])
    assert (metric.last_evaluation.table['risk_group'] == '').all()


def test_validation_only_needs_a_given_cutoff():
    val_only = [p for p in PATIENTS if p[1] == 'val']
    with pytest.raises(ValueError, match='cutoff'):
        _evaluate(_samples(val_only))
    metric, results = _evaluate(_samples(val_only), cutoff=0.42)
    assert results['msom/cutoff'] == 0.42
    assert metric.last_evaluation.report['cutoff_rule'] == 'fixed'
    assert results['msom/n_train_patients'] == 0 and math.isnan(results['msom/median_cutoff'])
    val_scores, val_labels = _means('val')
    assert results['msom/accuracy'] == pytest.approx(
        accuracy_score(val_labels, (val_scores >= 0.42).astype(int)))


def test_bad_samples_are_refused():
    with pytest.raises(KeyError, match='patient_id'):
        PatientAUCMetric().process({}, [{'split': 'val', 'gt_label': torch.tensor([0]),
                                         'pred_score': torch.tensor([0.2])}])
    with pytest.raises(ValueError, match='P9.*gt_label'):
        PatientAUCMetric().process({}, [{'patient_id': 'P9', 'split': 'val',
                                         'gt_label': torch.tensor([2]),
                                         'pred_score': torch.tensor([0.2])}])
    table = pd.DataFrame({'patient_id': ['A', 'B'], 'split': ['train', 'test'],
                          'score': [0.1, 0.2], 'label': [0, 1]})
    with pytest.raises(ValueError, match="unknown split.*'test'"):
        evaluate_patient_table(table)
    with pytest.raises(ValueError, match='finite'):
        PatientAUCMetric(cutoff=math.nan)


def test_report_auc_equals_delong_on_val_means():
    table = patient_scores(pd.DataFrame(
        [(pid, split, score, label) for pid, split, label, scores in PATIENTS for score in scores],
        columns=['patient_id', 'split', 'score', 'label']))
    report = evaluate_patient_table(table, level=0.9).report
    val_scores, val_labels = _means('val')
    interval = delong_auc_ci(val_scores, val_labels, level=0.9)
    assert (report['auc'], report['auc_ci_low'], report['auc_ci_high']) == pytest.approx(
        (interval.auc, interval.ci_low, interval.ci_high))


def test_samples_with_attention_are_pooled_by_attention():
    """A model with bag_pooling='attention' adds pred_logit / pred_attention: the patient
    score is the attention-pooled one (mmnpc.models.bag_pooling), not the mean."""
    from scipy.special import expit, logit, softmax
    samples = _samples()
    attention = np.linspace(-1.0, 2.0, len(samples))
    for sample, a in zip(samples, attention):
        sample['pred_logit'] = torch.tensor([float(logit(sample['pred_score'][0]))])
        sample['pred_attention'] = torch.tensor([a])
    metric = PatientAUCMetric(eval_split='val')
    metric.process({}, samples)
    metric.compute_metrics(metric.results)
    table = metric.last_evaluation.table.set_index('patient_id')
    rows = [(s['patient_id'], float(s['pred_logit'][0]), a) for s, a in zip(samples, attention)]
    for patient in ('T2', 'V3'):
        logits = np.array([r[1] for r in rows if r[0] == patient])
        weights = softmax([r[2] for r in rows if r[0] == patient])
        assert table.loc[patient, 'score'] == pytest.approx(expit(weights @ logits))
