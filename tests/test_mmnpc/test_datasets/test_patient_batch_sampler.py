"""Whole patients per batch, for the patient-level (multiple-instance) loss."""
import pytest
import torch

from mmnpc.datasets.patient_batch_sampler import PatientBatchSampler
from mmnpc.models.msom_classifier import patient_mean_logits


class _Dataset:
    def __init__(self, patients):
        self.patients = patients

    def __len__(self):
        return len(self.patients)

    def get_data_info(self, idx):
        return {'patient_id': self.patients[idx]}


class _Sampler:
    def __init__(self, dataset):
        self.dataset = dataset


PATIENTS = ['A'] * 3 + ['B'] * 12 + ['C'] * 1 + ['D'] * 5 + ['E'] * 2


def test_each_batch_holds_whole_bags_of_distinct_patients():
    dataset = _Dataset(PATIENTS)
    sampler = PatientBatchSampler(_Sampler(dataset), patients_per_batch=2, max_per_patient=4,
                                  seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3  # 5 patients, 2 per batch, last one smaller
    seen = [dataset.patients[i] for batch in batches for i in batch]
    assert sorted(set(seen)) == ['A', 'B', 'C', 'D', 'E']  # every patient once per pass
    for batch in batches:
        names = [dataset.patients[i] for i in batch]
        assert len(set(names)) <= 2
        for name in set(names):  # a bag is whole (up to the cap) and contiguous
            assert names.count(name) == min(4, PATIENTS.count(name))
    assert list(sampler) != batches  # the next pass is shuffled again
    again = PatientBatchSampler(_Sampler(dataset), patients_per_batch=2, max_per_patient=4,
                                seed=3)
    assert list(again) == batches  # ... deterministically from the seed
    dropped = PatientBatchSampler(_Sampler(dataset), patients_per_batch=2, drop_last=True, seed=0)
    assert len(dropped) == 2 and all(len({PATIENTS[i] for i in b}) == 2 for b in dropped)
    with pytest.raises(ValueError):
        PatientBatchSampler(_Sampler(dataset), patients_per_batch=0)


def test_patient_loss_pools_each_bag_once():
    logits = torch.tensor([1.0, 3.0, -2.0, 0.5])
    labels = torch.tensor([1.0, 1.0, 0.0, 1.0])
    pooled, bag_labels = patient_mean_logits(logits, labels, ['P', 'P', 'Q', 'R'])
    assert pooled.tolist() == [2.0, -2.0, 0.5] and bag_labels.tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match='patient Q'):
        patient_mean_logits(logits, torch.tensor([1.0, 1.0, 0.0, 1.0]), ['P', 'P', 'Q', 'Q'])
