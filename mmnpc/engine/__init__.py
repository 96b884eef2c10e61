"""Training-loop hooks: patient bookkeeping and the clinical encoder in checkpoints."""
from .hooks import (ClinicalEncoderHook, DetCheckpointGuardHook, SplitGuardHook,
                    TrainPatientsHook, dataset_patient_ids)

__all__ = ['ClinicalEncoderHook', 'DetCheckpointGuardHook', 'SplitGuardHook', 'TrainPatientsHook',
           'dataset_patient_ids']
