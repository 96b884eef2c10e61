"""MSOM risk of a new patient from DICOM alone: detect tumour slices, score them, average.

1. The MR series of one sequence is read and brought to the converter's 1 mm,
   512 x 512 axial slices by the same code (``data_prep.prepare_patient`` with
   ``require_contours=False``), then JPEG-encoded and decoded as the converter's
   slices are, so the models see exactly the kind of pixels they were trained on.
2. The stage-1 detector finds the slices holding tumour: a detection of GTV or
   GTVln scoring at least ``det_score_thr`` (default 0.5) marks a slice. To save
   time it first looks at every ``coarse_step``-th slice (default 4, i.e. every
   4 mm -- smaller than any primary tumour or node that is contoured), then at
   every slice within ``coarse_step`` of a slice where it found something.
   ``coarse_step=1`` looks at every slice.
3. The stage-2 classifier scores those slices chosen by the rule its test
   dataset uses on contoured slices (``slice_selection``,
   ``max_slices_per_patient`` of the classifier config): every slice found, or
   at most N of them evenly spaced along z (the *_tiny configs: 8), or the one
   with the largest detected tumour area (``'max_area'``). The patient's MSOM
   score is their mean, exactly as in evaluation (patient score = mean slice
   score), so it is comparable with the cut-off fitted on training patients.
   A region model (test pipeline with ``CropRegion``, dataset
   ``MsomRegionDataset``) scores instead the millimetre windows around the
   detections of its ``region_classes`` on the tumour slices (each
   structure's ``regions_per_structure`` largest, by detected mask area, as the
   dataset keeps the largest contoured sections), cut by the same function as
   the contour windows (:func:`mmnpc.datasets.regions.crop_region`); a slice's
   score is the mean of its windows' and the patient's the mean of its slices'
   (:func:`mmnpc.evaluation.patient_table.patient_scores`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import mmcv
import numpy as np
import torch

from data_prep.coco_writer import jpeg_round_trip
from data_prep.discover import scan_patient
from data_prep.options import PrepOptions
from data_prep.patient import prepare_patient
from data_prep.sequences import assign_sequences
from data_prep.types import PreparedSequence
from mmnpc.datasets.regions import RegionSpec, crop_region, mean_by_slice
from mmnpc.datasets.slice_selection import evenly_spaced_positions, largest_regions
from mmnpc.inference.slice_detector import SliceDetections, SliceDetector
from mmnpc.models.bag_pooling import SliceScores, patient_score_of, unit_patient_score


@dataclass
class PredictOptions:
    """How slices are chosen; see the module docstring."""

    sequence: str = 'cet1'
    det_score_thr: float = 0.5
    coarse_step: int = 4


@dataclass
class PatientPrediction:
    """Everything predicted for one patient (scores are None when no tumour was found)."""

    patient_id: str
    prepared: PreparedSequence
    series_files: tuple[Path, ...]
    detections: dict[int, SliceDetections]  # slice index -> detections >= threshold
    slices_looked_at: tuple[int, ...] = ()  # slices the detector was run on
    slice_scores: dict[int, float] = field(default_factory=dict)  # the slices scored
    msom_score: Optional[float] = None
    risk_group: Optional[str] = None


def load_series(patient_dir: Path, patient_id: str, options: PrepOptions,
                sequence: str) -> tuple[PreparedSequence, tuple[Path, ...]]:
    """The prepared slices of ``sequence`` and the files of the series they come from."""
    options = dataclasses.replace(options, sequences=(sequence,))
    series = scan_patient(patient_dir, patient_id)
    assigned = assign_sequences(series, options, patient_id=patient_id)
    prepared = prepare_patient(patient_dir, patient_id, options, require_contours=False,
                               series=series)
    return prepared[sequence], tuple(assigned[sequence].files)


def slices_to_look_at(n_slices: int, step: int, hits: Sequence[int] = ()) -> list[int]:
    """Coarse pass (no ``hits`` yet): every ``step``-th slice; fine pass: the
    slices within ``step`` of a hit. Indices in 0..n_slices-1, sorted."""
    if step < 1:
        raise ValueError(f'coarse_step must be >= 1, got {step}')
    if not hits:
        return list(range(0, n_slices, step))
    near = {i for hit in hits for i in range(hit - step + 1, hit + step) if 0 <= i < n_slices}
    return sorted(near)


def find_tumour_slices(images: Sequence[np.ndarray], detector: SliceDetector,
                       options: PredictOptions) -> tuple[dict[int, SliceDetections], list[int]]:
    """(slice index -> its detections scoring >= ``det_score_thr``, for slices with
    any; the sorted indices of every slice the detector looked at)."""
    found: dict[int, SliceDetections] = {}
    looked: set[int] = set()

    def look(indices: list[int]) -> None:
        todo = [i for i in indices if i not in looked]
        looked.update(todo)
        for i, dets in zip(todo, detector.detect([images[i] for i in todo])):
            kept = dets.above(options.det_score_thr)
            if len(kept):
                found[i] = kept

    look(slices_to_look_at(len(images), options.coarse_step))
    if options.coarse_step > 1 and found:
        look(slices_to_look_at(len(images), options.coarse_step, sorted(found)))
    return dict(sorted(found.items())), sorted(looked)


def slices_to_score(found: Mapping[int, SliceDetections], cls_cfg) -> list[int]:
    """The found slices the classifier scores, chosen as its test dataset chooses
    contoured slices (see the module docstring); sorted slice indices."""
    dataset = cls_cfg.test_dataloader.dataset
    indices = sorted(found)
    if not indices:
        return []
    if dataset.get('slice_selection', 'tumour') == 'max_area':
        # largest total detected area; ties go to the lowest index, as in select_slices
        return [max(indices, key=lambda i: (int(found[i].masks.sum()), -i))]
    picks = evenly_spaced_positions(len(indices), dataset.get('max_slices_per_patient'))
    return [indices[k] for k in picks]


def classifier_input_size(cfg) -> tuple[int, int]:
    """(w, h) px the classifier's test pipeline resizes slices to."""
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'].split('.')[-1] == 'Resize':
            return tuple(step['scale'])
    raise ValueError('the classifier test pipeline has no Resize step')


