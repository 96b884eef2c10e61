"""Hooks: training patients and the clinical encoder in checkpoints; the detector patient guard."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import BaseLoop
from torch import nn
from torch.utils.data import DataLoader

from mmdet.datasets import CocoDataset
from mmnpc.datasets import ClinicalEncoder, MsomSliceDataset
from data_prep.types import DataPrepError
from mmnpc.engine import (ClinicalEncoderHook, DetCheckpointGuardHook, SplitGuardHook,
                          TrainPatientsHook)
from mmnpc.models import PatientOverlapError

TRAIN_IDS = ['SYN000', 'SYN001', 'SYN002', 'SYN003']
VARS = [dict(name='age', kind='numeric'), dict(name='pni', kind='numeric')]
BOTH = dict(train='annotations/train.json', val='annotations/val.json')


class _Loop(BaseLoop):
    def run(self) -> None:
        pass


class _Runner:
    """Just what the hooks read: the model and the built loops' dataloaders."""

    def __init__(self, model=None, **datasets):
        self.model = model if model is not None else nn.Module()
        for name in ('train', 'val', 'test'):
            loop = None
            if name in datasets:
                loop = _Loop(self, DataLoader(datasets[name], collate_fn=list))
            setattr(self, f'_{name}_loop', loop)


def _msom(root: Path, ann_files=None) -> MsomSliceDataset:
    return MsomSliceDataset(clinical_file=str(root / 'clinical.csv'), data_root=str(root / 'cet1'),
                            ann_files=ann_files, clinical_vars=VARS)


def _coco(root: Path, ann_file='annotations/train.json') -> CocoDataset:
    return CocoDataset(data_root=str(root / 'cet1'), ann_file=ann_file, lazy_init=True,
                       metainfo=dict(classes=('GTV', 'GTVln')))


def test_detector_checkpoints_record_the_training_patients(msom_root):
    hook, runner = TrainPatientsHook(), _Runner(train=_coco(msom_root))
    hook.before_train(runner)
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['train_patient_ids'] == TRAIN_IDS


def test_patients_of_a_loaded_checkpoint_are_kept(msom_root):
    hook, runner = TrainPatientsHook(), _Runner(train=_msom(msom_root))
    hook.after_load_checkpoint(runner, {'meta': {'train_patient_ids': ['OLD007']}})
    hook.before_train(runner)
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['train_patient_ids'] == ['OLD007'] + TRAIN_IDS


def test_nothing_is_recorded_when_patients_are_unknown(msom_root):
    path = msom_root / 'cet1' / 'annotations' / 'anonymous.json'
    coco = json.loads((msom_root / 'cet1' / 'annotations' / 'train.json').read_text())
    for image in coco['images']:
        del image['patient_id']
    path.write_text(json.dumps(coco))
    hook, runner = TrainPatientsHook(), _Runner(train=_coco(msom_root, 'annotations/anonymous.json'))
    hook.before_train(runner)
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    assert 'train_patient_ids' not in checkpoint['meta']  # [] would claim "trained on nobody"


def test_encoder_is_saved_shared_and_restored(msom_root):
    train, val = _msom(msom_root), _msom(msom_root, BOTH)
    runner, hook = _Runner(train=train, val=val), ClinicalEncoderHook()
    other = ClinicalEncoder(VARS).fit({'X': {'age': '80', 'pni': '30'}, 'Y': {'age': '90', 'pni': '40'}})
    val.set_clinical_encoder(other)
    hook.before_run(runner)  # validation uses the training dataset's encoder
    assert val.clinical_encoder == train.clinical_encoder
    fitted = train.clinical_encoder
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['clinical_encoder'] == fitted.state_dict()

    hook.after_load_checkpoint(runner, {'meta': {'clinical_encoder': other.state_dict()}})
    assert train.clinical_encoder == other and val.clinical_encoder == other
    item = val.get_data_info(0)
    row = {'age': str(40 + 5 * int(item['patient_id'][-1])), 'pni': str(45 + int(item['patient_id'][-1]))}
    np.testing.assert_allclose(item['clinical'], other.encode(row))


def _det_checkpoint(tmp_path: Path, meta: dict) -> str:
    path = tmp_path / 'det.pth'
    torch.save({'state_dict': {}, 'meta': meta}, path)
    return str(path)


