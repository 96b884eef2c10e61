"""Hooks registered in MMDetection's HOOKS registry."""
from .clinical_encoder_hook import ClinicalEncoderHook
from .det_checkpoint_guard_hook import DetCheckpointGuardHook
from .split_guard_hook import SplitGuardHook
from .train_patients_hook import TrainPatientsHook, dataset_patient_ids

__all__ = ['ClinicalEncoderHook', 'DetCheckpointGuardHook', 'SplitGuardHook', 'TrainPatientsHook',
           'dataset_patient_ids']
