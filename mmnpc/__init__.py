"""mmnpc: MMDetection modules for the nasopharyngeal-carcinoma MSOM pipeline.

Configs import this package through ``custom_imports``. Importing it

* registers :class:`~mmnpc.evaluation.CocoAP50Metric` (per-class AP@0.5), and
* lets MMEngine load its own local checkpoints under torch >= 2.6
  (:mod:`mmnpc.utils.checkpoint` explains the trust model).
"""
from .evaluation import CocoAP50Metric, detection_summary, write_metrics_json
from .utils import register_trusted_local_loader, set_data_root

register_trusted_local_loader()

__all__ = ['CocoAP50Metric', 'detection_summary', 'write_metrics_json',
           'register_trusted_local_loader', 'set_data_root']
