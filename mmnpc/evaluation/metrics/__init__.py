"""Metrics registered in MMDetection's METRICS registry."""
from .coco_ap50_metric import CocoAP50Metric
from .patient_auc_metric import PatientAUCMetric

__all__ = ['CocoAP50Metric', 'PatientAUCMetric']
