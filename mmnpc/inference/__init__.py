"""Prediction for a new patient from DICOM alone (tools/predict.py): detect, score, export."""
from .predict_patient import PatientPrediction, PredictOptions, predict_patient
from .prediction_outputs import write_prediction
from .slice_detector import SliceDetections, SliceDetector

__all__ = ['PatientPrediction', 'PredictOptions', 'predict_patient', 'write_prediction',
           'SliceDetections', 'SliceDetector']
