"""Detection metrics and the project's metrics.json summary."""
from .metrics import CocoAP50Metric
from .summary import detection_summary, write_metrics_json

__all__ = ['CocoAP50Metric', 'detection_summary', 'write_metrics_json']
