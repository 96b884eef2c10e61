"""Metrics registered in MMDetection's METRICS registry."""
from .coco_ap50_metric import CocoAP50Metric

__all__ = ['CocoAP50Metric']
