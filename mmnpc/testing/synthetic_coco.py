"""A small synthetic GTV / GTVln dataset in the converter's layout, for tests and benchmarks.

Writes, for each requested sequence::

    <root>/<sequence>/images/<patient>_<sequence>_<index>.jpg   grey JPEG, size x size px
    <root>/<sequence>/annotations/train.json, val.json           COCO instances

A slice is a mid-grey noisy "head" disc on a black (0 = padding) background.
A tumour slice adds a bright ellipse (GTV, 25-45 px semi-axes at 512 px) and
usually 1-2 smaller, less bright ellipses (GTVln, 8-14 px); some GTVln are
rings, whose hole forces a compressed-RLE segmentation as the converter
writes it. Tumour-free slices carry no annotation. Patients are split, never
slices. This is NOT patient data: it only lets the detector be exercised
(and seen to learn) without the converter.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

CATEGORIES: List[dict] = [
    {'id': 1, 'name': 'GTV', 'supercategory': 'tumour'},
    {'id': 2, 'name': 'GTVln', 'supercategory': 'tumour'},
]


def _ellipse_mask(size: int, centre: Tuple[float, float], axes: Tuple[float, float],
                  angle: float) -> np.ndarray:
    """bool (size, size) filled ellipse; centre (x, y) and semi-axes in px."""
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])),
                angle, 0, 360, 1, thickness=-1)
    return mask.astype(bool)


def _annotation(mask: np.ndarray, category_id: int, ring: bool) -> dict:
    """COCO annotation (no ids) of one component: polygon, or RLE when it is a ring."""
    if ring:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        segmentation = {'size': [int(s) for s in rle['size']],
                        'counts': rle['counts'].decode('ascii')}
    else:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        segmentation = [contours[0].reshape(-1).astype(float).tolist()]
    rows, cols = np.nonzero(mask)
    x0, y0 = int(cols.min()), int(rows.min())
    return {
        'category_id': category_id,
        'segmentation': segmentation,
        'bbox': [float(x0), float(y0), float(cols.max() - x0 + 1), float(rows.max() - y0 + 1)],
        'area': int(mask.sum()),
        'iscrowd': 0,
    }


def synthetic_slice(rng: np.random.Generator, size: int, with_tumour: bool
                    ) -> Tuple[np.ndarray, List[dict]]:
    """One uint8 (size, size) slice and its annotations (empty list if tumour-free)."""
    s = size / 512.0
    image = np.zeros((size, size), np.float32)
    head = _ellipse_mask(size, (size / 2, size / 2), (200 * s, 230 * s), 0)
    image[head] = 90 + 15 * rng.standard_normal(int(head.sum()))
    annotations: List[dict] = []
    if with_tumour:
        centre = (size / 2 + rng.uniform(-60, 60) * s, size / 2 + rng.uniform(-80, 0) * s)
        gtv = _ellipse_mask(size, centre, (rng.uniform(25, 45) * s, rng.uniform(25, 45) * s),
                            rng.uniform(0, 180))
        image[gtv] = 210 + 10 * rng.standard_normal(int(gtv.sum()))
        annotations.append(_annotation(gtv, 1, ring=False))
        for _ in range(int(rng.integers(0, 3))):
            side = rng.choice([-1, 1])
            node_centre = (size / 2 + side * rng.uniform(110, 150) * s,
                           size / 2 + rng.uniform(-20, 80) * s)
            radius = rng.uniform(8, 14) * s
            node = _ellipse_mask(size, node_centre, (radius, radius * rng.uniform(0.7, 1.0)), 0)
            ring = bool(rng.random() < 0.3)
            if ring:
                node &= ~_ellipse_mask(size, node_centre, (radius / 2.5, radius / 2.5), 0)
            node &= ~gtv
            if node.sum() < 4:
                continue
            image[node] = 170 + 10 * rng.standard_normal(int(node.sum()))
            annotations.append(_annotation(node, 2, ring=ring))
    image = np.clip(image, 0, 255)
    image[head & (image < 1)] = 1  # 0 is reserved for padding, as in the converter
    return image.astype(np.uint8), annotations


def write_synthetic_coco(root: Path, sequences: Sequence[str] = ('cet1',), n_patients: int = 4,
                         slices_per_patient: int = 6, tumour_fraction: float = 0.5,
                         n_val_patients: int = 1, size: int = 512, seed: int = 0
                         ) -> Dict[str, Path]:
    """Write a synthetic dataset; return {sequence: <root>/<sequence>}.

    Args:
        root: output folder (created).
        sequences: sequence folders to write (same anatomy, independent noise).
        n_patients: patients; the last ``n_val_patients`` form the val split.
        slices_per_patient: slices per patient, a ``tumour_fraction`` of them
            (rounded, at least 1) with tumour, the rest tumour-free.
        size: slice side in px (the converter writes 512).
        seed: seed of everything random.
    """
    if not 0 < n_val_patients < n_patients:
        raise ValueError(f'need 0 < n_val_patients ({n_val_patients}) < n_patients ({n_patients})')
    rng = np.random.default_rng(seed)
    n_tumour = max(1, round(slices_per_patient * tumour_fraction))
    folders = {}
    for sequence in sequences:
        folder = Path(root) / sequence
        (folder / 'images').mkdir(parents=True, exist_ok=True)
        (folder / 'annotations').mkdir(parents=True, exist_ok=True)
        splits: Dict[str, dict] = {
            split: {'images': [], 'annotations': [], 'categories': CATEGORIES}
            for split in ('train', 'val')}
        for p in range(n_patients):
            patient_id = f'SYN{p:03d}'
            split = splits['val' if p >= n_patients - n_val_patients else 'train']
            for index in range(slices_per_patient):
                image, annotations = synthetic_slice(rng, size, with_tumour=index < n_tumour)
                file_name = f'{patient_id}_{sequence}_{index:04d}.jpg'
                cv2.imwrite(str(folder / 'images' / file_name), image)
                image_id = len(split['images']) + 1
                split['images'].append({
                    'id': image_id, 'file_name': file_name, 'height': size, 'width': size,
                    'patient_id': patient_id, 'sequence': sequence, 'slice_index': index,
                    'z_mm': float(index), 'spacing_mm': [512.0 / size] * 2,
                    'origin_mm': [0.0, 0.0]})
                for annotation in annotations:
                    split['annotations'].append(
                        {**annotation, 'id': len(split['annotations']) + 1, 'image_id': image_id})
        for split_name, coco in splits.items():
            (folder / 'annotations' / f'{split_name}.json').write_text(json.dumps(coco))
        folders[sequence] = folder
    return folders
