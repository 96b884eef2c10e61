"""Frozen per-patient features of a backbone, for the linear probe of the transfer test.

Two ways to read a lesion with a frozen network (issue 31, item 1 d and item 4):

* :func:`window_features`: the stage-2 classifier's own path. Each sample of a
  :class:`~mmnpc.datasets.MsomRegionDataset` (a window of fixed millimetres
  around a GTV / GTVln section, cut by the dataset's test pipeline) goes
  through the classifier's data preprocessor, backbone and FPN, and the FPN
  level it pools is averaged over space (``MsomClassifier.extract_feat``):
  one vector per window. The backbone is whatever initialised the classifier:
  random weights, the detector's (``det_checkpoint``), ImageNet or COCO.
* :func:`roi_features`: the detector's own mechanism. The whole slice goes
  through the trained Mask R-CNN's test pipeline, backbone and FPN, and its
  box RoI extractor (RoIAlign on the FPN level matched to the box's size, as
  the R-CNN head reads a proposal) pools the lesion box grown by ``margin_mm``
  (:meth:`SliceDetector.roi_features`): one vector per lesion section, from
  exactly the features stage 1 detects with.

:func:`patient_means` turns either into one row per patient the way the
classifier's scores are aggregated (mean over a slice's regions, then over
the patient's slices; :mod:`mmnpc.evaluation.patient_table`).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

META_KEYS: tuple[str, ...] = ('patient_id', 'split', 'gt_label', 'img_path', 'slice_index',
                              'structure', 'region_box', 'spacing_mm')


def region_meta(dataset) -> list[dict]:
    """Per sample of a region dataset: the fields that place and label it (``META_KEYS``)."""
    rows = []
    for k in range(len(dataset)):
        info = dataset.get_data_info(k)
        missing = [key for key in ('region_box', 'spacing_mm') if info.get(key) is None]
        if missing:
            raise ValueError(f'sample {k} of patient {info.get("patient_id")} '
                             f'({info.get("img_path")}) lacks {missing}: a region dataset with '
                             'the converter\'s spacing_mm is needed')
        rows.append({key: info.get(key) for key in META_KEYS})
    return rows


@torch.no_grad()
def window_features(model, dataset, batch_size: int = 64, progress: bool = True,
                    desc: str = 'window features') -> np.ndarray:
    """(N, C) float32: the classifier's pooled FPN features of every sample of ``dataset``.

    ``dataset`` runs its own (test) pipeline, so a window is cut exactly as
    ``tools/test.py`` cuts it. The model runs in eval mode (BatchNorm running
    statistics) and is left in eval mode.
    """
    model.eval()
    out = []
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc=desc, unit='batch', disable=not progress):
        inputs = torch.stack([dataset[k]['inputs']
                              for k in range(start, min(start + batch_size, len(dataset)))])
        batch = model.data_preprocessor({'inputs': inputs.float(), 'data_samples': None}, False)
        out.append(model.extract_feat(batch['inputs']).float().cpu().numpy())
    channels = model.neck.out_channels
    return np.concatenate(out) if out else np.zeros((0, channels), np.float32)


def grown_boxes(boxes: Sequence[Sequence[float]], spacing_mm: Sequence[float],
                margin_mm: float) -> np.ndarray:
    """(K, 4) boxes (x1, y1, x2, y2 px) grown by ``margin_mm`` on each side (per-axis spacing)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sx, sy = (float(s) for s in spacing_mm)
    if sx <= 0 or sy <= 0 or margin_mm < 0:
        raise ValueError(f'spacing {spacing_mm} must be positive and margin {margin_mm} >= 0')
    grow = np.array([-margin_mm / sx, -margin_mm / sy, margin_mm / sx, margin_mm / sy])
    return boxes + grow


@torch.no_grad()
def roi_features(detector, meta: Sequence[dict], margin_mm: float = 5.0,
                 slices_per_batch: int = 8, progress: bool = True,
                 desc: str = 'RoI features') -> np.ndarray:
    """(N, 256) float32: the detector's RoIAlign features of each sample's box (+ margin).

    Args:
        detector: a :class:`~mmnpc.inference.SliceDetector`.
        meta: :func:`region_meta` rows (``img_path``, ``region_box``, ``spacing_mm``).
        margin_mm: peri-tumoural margin added to each box before pooling.
    """
    by_slice: 'OrderedDict[str, list[int]]' = OrderedDict()
    for k, row in enumerate(meta):
        by_slice.setdefault(str(row['img_path']), []).append(k)
    paths = list(by_slice)
    out = np.zeros((len(meta), 0), np.float32)
    for start in tqdm(range(0, len(paths), slices_per_batch), desc=desc, unit='batch',
                      disable=not progress):
        chunk = paths[start:start + slices_per_batch]
        slices, boxes = [], []
        for path in chunk:
            image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise FileNotFoundError(f'cannot read slice {path}')
            rows = [meta[k] for k in by_slice[path]]
            slices.append(image)
            boxes.append(grown_boxes([r['region_box'] for r in rows], rows[0]['spacing_mm'],
                                     margin_mm))
        vectors = detector.roi_features(slices, boxes)
        if out.shape[1] == 0:
            out = np.zeros((len(meta), vectors[0].shape[1]), np.float32)
        for path, block in zip(chunk, vectors):
            out[by_slice[path]] = block
    return out


def patient_means(meta: Sequence[dict], features: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per patient: mean over each slice's samples, then over the patient's slices.

    Returns:
        (table with ``patient_id``, ``split``, ``label``, ``n_slices``,
        ``n_regions``, sorted by patient; matrix (patients, C) in that order).
    """
    features = np.asarray(features, dtype=np.float64)
    if len(meta) != features.shape[0]:
        raise ValueError(f'{len(meta)} samples but {features.shape[0]} feature rows')
    slices: dict[str, dict[str, list[int]]] = {}
    info: dict[str, dict] = {}
    for k, row in enumerate(meta):
        patient = str(row['patient_id'])
        slices.setdefault(patient, {}).setdefault(str(row['img_path']), []).append(k)
        first = info.setdefault(patient, {'split': row['split'], 'label': int(row['gt_label'])})
        if first['split'] != row['split'] or first['label'] != int(row['gt_label']):
            raise ValueError(f'patient {patient}: samples in two splits or with two labels')
    rows, matrix = [], []
    for patient in sorted(slices):
        per_slice = [features[index].mean(axis=0) for index in slices[patient].values()]
        matrix.append(np.mean(per_slice, axis=0))
        rows.append({'patient_id': patient, **info[patient], 'n_slices': len(per_slice),
                     'n_regions': sum(len(v) for v in slices[patient].values())})
    width = features.shape[1] if features.ndim == 2 else 0
    return pd.DataFrame(rows), (np.stack(matrix) if matrix else np.zeros((0, width)))
