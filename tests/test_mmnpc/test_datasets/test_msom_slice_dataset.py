"""The classifier's dataset: tumour slices, patient labels, clinical vectors fitted on train only."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

from data_prep.types import DataPrepError
from mmnpc.datasets import ClinicalEncoder, MsomSliceDataset

VARS = [dict(name='age', kind='numeric'), dict(name='pni', kind='numeric'),
        dict(name='sex', kind='categorical', categories=['F', 'M'])]
BOTH = dict(train='annotations/train.json', val='annotations/val.json')
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackMsomInputs')]


def _dataset(root: Path, ann_files=None, **kwargs) -> MsomSliceDataset:
    return MsomSliceDataset(clinical_file=str(root / 'clinical.csv'), data_root=str(root / 'cet1'),
                            ann_files=ann_files, clinical_vars=VARS, **kwargs)


def _tumour_images(root: Path, split: str) -> set:
    coco = json.loads((root / 'cet1' / 'annotations' / f'{split}.json').read_text())
    return {a['image_id'] for a in coco['annotations']}


def test_training_set_is_the_tumour_slices_of_training_patients(msom_root):
    dataset = _dataset(msom_root)
    items = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert {it['img_id'] for it in items} == _tumour_images(msom_root, 'train')
    assert {it['patient_id'] for it in items} == {'SYN000', 'SYN001', 'SYN002', 'SYN003'}
    assert {it['split'] for it in items} == {'train'}
    for it in items:
        assert it['gt_label'] == float(int(it['patient_id'][-1]) % 2)  # msom of the patient
        assert it['clinical'].shape == (7,) and it['clinical'].dtype == np.float32
        assert Path(it['img_path']).is_file()


def test_evaluation_set_lists_both_splits(msom_root):
    dataset = _dataset(msom_root, BOTH, test_mode=True)
    splits = {dataset.get_data_info(i)['patient_id']: dataset.get_data_info(i)['split']
              for i in range(len(dataset))}
    assert splits == {'SYN000': 'train', 'SYN001': 'train', 'SYN002': 'train',
                      'SYN003': 'train', 'SYN004': 'val', 'SYN005': 'val'}
    assert dataset.patient_ids('val') == ['SYN004', 'SYN005']
    assert dataset.clinical_encoder.fitted_on == ['SYN000', 'SYN001', 'SYN002', 'SYN003']


def test_encoder_is_fitted_on_training_patients_only(msom_root, rewrite_clinical):
    before = _dataset(msom_root, BOTH).clinical_encoder
    rewrite_clinical(lambda rows: rows[5].update(age='99', pni='10'))  # SYN005, validation
    after_val_change = _dataset(msom_root, BOTH)
    assert after_val_change.clinical_encoder == before
    rewrite_clinical(lambda rows: rows[0].update(age='99'))  # SYN000, training: stats move
    assert _dataset(msom_root, BOTH).clinical_encoder != before
    # the changed validation patient is encoded with the training statistics
    val_item = next(after_val_change.get_data_info(i) for i in range(len(after_val_change))
                    if after_val_change.get_data_info(i)['patient_id'] == 'SYN005')
    np.testing.assert_allclose(val_item['clinical'][0], (99 - before.mean['age']) / before.scale['age'],
                               rtol=1e-5)


def test_missing_value_sets_the_indicator(msom_root):
    dataset = _dataset(msom_root)
    item = next(dataset.get_data_info(i) for i in range(len(dataset))
                if dataset.get_data_info(i)['patient_id'] == 'SYN001')  # pni missing
    pni, pni_missing = item['clinical'][2], item['clinical'][3]
    assert (pni, pni_missing) == (0.0, 1.0)


def test_max_area_gives_one_slice_per_patient(msom_root):
    dataset = _dataset(msom_root, BOTH, slice_selection='max_area')
    patients = [dataset.get_data_info(i)['patient_id'] for i in range(len(dataset))]
    assert patients == sorted(set(patients)) and len(patients) == 6


@pytest.mark.parametrize('change, message', [
    (lambda rows: rows[2].update(msom=''), r"'msom' must be 0 or 1 .* SYN002 \(''\)"),
    (lambda rows: rows[4].update(msom='2'), r"SYN004 \('2'\)"),
    (lambda rows: rows[4].update(split='train'), r'split column disagrees .* SYN004'),
    (lambda rows: rows.pop(3), r"no clinical row for patients \['SYN003'\]"),
])
def test_bad_clinical_table_is_refused_naming_the_patient(msom_root, rewrite_clinical, change,
                                                         message):
    rewrite_clinical(change)
    with pytest.raises(DataPrepError, match=message):
        _dataset(msom_root, BOTH)


def test_without_a_training_split_the_encoder_comes_from_outside(msom_root):
    fitted = _dataset(msom_root).clinical_encoder
    external = _dataset(msom_root, dict(val='annotations/val.json'))
    with pytest.raises(RuntimeError, match='no clinical encoder for patient SYN004'):
        external.get_data_info(0)
    external.set_clinical_encoder(ClinicalEncoder.from_state_dict(fitted.state_dict()))
    assert external.get_data_info(0)['clinical'].shape == (7,)
    with pytest.raises(ValueError, match='differ'):
        external.set_clinical_encoder(ClinicalEncoder([dict(name='age', kind='numeric')]))


def test_packed_sample_carries_the_interface_fields(msom_root):
    init_default_scope('mmdet')
    dataset = _dataset(msom_root, BOTH, pipeline=PIPELINE, test_mode=True)
    packed = dataset[0]
    assert packed['inputs'].shape == (3, 64, 64) and packed['inputs'].dtype == torch.uint8
    sample = packed['data_samples']
    assert isinstance(sample, BaseDataElement)
    info = dataset.get_data_info(0)
    for key in ('patient_id', 'split', 'img_id', 'img_path', 'z_mm'):
        assert sample.metainfo[key] == info[key]
    assert sample.gt_label.dtype == torch.float32 and sample.gt_label.shape == (1,)
    assert sample.gt_label.item() == info['gt_label']
    torch.testing.assert_close(sample.clinical, torch.from_numpy(info['clinical']))
