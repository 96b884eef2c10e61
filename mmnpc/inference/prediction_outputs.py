"""Write a patient's prediction: prediction.json, overlay PNGs, an RTSTRUCT of the
detections and, on request, a DICOM SEG of them.

The RTSTRUCT's contours lie on the input series' own image planes (the
detections of the 1 mm slices resampled to each native image, see
:mod:`mmnpc.export.native_planes`), each referencing the image it lies on (and
its frame, for an enhanced multi-frame series). The SEG (``seg=True``) holds
those same native-plane masks, one BINARY segment per detected class
(:mod:`mmnpc.export.seg_export`).

The folder appears complete or not at all: everything is written to
``OUT.partial`` and renamed at the end.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from data_prep.types import Volume
from mmnpc.export import detection_volume, write_native_plane_rtstruct, write_native_plane_seg
from mmnpc.inference.detections_mm import describe_detections
from mmnpc.inference.overlay import write_overlay
from mmnpc.inference.predict_patient import PatientPrediction
from mmnpc.utils.json_io import write_json

NOT_FOR_CLINICAL_USE = 'Research software output: not for clinical use.'


def prediction_record(pred: PatientPrediction, classes: Sequence[str], cutoff: float,
                      settings: Mapping[str, Any]) -> dict:
    """The JSON content: score, risk group, cut-off and every slice used, in px and LPS mm."""
    by_index = {s.index: s for s in pred.prepared.slices}
    slices = [{
        'slice_index': i,
        'z_mm': float(by_index[i].z_mm),
        'slice_score': round(pred.slice_scores[i], 4) if i in pred.slice_scores else None,
        'overlay': f'overlays/slice_{i:04d}.png',
        'detections': describe_detections(dets, by_index[i], classes),
    } for i, dets in pred.detections.items()]
    record = {
        'patient_id': pred.patient_id,
        'sequence': pred.prepared.sequence,
        'status': 'ok' if pred.msom_score is not None else 'no_tumour_detected',
        'msom_score': None if pred.msom_score is None else round(pred.msom_score, 4),
        'risk_group': pred.risk_group,
        'cutoff': cutoff,
        'n_slices_total': len(pred.prepared.slices),
        'n_slices_looked_at': len(pred.slices_looked_at),
        'n_slices_with_tumour': len(pred.detections),
        'n_slices_scored': len(pred.slice_scores),
        **settings,
        'slices': slices,
        'note': NOT_FOR_CLINICAL_USE,
    }
    if pred.msom_score is None:
        record['message'] = no_detection_message(pred, settings.get('det_score_thr'))
    return record


def no_detection_message(pred: PatientPrediction, score_thr: Any) -> str:
    """Why there is no score: said plainly, with what the user can check."""
    return (f'patient {pred.patient_id}: the detector found no GTV/GTVln scoring >= {score_thr} on '
            f'any of {len(pred.prepared.slices)} {pred.prepared.sequence} slices, so no MSOM risk '
            'is given. Check that the series shows the nasopharynx and is the right sequence, '
            'or lower --det-score-thr.')


def detection_volumes(pred: PatientPrediction, classes: Sequence[str]) -> dict[str, Volume]:
    """class -> bool 1 mm Volume (LPS mm) of every kept detection mask of that class
    (the union of a slice's detections); classes without any detection are left out."""
    per_class: dict[str, dict[int, np.ndarray]] = {name: {} for name in classes}
    for i, dets in pred.detections.items():
        for label, mask in zip(dets.labels, dets.masks):
            masks = per_class[classes[int(label)]]
            masks[i] = masks[i] | mask if i in masks else np.asarray(mask, dtype=bool)
    volumes = {name: detection_volume(pred.prepared.slices, masks)
               for name, masks in per_class.items()}
    return {name: volume for name, volume in volumes.items() if volume is not None}


def write_prediction(out_dir: Path, pred: PatientPrediction, classes: Sequence[str],
                     cutoff: float, settings: Mapping[str, Any], overwrite: bool = False,
                     seg: bool = False, cams: Sequence[Mapping[str, Any]] = ()) -> dict:
    """Write OUT/prediction.json, OUT/overlays/*.png, OUT/detections_rtstruct.dcm and, with
    ``seg``, OUT/detections_seg.dcm (the last two only when something was detected); with
    ``cams`` (``mmnpc.inference.explain.explain_prediction``) OUT/cam/*.png and their mass
    shares under ``cam`` in prediction.json."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f'{out_dir} exists; choose another --out or pass --overwrite')
    staging = out_dir.with_name(out_dir.name + '.partial')
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    record = prediction_record(pred, classes, cutoff, settings)
    by_index = {s.index: s for s in pred.prepared.slices}
    for i, dets in pred.detections.items():
        title = f'{pred.patient_id} z={by_index[i].z_mm:.1f} mm'
        if i in pred.slice_scores:
            title += f'  slice MSOM score {pred.slice_scores[i]:.2f}'
        write_overlay(staging / f'overlays/slice_{i:04d}.png', by_index[i].image, dets, classes,
                      title)
    if pred.detections:
        volumes = detection_volumes(pred, classes)
        write_native_plane_rtstruct(staging / 'detections_rtstruct.dcm', pred.series_files,
                                    volumes, patient_id=pred.patient_id)
        record['rtstruct'] = 'detections_rtstruct.dcm'
        if seg:
            write_native_plane_seg(staging / 'detections_seg.dcm', pred.series_files, volumes,
                                   patient_id=pred.patient_id)
            record['seg'] = 'detections_seg.dcm'
    if cams:
        (staging / 'cam').mkdir()
        record['cam'] = []
        for item in cams:
            cv2.imwrite(str(staging / 'cam' / f'{item["name"]}.png'), item['overlay'])
            record['cam'].append({'file': f'cam/{item["name"]}.png',
                                  'slice_index': int(item['slice_index']),
                                  'structure': item['structure'],
                                  'mass_shares': {k: None if v != v else round(float(v), 4)
                                                  for k, v in item['shares'].items()}})
    write_json(staging / 'prediction.json', record)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return record
