"""Batches of whole patients (bags of slices or regions), for patient-level training."""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterator, List, Optional

import numpy as np
from mmengine.dist import get_world_size, sync_random_seed
from torch.utils.data import Sampler

from mmdet.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class PatientBatchSampler(Sampler):
    """Each batch: ``patients_per_batch`` patients, each with up to ``max_per_patient``
    of its samples (all of them when it has fewer), drawn at random.

    Multiple-instance learning needs the bag whole in one batch: the model's
    patient-level loss (``MsomClassifier(loss_level='patient')``) pools the
    logits of each patient's samples in the batch and compares the pooled logit
    with the patient's label, so a patient counts once per batch whatever its
    number of tumour slices or regions.

    One pass = every patient once, in an order shuffled with ``seed`` and the
    pass number (deterministic; a resumed run restarts at pass 0). The length is
    the number of batches of one pass; iteration-based loops start a new pass
    when one ends. ``sampler`` and ``batch_size`` are what MMEngine passes to
    every batch sampler: the sampler's dataset is read (its ``patient_id`` per
    sample), its order is not used, and ``batch_size`` is ignored in favour of
    ``patients_per_batch`` (say so in the config: ``batch_size`` counts samples
    elsewhere).

    Args:
        sampler: the dataloader's sampler (its ``dataset`` gives the patients).
        batch_size: ignored (see above).
        patients_per_batch: patients (bags) per batch.
        max_per_patient: samples drawn per patient per pass (None = all).
        drop_last: drop the last, smaller batch of a pass.
        seed: random seed; None = MMEngine's synced random seed.
    """

    def __init__(self, sampler: Sampler, batch_size: int = 0, patients_per_batch: int = 4,
                 max_per_patient: Optional[int] = 8, drop_last: bool = False,
                 seed: Optional[int] = None) -> None:
        if patients_per_batch < 1:
            raise ValueError(f'patients_per_batch must be >= 1, got {patients_per_batch}')
        if max_per_patient is not None and max_per_patient < 1:
            raise ValueError(f'max_per_patient must be >= 1 or None, got {max_per_patient}')
        if get_world_size() > 1:
            raise NotImplementedError('PatientBatchSampler does not split batches between '
                                      'processes yet: train the region recipe in one process')
        self.sampler = sampler
        self.patients_per_batch = patients_per_batch
        self.max_per_patient = max_per_patient
        self.drop_last = drop_last
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        dataset = sampler.dataset
        bags: Dict[str, List[int]] = defaultdict(list)
        for idx in range(len(dataset)):
            bags[str(dataset.get_data_info(idx)['patient_id'])].append(idx)
        if not bags:
            raise ValueError('PatientBatchSampler: the dataset has no samples')
        self.bags = dict(sorted(bags.items()))

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass the ``epoch``-th (as DefaultSampler.set_epoch)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[List[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        patients = list(self.bags)
        order = rng.permutation(len(patients))
        batch: List[int] = []
        n_patients = 0
        for k in order:
            bag = self.bags[patients[k]]
            if self.max_per_patient is not None and len(bag) > self.max_per_patient:
                bag = sorted(rng.choice(bag, self.max_per_patient, replace=False).tolist())
            batch.extend(int(i) for i in bag)
            n_patients += 1
            if n_patients == self.patients_per_batch:
                yield batch
                batch, n_patients = [], 0
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        full, rest = divmod(len(self.bags), self.patients_per_batch)
        return full + (1 if rest and not self.drop_last else 0)