def _guarded_runner(msom_root: Path, det_checkpoint) -> _Runner:
    model = nn.Module()
    model.det_checkpoint = det_checkpoint
    return _Runner(model, train=_msom(msom_root), val=_msom(msom_root, BOTH))


def test_guard_refuses_a_detector_trained_on_validation_patients(msom_root, tmp_path):
    path = _det_checkpoint(tmp_path, {'train_patient_ids': TRAIN_IDS + ['SYN005']})
    with pytest.raises(PatientOverlapError, match=r"\['SYN005'\]"):
        DetCheckpointGuardHook().before_run(_guarded_runner(msom_root, path))


def test_guard_accepts_a_detector_trained_on_the_training_patients(msom_root, tmp_path):
    path = _det_checkpoint(tmp_path, {'train_patient_ids': TRAIN_IDS})
    DetCheckpointGuardHook().before_run(_guarded_runner(msom_root, path))
    DetCheckpointGuardHook().before_run(_guarded_runner(msom_root, None))  # nothing to check


def test_guard_refuses_an_unrecorded_detector_unless_allowed(msom_root, tmp_path):
    path = _det_checkpoint(tmp_path, {'epoch': 12})
    with pytest.raises(PatientOverlapError, match='does not record its training patients'):
        DetCheckpointGuardHook().before_run(_guarded_runner(msom_root, path))
    DetCheckpointGuardHook(allow_unrecorded=True).before_run(_guarded_runner(msom_root, path))


# ------------------------------------------------------------------ SplitGuardHook
def _make_test_patient(msom_root: Path, rewrite_clinical, patient: str = 'SYN005') -> None:
    """Record ``patient`` (in val.json) as a held-out test patient in clinical.csv."""
    def to_test(rows):
        next(r for r in rows if r['patient_id'] == patient)['split'] = 'test'
    rewrite_clinical(to_test)


def test_split_guard_refuses_a_test_patient_in_checkpoint_selection(msom_root, rewrite_clinical):
    _make_test_patient(msom_root, rewrite_clinical)
    # the detector's val loop reads val.json, which (planted) holds the test patient SYN005
    runner = _Runner(train=_coco(msom_root), val=_coco(msom_root, 'annotations/val.json'))
    with pytest.raises(DataPrepError, match=r'val loop .*SYN005 \(test\).*never see test'):
        SplitGuardHook().before_run(runner)


def test_split_guard_refuses_a_non_training_patient_in_training(msom_root):
    runner = _Runner(train=_coco(msom_root, 'annotations/val.json'))
    with pytest.raises(DataPrepError, match=r'train loop .*SYN004 \(val\), SYN005 \(val\)'):
        SplitGuardHook().before_run(runner)


def test_split_guard_accepts_the_converter_splits(msom_root):
    SplitGuardHook().before_run(_Runner(train=_coco(msom_root),
                                        val=_coco(msom_root, 'annotations/val.json')))
    # the classifier's val loop lists train (cut-off) and val patients: allowed
    SplitGuardHook().before_run(_Runner(train=_msom(msom_root), val=_msom(msom_root, BOTH)))


def test_classifier_selection_refuses_a_test_patient(msom_root, rewrite_clinical):
    """The classifier's val loop (train + val patients) with a test patient planted in
    val.json stops before training: its split disagrees with the converter's record."""
    _make_test_patient(msom_root, rewrite_clinical)
    with pytest.raises(DataPrepError, match=r'SYN005 \(annotations: val, clinical.csv: test\)'):
        SplitGuardHook().before_run(_Runner(val=_msom(msom_root, BOTH)))


def test_detector_guard_protects_test_patients_not_in_the_loops(msom_root, rewrite_clinical,
                                                                 tmp_path):
    """While stage 2 trains, its test loop is not built; the clinical table still names
    the test patients, and a detector trained on one is refused."""
    _make_test_patient(msom_root, rewrite_clinical, 'SYN005')
    val_only = dict(train='annotations/train.json')  # a val loop that lists no held-out patient
    model = nn.Module()
    model.det_checkpoint = _det_checkpoint(tmp_path, {'train_patient_ids': TRAIN_IDS + ['SYN005']})
    runner = _Runner(model, train=_msom(msom_root), val=_msom(msom_root, val_only))
    with pytest.raises(PatientOverlapError, match=r"\['SYN005'\]"):
        DetCheckpointGuardHook().before_run(runner)
