"""Survival analysis of the classifier's risk groups (Kaplan-Meier, log-rank, Cox).

:func:`run_km` is what ``tools/km.py`` and ``tools/test.py`` call.
"""
from .km_analysis import (ENDPOINTS, HORIZON_MONTHS, analyse_endpoint, endpoint_table,
                          has_survival_columns, read_patient_scores, read_survival_table,
                          resolve_cutoff, risk_groups, run_km)
from .km_plot import plot_km

__all__ = ['ENDPOINTS', 'HORIZON_MONTHS', 'analyse_endpoint', 'endpoint_table',
           'has_survival_columns', 'plot_km', 'read_patient_scores', 'read_survival_table',
           'resolve_cutoff', 'risk_groups', 'run_km']
