"""Grad-CAM of the stage-2 classifier, and where its mass lies (GTV, nodes, ring, elsewhere).

Grad-CAM (Selvaraju et al., ICCV 2017) weights each channel of a feature map
by the spatial mean of the logit's gradient with respect to it, sums the
weighted channels and keeps the positive part: the regions that push the
MSOM logit up. Computed with captum's ``LayerGradCam`` (BSD, maintained; no
torchvision needed) on the FPN level the classifier pools
(``feature_level``, P3 by default: stride 8), then upsampled bilinearly to the
input size (captum's ``LayerAttribution.interpolate``). The map explains the
*logit* of the full model: for a fusion model the clinical vector is held at
the patient's values, so the map shows what the image adds on top of it.

:func:`cam_mass_shares` splits a map's positive mass between the GTV, the
GTVln, a peri-tumoural ring (``ring_mm`` around either) and everything else,
so one can check, over many patients, that the model looks at the tumour.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

CAM_PARTS: tuple[str, ...] = ('GTV', 'GTVln', 'ring', 'elsewhere')


def _prepared(model, images: Tensor) -> Tensor:
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f'images must be (N, 1 or 3, H, W), got {tuple(images.shape)}')
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    batch = model.data_preprocessor({'inputs': images.float(), 'data_samples': None}, False)
    return batch['inputs']


def cam_layer(model):
    """The module whose output is the pooled FPN level (``neck.fpn_convs[level]``)."""
    return model.neck.fpn_convs[model.feature_level]


def grad_cam(model, images: Tensor, clinical: Optional[Tensor] = None) -> np.ndarray:
    """float32 (N, H, W) Grad-CAM maps (>= 0, not normalised) of uint8-range images.

    images: (N, 1 or 3, H, W) pixel values 0..255 as the classifier's test
    pipeline gives them; clinical: the patient's encoded vector (C,) or (N, C)
    for a fusion model. Runs in eval mode and restores the previous mode.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    height, width = images.shape[-2:]  # the preprocessor may pad to a multiple of 32
    inputs = _prepared(model, images)
    vector = None
    if model.num_clinical:
        if clinical is None:
            raise ValueError(f'this model needs the clinical vector ({model.num_clinical})')
        vector = torch.as_tensor(clinical, dtype=torch.float32, device=inputs.device)
        vector = vector.expand(inputs.shape[0], -1) if vector.dim() == 1 else vector

    def forward(x: Tensor) -> Tensor:
        return model._logits(x, vector)

    was_training = model.training
    model.eval()
    try:
        attribution = LayerGradCam(forward, cam_layer(model)).attribute(
            inputs, target=0, relu_attributions=True)
        padded = inputs.shape[-2:]
        upsampled = LayerAttribution.interpolate(attribution, tuple(padded), 'bilinear')
        upsampled = upsampled[..., :height, :width]  # padding is at the bottom / right
    finally:
        model.train(was_training)
    return upsampled[:, 0].detach().cpu().numpy().astype(np.float32).clip(0, None)


def _disk(radius_px: float) -> np.ndarray:
    r = max(int(np.ceil(radius_px)), 0)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx ** 2 + yy ** 2 <= radius_px ** 2 + 1e-9).astype(np.uint8)


def cam_mass_shares(cam: np.ndarray, masks: Mapping[str, np.ndarray], spacing_mm: Sequence[float],
                    ring_mm: float = 5.0) -> dict:
    """Share of the map's positive mass inside GTV, GTVln, the ring and elsewhere.

    cam: (H, W) >= 0; masks: 'GTV' / 'GTVln' -> bool (H, W) (absent = empty);
    spacing_mm: pixel size (x, y) of the map; ring: within ``ring_mm`` of either
    structure, outside both (a disc dilation at the mean pixel size). Where both
    structures overlap the GTV counts. Shares sum to 1; all NaN for an empty map.
    """
    cam = np.asarray(cam, dtype=np.float64).clip(0, None)
    gtv = np.asarray(masks.get('GTV', np.zeros(cam.shape, bool)), bool)
    nodes = np.asarray(masks.get('GTVln', np.zeros(cam.shape, bool)), bool) & ~gtv
    lesion = gtv | nodes
    radius_px = ring_mm / float(np.mean(spacing_mm))
    grown = cv2.dilate(lesion.astype(np.uint8), _disk(radius_px)).astype(bool)
    ring = grown & ~lesion
    total = cam.sum()
    if total <= 0:
        return {part: float('nan') for part in CAM_PARTS}
    shares = {'GTV': cam[gtv].sum() / total, 'GTVln': cam[nodes].sum() / total,
              'ring': cam[ring].sum() / total}
    shares['elsewhere'] = 1.0 - sum(shares.values())
    return {k: float(v) for k, v in shares.items()}


def cam_overlay(image: np.ndarray, cam: np.ndarray,
                masks: Optional[Mapping[str, np.ndarray]] = None) -> np.ndarray:
    """BGR uint8 (H, W, 3): the grey image, the map as a JET heat overlay (normalised to
    its maximum) and the GTV (red) / GTVln (yellow) outlines."""
    grey = np.asarray(image, np.uint8)
    grey = grey if grey.ndim == 2 else grey[..., 0]
    peak = float(cam.max())
    heat = np.zeros(grey.shape, np.uint8) if peak <= 0 else \
        np.rint(255 * cam / peak).astype(np.uint8)
    coloured = cv2.applyColorMap(heat, cv2.COLORMAP_JET)
    base = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    out = cv2.addWeighted(base, 0.6, coloured, 0.4, 0)
    for name, colour in (('GTV', (0, 0, 255)), ('GTVln', (0, 255, 255))):
        if masks and name in masks and np.any(masks[name]):
            contours, _ = cv2.findContours(np.asarray(masks[name], np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, contours, -1, colour, 1)
    return out
