"""Run a trained stage-1 detector on in-memory 512 x 512 grey slices.

Prediction for a new patient has no JPEGs on disk: slices come straight from
the DICOM loader. This wraps MMDetection's model with the config's own test
pipeline, image loading swapped for ``LoadImageFromNDArray`` and ground-truth
loading dropped, and runs it on batches of slices.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate


@dataclass
class SliceDetections:
    """Detections on one slice, in output-slice pixels (x right, y down).

    boxes: float (N, 4) x1, y1, x2, y2 px; scores: (N,); labels: int (N,)
    (0 = GTV, 1 = GTVln); masks: bool (N, H, W).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray

    def above(self, score_thr: float) -> 'SliceDetections':
        """Only the detections scoring at least ``score_thr``."""
        keep = self.scores >= score_thr
        return SliceDetections(self.boxes[keep], self.scores[keep], self.labels[keep],
                               self.masks[keep])

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def detector_config(checkpoint: Path, config: Optional[Path] = None) -> Config:
    """The detector's config: ``config`` if given, else the one saved in the checkpoint meta."""
    if config is not None:
        return Config.fromfile(str(config))
    meta = torch.load(str(checkpoint), map_location='cpu', weights_only=False).get('meta', {})
    if 'cfg' not in meta:
        raise ValueError(f'detector checkpoint {checkpoint} holds no config in its meta; '
                         'give the detector config explicitly')
    return Config.fromstring(meta['cfg'], file_format='.py')


def ndarray_test_pipeline(cfg: Config) -> list[dict]:
    """The config's test pipeline reading in-memory images and no annotations."""
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    pipeline = [step for step in pipeline if 'LoadAnnotations' not in step['type']]
    if 'LoadImageFromFile' not in pipeline[0]['type']:
        raise ValueError(f'unexpected first test transform {pipeline[0]["type"]}')
    pipeline[0] = dict(type='mmdet.LoadImageFromNDArray')
    return pipeline


class SliceDetector:
    """A stage-1 Mask R-CNN ready to run on grey uint8 slices.

    Args:
        checkpoint: a checkpoint written by ``tools/train.py`` on a det config.
        config: the detector config; default: the one stored in the checkpoint.
        device: 'cpu', 'cuda', ...
        score_thr: detections scoring below this are dropped inside the R-CNN
            head (``test_cfg.rcnn.score_thr``), before masks are computed and
            pasted at full size -- the costly part on CPU -- so the result
            equals filtering afterwards, only faster.
        batch_size: slices per forward pass.
    """

    def __init__(self, checkpoint: Path, config: Optional[Path] = None, device: str = 'cpu',
                 score_thr: float = 0.05, batch_size: int = 8) -> None:
        from mmdet.apis import init_detector

        import mmnpc  # noqa: F401  trusted local checkpoint loading

        cfg = detector_config(Path(checkpoint), config)
        cfg.model.test_cfg.rcnn.score_thr = score_thr
        self.config_source = str(config) if config is not None else 'saved in the checkpoint'
        self.test_cfg = cfg.model.test_cfg  # what decides the cost of a slice (proposals kept)
        self.sequence = cfg.get('sequence')  # MR sequence the detector was trained on
        self.model = init_detector(cfg, str(checkpoint), device=device)
        self.classes: tuple = tuple(self.model.dataset_meta['classes'])
        self.pipeline = Compose(ndarray_test_pipeline(cfg))
        self.batch_size = batch_size

    @torch.no_grad()
    def detect(self, slices: Sequence[np.ndarray]) -> list[SliceDetections]:
        """Detections on every slice (uint8 H x W grey), in input order."""
        results = []
        for start in range(0, len(slices), self.batch_size):
            batch = [self.pipeline(dict(img=np.repeat(s[:, :, None], 3, axis=2), img_id=start + i))
                     for i, s in enumerate(slices[start:start + self.batch_size])]
            outputs = self.model.test_step(pseudo_collate(batch))
            results.extend(self._to_numpy(out.pred_instances, slices[0].shape) for out in outputs)
        return results

    @torch.no_grad()
    def roi_features(self, slices: Sequence[np.ndarray],
                     boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The detector's own features inside given boxes: what its R-CNN head reads.

        Each slice (uint8 H x W grey) goes through the test pipeline (resize),
        backbone and FPN; its boxes (K, 4) x1, y1, x2, y2 in the slice's
        pixels are scaled like the image and pooled by the model's box RoI
        extractor (RoIAlign, 7 x 7 on the FPN level matched to each box's
        size, as Mask R-CNN maps a proposal), then averaged over the 7 x 7
        bins. Returns per slice a float32 (K, C) array (C = 256).
        """
        from mmdet.structures.bbox import bbox2roi
        if len(slices) != len(boxes):
            raise ValueError(f'{len(slices)} slices but {len(boxes)} box arrays')
        extractor = self.model.roi_head.bbox_roi_extractor
        results: list[np.ndarray] = []
        for start in range(0, len(slices), self.batch_size):
            chunk = slices[start:start + self.batch_size]
            batch = [self.pipeline(dict(img=np.repeat(s[:, :, None], 3, axis=2), img_id=start + i))
                     for i, s in enumerate(chunk)]
            data = self.model.data_preprocessor(pseudo_collate(batch), False)
            feats = self.model.extract_feat(data['inputs'])
            scaled = []
            for sample, box in zip(data['data_samples'], boxes[start:start + self.batch_size]):
                w_scale, h_scale = sample.metainfo['scale_factor']
                box = torch.as_tensor(np.asarray(box, np.float32).reshape(-1, 4),
                                      device=feats[0].device)
                scaled.append(box * box.new_tensor([w_scale, h_scale, w_scale, h_scale]))
            counts = [len(b) for b in scaled]
            if sum(counts) == 0:
                results.extend(np.zeros((0, extractor.out_channels), np.float32) for _ in chunk)
                continue
            pooled = extractor(feats[:extractor.num_inputs], bbox2roi(scaled))
            vectors = pooled.mean(dim=(2, 3)).float().cpu().numpy()
            results.extend(np.split(vectors, np.cumsum(counts)[:-1]))
        return results

    @staticmethod
    def _to_numpy(instances, shape: tuple) -> SliceDetections:
        masks = instances.masks.cpu().numpy().astype(bool) if 'masks' in instances else \
            np.zeros((len(instances), *shape), bool)
        return SliceDetections(instances.bboxes.cpu().numpy().astype(float),
                               instances.scores.cpu().numpy().astype(float),
                               instances.labels.cpu().numpy().astype(int), masks)
