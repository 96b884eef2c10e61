"""mmnpc: MMDetection modules for the nasopharyngeal-carcinoma MSOM pipeline.

Configs import this package through ``custom_imports``. Importing it

* registers the metrics (:class:`~mmnpc.evaluation.CocoAP50Metric`, per-class
  AP@0.5; :class:`~mmnpc.evaluation.PatientAUCMetric`), the stage-2 classifier
  (:class:`~mmnpc.models.MsomClassifier`), its dataset and transform
  (:class:`~mmnpc.datasets.MsomSliceDataset`, ``PackMsomInputs``) and the
  hooks (:mod:`mmnpc.engine`), and
* lets MMEngine load its own local checkpoints under torch >= 2.6
  (:mod:`mmnpc.utils.checkpoint` explains the trust model).
"""
from .evaluation import CocoAP50Metric, detection_summary, write_metrics_json
from .utils import register_trusted_local_loader, set_data_root
from .datasets import ClinicalEncoder, MsomSliceDataset, PackMsomInputs
from .models import MsomClassifier, PatientOverlapError, init_msom_classifier
from .engine import ClinicalEncoderHook, DetCheckpointGuardHook, SplitGuardHook, TrainPatientsHook

register_trusted_local_loader()

__all__ = ['CocoAP50Metric', 'detection_summary', 'write_metrics_json',
           'register_trusted_local_loader', 'set_data_root',
           'ClinicalEncoder', 'MsomSliceDataset', 'PackMsomInputs',
           'MsomClassifier', 'PatientOverlapError', 'init_msom_classifier',
           'ClinicalEncoderHook', 'DetCheckpointGuardHook', 'SplitGuardHook', 'TrainPatientsHook']
