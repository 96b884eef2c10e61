"""Grad-CAM over a classifier's evaluated patients: mass shares per sample, montages.

For the evaluated patients (the test split of ``tools/test.py --cam``) every
sample the classifier scored (a slice, or a lesion window of a region model)
gets a Grad-CAM map (:func:`mmnpc.inference.grad_cam.grad_cam`) and the split of
its positive mass between GTV, GTVln, a peri-tumoural ring and elsewhere,
measured against the contours brought into the sample's own pixels (the same
window as the image for a region model). Outputs (``write_cam_report``):

* ``cam_mass_shares.csv``: one row per sample (patient, label, patient score,
  outcome group, slice, structure of the window, the four shares);
* ``cam_summary.json``: the mean shares over the samples and over patients,
  per outcome group and in all;
* ``montage_<group>.png``: a few samples of the patients of each group
  (true / false positives and negatives at the cut-off), MR with the heat map
  and the GTV (red) / GTVln (yellow) outlines.

Nothing is fitted here: the cut-off is the one the patient table carries
(chosen on training patients).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import cv2
import numpy as np
import pandas as pd
from pycocotools import mask as mask_utils

from ..datasets.regions import RegionSpec, masks_in_window
from ..inference.grad_cam import CAM_PARTS, cam_mass_shares, cam_overlay, grad_cam
from ..utils.json_io import write_json

GROUPS: tuple[str, ...] = ('true_positive', 'false_negative', 'false_positive', 'true_negative')


def outcome_group(label: int, risk_group: str) -> str:
    """'true_positive' ... for a patient's label and its high / low risk group."""
    high = risk_group == 'high'
    if label == 1:
        return 'true_positive' if high else 'false_negative'
    return 'false_positive' if high else 'true_negative'


def annotation_masks(coco: dict, image_id: int, shape: tuple) -> dict:
    """class name -> bool (H, W) union of the image's annotations of that class."""
    names = {c['id']: c['name'] for c in coco.get('categories', [])}
    masks: dict = {}
    for annotation in coco.get('annotations', []):
        if annotation['image_id'] != image_id:
            continue
        segmentation = annotation['segmentation']
        if isinstance(segmentation, list):
            rles = mask_utils.frPyObjects(segmentation, shape[0], shape[1])
            rle = mask_utils.merge(rles)
        else:
            rle = dict(segmentation)
            if isinstance(rle['counts'], str):
                rle['counts'] = rle['counts'].encode('ascii')
        mask = mask_utils.decode(rle).astype(bool)
        name = names[annotation['category_id']]
        masks[name] = masks.get(name, np.zeros(shape, bool)) | mask
    return masks


def sample_masks(masks: dict, info: dict, spec: Optional[RegionSpec]) -> dict:
    """The slice's masks cut into a region sample's window (like the image, then
    thresholded at 0.5); a slice sample's masks unchanged (``cam_rows`` resizes them)."""
    if spec is not None:
        return masks_in_window(masks, info['region_box'], info['spacing_mm'], spec)
    return masks


def cam_rows(model, dataset, patients: Sequence[str], coco_of: Callable[[str], dict],
             spec: Optional[RegionSpec], progress: Optional[Callable[[Iterable], Iterable]] = None
             ) -> tuple[list, dict]:
    """(one row per sample of ``patients``, sample key -> (image, cam, masks)).

    ``dataset``: the classifier's test dataset (its pipeline gives the model's
    input); ``coco_of(split)``: that split's COCO dict (for the contours).
    """
    wanted = set(patients)
    indices = [i for i in range(len(dataset))
               if dataset.get_data_info(i)['patient_id'] in wanted]
    rows, pictures = [], {}
    for idx in (progress(indices) if progress else indices):
        info = dataset.get_data_info(idx)
        packed = dataset[idx]
        image = packed['inputs'][None]
        clinical = packed['data_samples'].clinical if model.num_clinical else None
        cam = grad_cam(model, image, clinical)[0]
        coco = coco_of(info['split'])
        full = annotation_masks(coco, info['img_id'], (int(info['height']), int(info['width'])))
        masks = sample_masks(full, info, spec)
        if spec is None:
            height, width = image.shape[-2:]
            masks = {n: cv2.resize(m.astype(np.uint8), (width, height),
                                   interpolation=cv2.INTER_NEAREST).astype(bool)
                     for n, m in masks.items()}
            step = np.asarray(info['spacing_mm'], float) * info['width'] / width
        else:
            step = (spec.step_mm, spec.step_mm)
        shares = cam_mass_shares(cam, masks, step, ring_mm=spec.margin_mm if spec else 5.0)
        key = (info['patient_id'], idx)
        rows.append({'patient_id': info['patient_id'], 'sample': idx,
                     'slice_index': info.get('slice_index'),
                     'structure': info.get('structure', ''), **shares})
        pictures[key] = (packed['inputs'][0].numpy(), cam, masks)
    return rows, pictures


