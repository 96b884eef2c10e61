"""Detection metrics, the MSOM classifier's patient-level evaluation, and metrics.json."""
from .binary_stats import (AUC_CI_METHOD, AUCInterval, PairedAUCTest,
                           binary_classification_report, delong_auc_ci, delong_paired_test,
                           has_both_classes, median_cutoff, youden_cutoff)
from .metrics import CocoAP50Metric, PatientAUCMetric
from .msom_report import MsomEvaluation, evaluate_patient_table, msom_summary, write_msom_outputs
from .patient_table import assign_risk_groups, patient_scores
from .roc_plot import plot_roc
from .summary import detection_summary, write_metrics_json

__all__ = [
    'CocoAP50Metric', 'detection_summary', 'write_metrics_json',
    'PatientAUCMetric', 'AUC_CI_METHOD', 'AUCInterval', 'binary_classification_report',
    'delong_auc_ci', 'PairedAUCTest', 'delong_paired_test', 'has_both_classes', 'median_cutoff',
    'youden_cutoff', 'MsomEvaluation',
    'evaluate_patient_table', 'msom_summary', 'write_msom_outputs', 'assign_risk_groups',
    'patient_scores', 'plot_roc'
]
