"""The stage-2 MSOM classifier and the detector -> classifier weight transfer."""
from .detector_transfer import (PatientOverlapError, check_detector_patients,
                                load_checkpoint_dict, load_detector_weights)
from .msom_classifier import MsomClassifier
from .msom_inference import init_msom_classifier

__all__ = ['MsomClassifier', 'PatientOverlapError', 'check_detector_patients',
           'init_msom_classifier', 'load_checkpoint_dict', 'load_detector_weights']
