"""Pictures of detections on a slice: outline, box and score in the class colour."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from mmnpc.inference.slice_detector import SliceDetections

# BGR, the same colours as the detector configs' palette: GTV crimson, GTVln gold
CLASS_COLOURS_BGR: dict[str, tuple[int, int, int]] = {'GTV': (60, 20, 220), 'GTVln': (0, 200, 255)}


def draw_detections(image: np.ndarray, dets: SliceDetections, classes: Sequence[str],
                    title: str = '') -> np.ndarray:
    """BGR uint8 picture of the grey slice ``image`` with every detection drawn."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for box, score, label, mask in zip(dets.boxes, dets.scores, dets.labels, dets.masks):
        name = classes[int(label)]
        colour = CLASS_COLOURS_BGR.get(name, (0, 255, 0))
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, colour, 1)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 1)
        cv2.putText(canvas, f'{name} {score:.2f}', (x1, max(12, y1 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    if title:
        cv2.putText(canvas, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return canvas


def write_overlay(path: Path, image: np.ndarray, dets: SliceDetections, classes: Sequence[str],
                  title: str = '') -> None:
    """Write :func:`draw_detections` as PNG (lossless, so outlines stay crisp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), draw_detections(image, dets, classes, title)):
        raise OSError(f'could not write {path}')
