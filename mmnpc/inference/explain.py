"""Grad-CAM of a new patient's prediction (``tools/predict.py --cam``).

The samples explained are exactly those the patient's score averaged: the
scored slices of a slice model (resized as its test pipeline), or the windows
around the detector's boxes of a region model (:func:`predict_patient.detected_regions`).
With no contours at prediction time, the mass shares are measured against the
detector's own masks (GTV / GTVln), cut or resized with the sample.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import mmcv
import numpy as np
import torch

from data_prep.coco_writer import jpeg_round_trip

from ..datasets.regions import crop_region, masks_in_window
from .grad_cam import cam_mass_shares, cam_overlay, grad_cam
from .predict_patient import (PatientPrediction, classifier_input_size, detected_regions,
                              region_spec)


def _class_masks(dets, classes: Sequence[str], shape: tuple) -> dict:
    masks: dict = {}
    for label, mask in zip(dets.labels, dets.masks):
        name = classes[int(label)]
        masks[name] = masks.get(name, np.zeros(shape, bool)) | np.asarray(mask, bool)
    return masks


def explain_prediction(pred: PatientPrediction, classifier, cls_cfg, classes: Sequence[str],
                       clinical: Optional[np.ndarray]) -> list[dict]:
    """One entry per explained sample: ``name``, ``slice_index``, ``structure`` ('' for a
    slice), ``overlay`` (BGR uint8) and ``shares`` (:func:`cam_mass_shares`)."""
    if pred.msom_score is None:
        return []
    by_index = {s.index: s for s in pred.prepared.slices}
    vector = None if clinical is None else torch.from_numpy(np.asarray(clinical, np.float32))
    spec = region_spec(cls_cfg)
    out = []
    if spec is not None:
        for k, region in enumerate(detected_regions(pred.detections, classes, cls_cfg)):
            slc = by_index[region['slice_index']]
            image = crop_region(jpeg_round_trip(slc.image), region['region_box'], slc.spacing_mm,
                                spec)
            full = _class_masks(pred.detections[region['slice_index']], classes,
                                slc.image.shape)
            masks = masks_in_window(full, region['region_box'], slc.spacing_mm, spec)
            cam = grad_cam(classifier, torch.from_numpy(image)[None, None], vector)[0]
            out.append({'name': f'slice_{slc.index:04d}_{region["structure"]}_{k}',
                        'slice_index': slc.index, 'structure': region['structure'],
                        'overlay': cam_overlay(image, cam, masks),
                        'shares': cam_mass_shares(cam, masks, (spec.step_mm, spec.step_mm),
                                                  spec.margin_mm)})
        return out
    size = classifier_input_size(cls_cfg)
    for index in sorted(pred.slice_scores):
        slc = by_index[index]
        image = mmcv.imresize(jpeg_round_trip(slc.image), size)
        masks = {n: cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
                 for n, m in _class_masks(pred.detections[index], classes,
                                          slc.image.shape).items()}
        step = np.asarray(slc.spacing_mm, float) * slc.image.shape[1] / size[0]
        cam = grad_cam(classifier, torch.from_numpy(image)[None, None], vector)[0]
        out.append({'name': f'slice_{index:04d}', 'slice_index': index, 'structure': '',
                    'overlay': cam_overlay(image, cam, masks),
                    'shares': cam_mass_shares(cam, masks, step)})
    return out
