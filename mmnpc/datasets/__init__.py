"""The MSOM classifier's data: tumour slices, clinical table and encoder, packing."""
from .clinical_encoder import ClinicalEncoder, clinical_encoder_from_checkpoint
from .clinical_table import patient_labels, read_clinical_rows
from .msom_slice_dataset import MsomSliceDataset
from .slice_selection import (SLICE_SELECTIONS, evenly_spaced, evenly_spaced_positions,
                              select_slices)
from .transforms import PackMsomInputs

__all__ = ['ClinicalEncoder', 'clinical_encoder_from_checkpoint', 'patient_labels',
           'read_clinical_rows', 'MsomSliceDataset', 'SLICE_SELECTIONS', 'evenly_spaced',
           'evenly_spaced_positions', 'select_slices',
           'PackMsomInputs']
