"""tools/test.py on a classifier config (task = 'msom'): metrics.json, patient_scores.csv,
roc.png and the survival analysis, checked against scikit-learn on the patients' mean scores.

The end-to-end test runs the tool's ``main()`` with a stand-in classifier (its slice score is
the dataset's value) so it tests the tool and the metric, not a trained network.
"""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from mmdet.registry import DATASETS, MODELS
from mmnpc.evaluation import PatientAUCMetric, youden_cutoff

TOOLS = Path(__file__).resolve().parents[2] / 'tools'
METRIC_KEYS = ('auc', 'auc_ci_low', 'auc_ci_high', 'auc_ci_method', 'cutoff', 'cutoff_rule',
               'precision', 'recall', 'specificity', 'accuracy', 'n_val_patients',
               'n_train_patients', 'train_auc', 'median_cutoff', 'median_precision',
               'median_recall', 'median_specificity', 'median_accuracy')


@pytest.fixture(scope='module')
def test_tool():
    sys.path.insert(0, str(TOOLS))  # tools/test.py imports _common
    try:
        spec = importlib.util.spec_from_file_location('mmnpc_test_tool', TOOLS / 'test.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(TOOLS))
    return module


def _cohort(seed=0, n_train=10, n_val=8):
    """[(patient_id, split, label, slice scores)], both classes in both splits."""
    rng = np.random.default_rng(seed)
    patients = []
    for split, n in (('train', n_train), ('val', n_val)):
        for i in range(n):
            label = i % 2
            scores = np.clip(rng.normal(0.4 + 0.15 * label, 0.2, size=1 + i % 3), 0.01, 0.99)
            patients.append((f'{split[0].upper()}{i:02d}', split, label, scores.round(4).tolist()))
    return patients


def _write_clinical(path: Path, patients, survival=True) -> Path:
    rows = []
    for k, (patient_id, split, label, _) in enumerate(patients):
        row = {'patient_id': patient_id, 'age': 50, 'msom': label, 'split': split}
        if survival:
            row.update(dmfs_months=10 + 3 * k + 20 * (1 - label), dmfs_event=label,
                       os_months=60, os_event=0)
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _patient_means(patients, split):
    chosen = [(np.mean(np.float32(s)), label) for _, sp, label, s in patients if sp == split]
    return np.array([c[0] for c in chosen]), np.array([c[1] for c in chosen])


# ------------------------------------------------------------ stand-in model and dataset
@DATASETS.register_module(force=True)
class ToyMsomSlices(BaseDataset):
    """Slices from a JSON list [{patient_id, split, label, score}]; the 'image' is the score."""

    def __init__(self, clinical_file: str, **kwargs):
        self.clinical_file = clinical_file
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        return json.loads(Path(self.ann_file).read_text())

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        sample = BaseDataElement(metainfo=dict(patient_id=info['patient_id'], split=info['split']))
        sample.gt_label = torch.tensor([float(info['label'])])
        return dict(inputs=torch.tensor([info['score']]), data_samples=sample)


@MODELS.register_module(force=True)
class ToyMsomScorer(BaseModel):
    """pred_score = input + bias (bias 0 in the checkpoint): the dataset's scores come back."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='predict'):
        if mode != 'predict':
            raise ValueError(f'toy model only predicts, got mode {mode!r}')
        for x, sample in zip(inputs, data_samples):
            sample.pred_score = (x + self.bias).detach()
        return data_samples


def _toy_config(tmp_path: Path, patients, clinical: Path) -> tuple[Path, Path]:
    slices = [dict(patient_id=p, split=s, label=label, score=score)
              for p, s, label, scores in patients for score in scores]
    ann_file = tmp_path / 'slices.json'
    ann_file.write_text(json.dumps(slices))
    config = tmp_path / 'toy_msom.py'
    config.write_text(f'''
task = 'msom'
default_scope = 'mmdet'
model = dict(type='ToyMsomScorer')
test_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ToyMsomSlices', ann_file={str(ann_file)!r}, clinical_file={str(clinical)!r}))
test_evaluator = dict(type='PatientAUCMetric')
test_cfg = dict(type='TestLoop')
log_level = 'WARNING'
''')
    checkpoint = tmp_path / 'toy.pth'
    torch.save({'state_dict': {'bias': torch.zeros(1)}, 'meta': {}}, checkpoint)
    return config, checkpoint


# ------------------------------------------------------------------------------ tests
def test_classifier_configs_are_recognised(test_tool):
    assert test_tool.is_classifier(ConfigDict(task='msom'))
    assert not test_tool.is_classifier(ConfigDict(sequence='cet1'))
    with pytest.raises(SystemExit, match='--tta'):
        test_tool.check_classifier_args(SimpleNamespace(show=False, show_dir=None, tta=True))


def test_clinical_table_comes_from_the_dataset_or_next_to_the_sequence(test_tool):
    cfg = ConfigDict(test_dataloader=dict(dataset=dict(clinical_file='/d/clinical.csv')))
    assert test_tool.clinical_table(cfg) == Path('/d/clinical.csv')
    cfg = ConfigDict(test_dataloader=dict(dataset=dict(dataset=dict(data_root='/d/cet1/'))))
    assert test_tool.clinical_table(cfg) == Path('/d/clinical.csv')


def test_write_classifier_results_with_survival(test_tool, tmp_path, capsys):
    patients = _cohort()
    metric = PatientAUCMetric()
    samples = [{'patient_id': p, 'split': s, 'gt_label': torch.tensor([label]),
                'pred_score': torch.tensor([score])}
               for p, s, label, scores in patients for score in scores]
    metric.process({}, samples)
    metric.evaluate(len(samples))
    clinical = _write_clinical(tmp_path / 'clinical.csv', patients)
    cfg = ConfigDict(work_dir=str(tmp_path / 'work'),
                     test_dataloader=dict(dataset=dict(clinical_file=str(clinical))))
    runner = SimpleNamespace(test_evaluator=SimpleNamespace(metrics=[metric]))
    test_tool.write_classifier_results(cfg, runner)
    survival = json.loads((tmp_path / 'work' / 'survival' / 'survival.json').read_text())
    metrics = json.loads((tmp_path / 'work' / 'metrics.json').read_text())
    assert survival['cutoff'] == metrics['cutoff']
    assert survival['split'] == 'val' and survival['n_patients'] == 8
    assert 'survival analysis written' in capsys.readouterr().out

    _write_clinical(clinical, patients, survival=False)
    test_tool.write_classifier_results(cfg, runner)
    assert 'survival analysis skipped' in capsys.readouterr().out


def test_end_to_end_on_a_classifier_config(test_tool, tmp_path, monkeypatch, capsys):
    patients = _cohort(seed=1)
    clinical = _write_clinical(tmp_path / 'clinical.csv', patients)
    config, checkpoint = _toy_config(tmp_path, patients, clinical)
    work_dir = tmp_path / 'work'
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(sys, 'argv', ['test.py', str(config), str(checkpoint),
                                      '--work-dir', str(work_dir)])
    test_tool.main()

    metrics = json.loads((work_dir / 'metrics.json').read_text())
    assert set(METRIC_KEYS) <= set(metrics)
    val_scores, val_labels = _patient_means(patients, 'val')
    train_scores, train_labels = _patient_means(patients, 'train')
    cutoff = youden_cutoff(train_scores, train_labels)
    called = (val_scores >= cutoff).astype(int)
    assert metrics['cutoff'] == pytest.approx(cutoff, abs=1e-6)
    assert metrics['cutoff_rule'] == 'youden_train'
    assert metrics['auc'] == pytest.approx(roc_auc_score(val_labels, val_scores))
    assert metrics['train_auc'] == pytest.approx(roc_auc_score(train_labels, train_scores))
    assert metrics['auc_ci_low'] <= metrics['auc'] <= metrics['auc_ci_high']
    assert metrics['precision'] == pytest.approx(precision_score(val_labels, called))
    assert metrics['recall'] == pytest.approx(recall_score(val_labels, called))
    assert metrics['specificity'] == pytest.approx(recall_score(val_labels, called, pos_label=0))
    assert metrics['accuracy'] == pytest.approx(accuracy_score(val_labels, called))
    assert (metrics['n_val_patients'], metrics['n_train_patients']) == (8, 10)

    table = pd.read_csv(work_dir / 'patient_scores.csv')
    assert list(table.columns[:5]) == ['patient_id', 'split', 'score', 'label', 'risk_group']
    assert len(table) == 18
    high = table['score'] >= metrics['cutoff']
    assert (table.loc[high, 'risk_group'] == 'high').all()
    assert (table.loc[~high, 'risk_group'] == 'low').all()
    assert (work_dir / 'roc.png').stat().st_size > 10_000
    assert (work_dir / 'survival' / 'survival.json').is_file()
    printed = capsys.readouterr().out
    assert 'AUC' in printed and 'survival analysis written' in printed


def test_metrics_json_has_null_not_nan(test_tool, tmp_path):
    patients = [p for p in _cohort() if p[1] == 'train' or p[2] == 0]  # val: negatives only
    metric = PatientAUCMetric()
    samples = [{'patient_id': p, 'split': s, 'gt_label': torch.tensor([label]),
                'pred_score': torch.tensor([score])}
               for p, s, label, scores in patients for score in scores]
    metric.process({}, samples)
    metric.evaluate(len(samples))
    cfg = ConfigDict(work_dir=str(tmp_path), test_dataloader=dict(dataset=dict(
        clinical_file=str(tmp_path / 'absent.csv'))))
    test_tool.write_classifier_results(
        cfg, SimpleNamespace(test_evaluator=SimpleNamespace(metrics=[metric])))
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert metrics['auc'] is None and metrics['recall'] is None
    assert metrics['specificity'] is not None and not math.isnan(metrics['specificity'])
    assert any('AUC is undefined' in note for note in metrics['notes'])
