"""The two models a user deploys, loaded once: detector, classifier, slice threshold.

``tools/predict.py`` (one new patient from DICOM) and ``tools/test_end_to_end.py``
(every patient of a cohort, as prediction would score them) used to wire the
same pieces in two copies; both now build one :class:`Deployment`:

* the stage-2 classifier of a config with its checkpoint's weights and the
  clinical encoder fitted on its training patients (``init_msom_classifier``);
* the stage-1 detector (``SliceDetector``) at the slice threshold the caller
  chose (``DetThreshold``: a number, or the one fitted on validation slices);
* the check that both read the same MR sequence (a T2WI detector must not choose
  slices for a CE-T1WI classifier);
* :attr:`Deployment.options`, how slices are chosen (``PredictOptions``).

Its methods are the deployable score's steps with these models bound:
:meth:`~Deployment.detect_and_score` (the detector chooses the lesions),
:meth:`~Deployment.score_contour_units` (the contoured lesions, for the
contour-based comparison) and :meth:`~Deployment.predict` (a patient folder).
The cut-off is not part of it: prediction takes it from ``deployment.json`` or
late fusion, end-to-end evaluation fits it on the training patients.

Raises ``ValueError`` for models of different sequences; prints nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .det_threshold import DetThreshold
from .predict_patient import (PredictOptions, check_same_sequence, detect_and_score,
                              predict_patient, score_contour_units)
from .slice_detector import SliceDetector


@dataclass
class Deployment:
    """Detector and classifier loaded once (see the module docstring)."""

    cfg: Any  # the classifier's mmengine Config
    classifier: Any  # MsomClassifier, eval mode
    encoder: Any  # its ClinicalEncoder
    detector: SliceDetector
    det_thr: DetThreshold
    coarse_step: int = 4

    @classmethod
    def load(cls, cfg: Union[str, Path, Any], cls_checkpoint: Union[str, Path],
             det_checkpoint: Union[str, Path], det_thr: DetThreshold,
             det_config: Optional[Union[str, Path]] = None, device: str = 'cpu',
             coarse_step: int = 4) -> 'Deployment':
        """Load both models; ``cfg`` is the classifier's config (a path, or a Config the
        caller has already changed, e.g. pointed at a data root).

        Raises:
            ValueError: the detector and the classifier read different sequences.
        """
        from mmengine.config import Config

        from ..models import init_msom_classifier

        if not isinstance(cfg, Config):
            cfg = Config.fromfile(str(cfg))
        classifier, encoder = init_msom_classifier(cfg, str(cls_checkpoint), device)
        detector = SliceDetector(Path(det_checkpoint), None if det_config is None
                                 else Path(det_config), device, score_thr=det_thr.value)
        check_same_sequence(detector, cfg)
        return cls(cfg, classifier, encoder, detector, det_thr, coarse_step)

    @property
    def options(self) -> PredictOptions:
        return PredictOptions(sequence=self.cfg.sequence, det_score_thr=self.det_thr.value,
                              coarse_step=self.coarse_step)

    @property
    def needs_clinical(self) -> bool:
        """Whether the classifier reads clinical variables (a fusion model)."""
        return self.classifier.num_clinical > 0

    def detect_and_score(self, images: Sequence[np.ndarray],
                         clinical_vector: Optional[np.ndarray],
                         spacing_mm: Optional[Sequence[float]] = None):
        """``predict_patient.detect_and_score`` with these models and options."""
        return detect_and_score(images, detector=self.detector, classifier=self.classifier,
                                cls_cfg=self.cfg, clinical_vector=clinical_vector,
                                options=self.options, spacing_mm=spacing_mm)

    def score_contour_units(self, images: Sequence[np.ndarray],
                            boxes: Sequence[Optional[Sequence[float]]],
                            clinical: Optional[np.ndarray],
                            spacing_mm: Optional[Sequence[float]] = None) -> np.ndarray:
        """``predict_patient.score_contour_units`` with this classifier."""
        return score_contour_units(images, boxes, classifier=self.classifier, cfg=self.cfg,
                                   clinical=clinical, spacing_mm=spacing_mm)

    def predict(self, patient_dir: Path, clinical_vector: Optional[np.ndarray], cutoff: float,
                prep_options=None):
        """``predict_patient.predict_patient`` for one patient folder."""
        from data_prep.options import PrepOptions
        return predict_patient(patient_dir, self.detector, self.classifier, self.cfg,
                               clinical_vector, cutoff, self.options,
                               prep_options if prep_options is not None else PrepOptions())
