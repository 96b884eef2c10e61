"""The MSOM classifier's data: tumour slices, clinical table and encoder, packing."""
from .clinical_encoder import ClinicalEncoder, clinical_encoder_from_checkpoint
from .clinical_table import patient_labels, read_clinical_rows
from .msom_region_dataset import MsomRegionDataset
from .msom_slice_dataset import MsomSliceDataset
from .patient_batch_sampler import PatientBatchSampler
from .regions import RegionSpec, crop_region
from .slice_selection import (SLICE_SELECTIONS, evenly_spaced, evenly_spaced_positions,
                              largest_regions, select_regions, select_slices)
from .transforms import PackMsomInputs

__all__ = ['ClinicalEncoder', 'clinical_encoder_from_checkpoint', 'patient_labels',
           'read_clinical_rows', 'MsomRegionDataset', 'MsomSliceDataset', 'PatientBatchSampler',
           'RegionSpec', 'crop_region',
           'largest_regions', 'select_regions', 'SLICE_SELECTIONS', 'evenly_spaced',
           'evenly_spaced_positions', 'select_slices',
           'PackMsomInputs']