def summarise(table: pd.DataFrame) -> dict:
    """Mean shares over samples and over patients (patient = mean of its samples), per group."""
    out = {}
    for group, part in [('all', table)] + [(g, table[table['group'] == g]) for g in GROUPS]:
        valid = part.dropna(subset=list(CAM_PARTS))
        per_patient = valid.groupby('patient_id')[list(CAM_PARTS)].mean()
        out[group] = {'n_patients': int(part['patient_id'].nunique()),
                      'n_samples': int(len(part)),
                      'mean_over_samples': {p: _num(valid[p].mean()) for p in CAM_PARTS},
                      'mean_over_patients': {p: _num(per_patient[p].mean()) for p in CAM_PARTS}}
    return out


def _num(value) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else round(value, 4)


def montage(pictures: Sequence[tuple], titles: Sequence[str], path: Path, tile: int = 160) -> None:
    """A grid of overlays (4 per row) with a title under each."""
    tiles = []
    for (image, cam, masks), title in zip(pictures, titles):
        overlay = cv2.resize(cam_overlay(image, cam, masks), (tile, tile),
                             interpolation=cv2.INTER_LINEAR)
        caption = np.zeros((18, tile, 3), np.uint8)
        cv2.putText(caption, title[:28], (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(np.vstack([overlay, caption]))
    if not tiles:
        return
    per_row = 4
    blank = np.zeros_like(tiles[0])
    rows = [np.hstack(tiles[i:i + per_row] + [blank] * (per_row - len(tiles[i:i + per_row])))
            for i in range(0, len(tiles), per_row)]
    cv2.imwrite(str(path), np.vstack(rows))


def choose_patients(patients: pd.DataFrame, eval_split: str, per_group: int) -> pd.DataFrame:
    """Up to ``per_group`` evaluated patients of each outcome group: the most confident
    (highest scores for positives calls, lowest for negative calls); ties by id."""
    table = patients[patients['split'] == eval_split].copy()
    table['group'] = [outcome_group(int(l), str(r))
                      for l, r in zip(table['label'], table['risk_group'])]
    chosen = []
    for group in GROUPS:
        part = table[table['group'] == group]
        ascending = group in ('false_negative', 'true_negative')
        chosen.append(part.sort_values(['score', 'patient_id'], ascending=[ascending, True])
                      .head(per_group))
    return pd.concat(chosen, ignore_index=True)


def write_cam_report(model, dataset, patient_scores: pd.DataFrame, eval_split: str,
                     coco_of: Callable[[str], dict], spec: Optional[RegionSpec], out_dir: Path,
                     per_group: int = 4, samples_per_patient: int = 2,
                     progress: Optional[Callable[[Iterable], Iterable]] = None) -> dict:
    """Compute and write the report of the module docstring; returns the summary."""
    chosen = choose_patients(patient_scores, eval_split, per_group)
    rows, pictures = cam_rows(model, dataset, list(chosen['patient_id']), coco_of, spec, progress)
    info = chosen.set_index('patient_id')
    table = pd.DataFrame(rows)
    if table.empty:
        raise ValueError(f'no {eval_split} sample to explain')
    table.insert(1, 'label', table['patient_id'].map(info['label']).astype(int))
    table.insert(2, 'patient_score', table['patient_id'].map(info['score']))
    table.insert(3, 'group', table['patient_id'].map(info['group']))
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / 'cam_mass_shares.csv', index=False)
    summary = {'eval_split': eval_split, 'parts': list(CAM_PARTS),
               'ring_mm': spec.margin_mm if spec else 5.0, 'groups': summarise(table)}
    write_json(out_dir / 'cam_summary.json', summary)
    for group in GROUPS:
        part = table[table['group'] == group]
        picks = part.groupby('patient_id', sort=False).head(samples_per_patient)
        keys = [(r.patient_id, r.sample) for r in picks.itertuples()]
        titles = [f'{r.patient_id} s{r.patient_score:.2f} GTV{_pct(r.GTV)}'
                  for r in picks.itertuples()]
        montage([pictures[k] for k in keys], titles, out_dir / f'montage_{group}.png')
    return summary


def _pct(value: float) -> str:
    return '-' if value != value else f'{100 * value:.0f}%'