def score_slices(images: Sequence[np.ndarray], classifier, cfg,
                 clinical: Optional[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """MSOM probability of each grey uint8 slice, resized as the classifier's test pipeline.

    Runs ``batch_size`` slices at a time, so memory does not grow with the number
    of tumour slices (a full-size patient can have over a hundred).
    """
    if pools_by_attention(classifier):
        raise ValueError("prediction pools by attention for region models only (a config with "
                         "CropRegion); this slice model has bag_pooling='attention'")
    size = classifier_input_size(cfg)
    device = next(classifier.parameters()).device
    vector = None if clinical is None else torch.from_numpy(np.asarray(clinical, np.float32))
    scores = []
    for start in range(0, len(images), batch_size):
        batch = np.stack([mmcv.imresize(img, size)  # (N, h, w), bilinear
                          for img in images[start:start + batch_size]])
        tensor = torch.from_numpy(batch)[:, None].to(device)
        scores.append(classifier.score_slices(tensor, vector).cpu().numpy().astype(float))
    return np.concatenate(scores) if scores else np.zeros(0)


def region_spec(cls_cfg) -> Optional[RegionSpec]:
    """The classifier's window (its test pipeline's ``CropRegion``), None for a slice model."""
    for step in cls_cfg.test_dataloader.dataset.pipeline:
        if step['type'].split('.')[-1] == 'CropRegion':
            fields = ('size_mm', 'out_px', 'margin_mm', 'keep')  # not jitter_mm (training)
            return RegionSpec(**{k: v for k, v in step.items() if k in fields})
    return None


def detected_regions(found: Mapping[int, SliceDetections], classes: Sequence[str],
                     cls_cfg) -> list[dict]:
    """The detections the region classifier scores, as ``largest_regions`` records
    (``slice_index``, ``structure``, ``region_box``, ``region_area_px`` = detected
    mask area), chosen by the rule its dataset applies to contoured sections."""
    dataset = cls_cfg.test_dataloader.dataset
    wanted = tuple(dataset.get('region_classes', ('GTV', 'GTVln')))
    records = []
    for index, dets in sorted(found.items()):
        for k in range(len(dets)):
            structure = classes[int(dets.labels[k])]
            if structure in wanted:
                records.append({'patient_id': '', 'slice_index': int(index),
                                'structure': structure, 'annotation_id': len(records),
                                'region_box': [float(v) for v in dets.boxes[k]],
                                'region_area_px': float(dets.masks[k].sum())})
    return largest_regions(records, dataset.get('regions_per_structure'))


def score_regions(images: Sequence[np.ndarray], regions: Sequence[Mapping],
                  spacing_mm: Sequence[float], classifier, spec: RegionSpec,
                  clinical: Optional[np.ndarray], batch_size: int = 16):
    """MSOM probability of each region window (``images`` indexed by ``slice_index``);
    for a model that pools by attention the tuple (probabilities, logits, attention)."""
    device = next(classifier.parameters()).device
    vector = None if clinical is None else torch.from_numpy(np.asarray(clinical, np.float32))
    attention_model = pools_by_attention(classifier)
    parts: list = []
    for start in range(0, len(regions), batch_size):
        crops = np.stack([crop_region(images[r['slice_index']], r['region_box'], spacing_mm, spec)
                          for r in regions[start:start + batch_size]])
        tensor = torch.from_numpy(crops)[:, None].to(device)
        out = (classifier.score_slices(tensor, vector, details=True) if attention_model
               else classifier.score_slices(tensor, vector))
        parts.append([t.cpu().numpy().astype(float) for t in out] if attention_model
                     else [out.cpu().numpy().astype(float)])
    columns = [np.concatenate(c) if c else np.zeros(0) for c in zip(*parts)] if parts else \
        [np.zeros(0)] * (3 if attention_model else 1)
    return tuple(columns) if attention_model else columns[0]


def pools_by_attention(classifier) -> bool:
    """Whether the classifier's patient score is attention-pooled (bag_pooling)."""
    return getattr(classifier, 'bag_pooling', 'mean') == 'attention'


def score_contour_units(images: Sequence[np.ndarray], boxes: Sequence[Optional[Sequence[float]]],
                        classifier, cfg, clinical: Optional[np.ndarray],
                        spacing_mm: Optional[Sequence[float]] = None) -> np.ndarray:
    """Scores of given slices (a slice model) or of the windows around ``boxes`` on them
    (a region model; one box per image), for the contour-based score; for a model that
    pools by attention the tuple (probabilities, logits, attention), as :func:`score_regions`."""
    spec = region_spec(cfg)
    if spec is None:
        return score_slices(images, classifier, cfg, clinical)
    if spacing_mm is None or any(box is None for box in boxes):
        raise ValueError('a region classifier scores windows: give a box per image and the '
                         'pixel spacing')
    regions = [{'slice_index': k, 'region_box': box} for k, box in enumerate(boxes)]
    return score_regions(images, regions, spacing_mm, classifier, spec, clinical)


def detect_and_score(images: Sequence[np.ndarray], detector: SliceDetector, classifier, cls_cfg,
                     clinical_vector: Optional[np.ndarray], options: PredictOptions,
                     spacing_mm: Optional[Sequence[float]] = None
                     ) -> tuple[dict[int, SliceDetections], list[int], dict[int, float]]:
    """The deployable score's steps on a patient's slices (uint8 (H, W), in z order,
    as written to / read from the converter's JPEGs): (detections of the slices with
    tumour, the slices looked at, slice index -> MSOM probability of the slices scored).

    ``spacing_mm`` (the slices' pixel spacing, x and y) is needed by region
    models only. ``tools/predict.py`` and the end-to-end evaluation
    (:mod:`mmnpc.evaluation.end_to_end`) both call this, so a cohort's
    end-to-end scores are the scores prediction gives its patients.
    """
    found, looked = find_tumour_slices(images, detector, options)
    spec = region_spec(cls_cfg)
    if spec is not None:
        if spacing_mm is None:
            raise ValueError('a region classifier needs the pixel spacing of the slices (spacing_mm)')
        regions = detected_regions(found, detector.classes, cls_cfg)
        scored = score_regions(images, regions, spacing_mm, classifier, spec, clinical_vector)
        indices = [r['slice_index'] for r in regions]
        probs = scored[0] if isinstance(scored, tuple) else scored
        pooled = unit_patient_score(indices, scored) if regions else None
        return found, looked, SliceScores(mean_by_slice(indices, probs), pooled)
    chosen = slices_to_score(found, cls_cfg)
    if not chosen:
        return found, looked, {}
    scores = score_slices([images[i] for i in chosen], classifier, cls_cfg, clinical_vector)
    return found, looked, {int(i): float(s) for i, s in zip(chosen, scores)}


def predict_patient(patient_dir: Path, detector: SliceDetector, classifier, cls_cfg,
                    clinical_vector: Optional[np.ndarray], cutoff: float,
                    options: PredictOptions = PredictOptions(),
                    prep_options: PrepOptions = PrepOptions()) -> PatientPrediction:
    """Detect, score and average for the patient in ``patient_dir`` (its folder name is its id).

    The slices go through the converter's JPEG encoding and back before the
    models see them (:func:`data_prep.coco_writer.jpeg_round_trip`), as every
    training and evaluation slice did.
    """
    patient_dir = Path(patient_dir)
    prepared, files = load_series(patient_dir, patient_dir.name, prep_options, options.sequence)
    images = [jpeg_round_trip(s.image) for s in prepared.slices]
    found, looked, slice_scores = detect_and_score(images, detector, classifier, cls_cfg,
                                                   clinical_vector, options,
                                                   prepared.slices[0].spacing_mm)
    result = PatientPrediction(patient_dir.name, prepared, files, found, tuple(looked))
    if not slice_scores:
        return result
    return with_scores(result, slice_scores, cutoff)


def with_scores(pred: PatientPrediction, slice_scores: Mapping[int, float],
                cutoff: float) -> PatientPrediction:
    """``pred`` with its slice scores, the patient's pooled score (the MSOM score: the mean
    of the slices', or the attention-pooled one) and risk group set."""
    pred.msom_score = patient_score_of(slice_scores)
    pred.slice_scores = {int(i): float(s) for i, s in slice_scores.items()}
    pred.risk_group = 'high' if pred.msom_score >= cutoff else 'low'
    return pred


def apply_late_fusion(pred: PatientPrediction, fusion, clinical_model,
                      values: Mapping[str, object], cutoff: float) -> dict:
    """Make ``pred``'s MSOM score the late-fused one, in place; return what went into it.

    ``pred.msom_score`` is the image-only classifier's score; ``clinical_model``
    (:class:`mmnpc.evaluation.clinical_baseline.ClinicalModel`) scores the
    patient's clinical ``values`` and ``fusion``
    (:class:`mmnpc.evaluation.late_fusion.LateFusionModel`) combines the two;
    the risk group follows ``cutoff``. Raises ValueError for a patient without
    an image score or with a bad clinical value (named).
    """
    if pred.msom_score is None:
        raise ValueError(f'patient {pred.patient_id}: no image score to fuse')
    clinical_score = float(clinical_model.score(values, pred.patient_id))
    image_score = float(pred.msom_score)
    pred.msom_score = float(fusion.score([clinical_score], [image_score])[0])
    pred.risk_group = 'high' if pred.msom_score >= cutoff else 'low'
    return {'image_score': round(image_score, 6), 'clinical_score': round(clinical_score, 6),
            'late_fusion_coefficients': {'intercept': fusion.intercept,
                                         'clinical': fusion.coef_clinical,
                                         'image': fusion.coef_image,
                                         # False: too few fit events, weights held at 1
                                         'weights_fitted': bool(fusion.weights_fitted)}}


def check_same_sequence(detector: SliceDetector, cls_cfg) -> None:
    """Refuse a detector and classifier of different MR sequences (e.g. a T2WI detector
    choosing slices for a CE-T1WI classifier)."""
    det_sequence, cls_sequence = detector.sequence, cls_cfg.get('sequence')
    if det_sequence != cls_sequence:
        raise ValueError(f'the detector is a {det_sequence!r} model but the classifier config '
                         f'{getattr(cls_cfg, "filename", "")} is for {cls_sequence!r}: use the '
                         'stage-1 and stage-2 models of one MR sequence')


def encode_clinical(encoder, values: Optional[Mapping[str, object]], patient_id: str,
                    needs_clinical: bool) -> Optional[np.ndarray]:
    """The patient's clinical vector, or None for an image-only classifier.

    A fusion classifier without clinical values is refused: silently imputing
    every variable would give a number that looks valid and is not.
    """
    if not needs_clinical:
        return None
    if values is None:
        raise ValueError(f'patient {patient_id}: this classifier uses clinical variables '
                         f'{encoder.feature_names}; pass them with --clinical FILE.json '
                         '(unknown values may be null: they are imputed with a missing indicator)')
    return encoder.encode(values, patient_id)
