"""Hooks registered in MMDetection's HOOKS registry."""
from .clinical_encoder_hook import ClinicalEncoderHook
from .det_checkpoint_guard_hook import DetCheckpointGuardHook
from .train_patients_hook import TrainPatientsHook, dataset_patient_ids

__all__ = ['ClinicalEncoderHook', 'DetCheckpointGuardHook', 'TrainPatientsHook',
           'dataset_patient_ids']
