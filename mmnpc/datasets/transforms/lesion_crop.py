"""A fixed-size training crop that keeps a lesion whole with a given probability."""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import numpy as np
from mmcv.transforms.utils import cache_randomness
from mmdet.datasets.transforms import RandomCrop
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import autocast_box_type


@TRANSFORMS.register_module()
class LesionCrop(RandomCrop):
    """MMDetection's ``RandomCrop`` (absolute size) with foreground oversampling.

    Training on crops of the full-resolution slice instead of the whole slice
    scaled down keeps small lymph nodes at their real pixel size at the cost
    of one crop's compute. (No config here uses it now: the first CPU recipe
    did, commit 0533742; the current one trains on whole 256 px slices,
    docs/detection.md.) A uniformly placed crop, though, often misses the
    few lesions of a slice. So, as nnDetection / nnU-Net sample patches, with
    probability ``lesion_prob`` the crop is placed (uniformly among the
    offsets that do so) to contain one lesion of the slice, chosen at random,
    whole -- or centred on it when the lesion is larger than the crop;
    otherwise, and on slices without a lesion, the offset is uniform as in
    ``RandomCrop``. Cropping of boxes, masks and labels is ``RandomCrop``'s
    own: boxes are clipped to the crop and recomputed from the cropped masks,
    and negative crops are kept (tumour-free regions are training data too).

    Required Keys: img, gt_bboxes (optional), gt_bboxes_labels, gt_masks,
    gt_ignore_flags (lesions flagged ignore are never chosen to centre on).

    Modified Keys: img, img_shape, gt_bboxes, gt_bboxes_labels, gt_masks,
    gt_ignore_flags.

    Added Keys: homography_matrix (composed with an existing one).

    Args:
        crop_size: (w, h) in pixels, as ``RandomCrop``'s absolute crop size.
        lesion_prob: share of crops placed on a lesion when the slice has one.
    """

    def __init__(self, crop_size: Tuple[int, int], lesion_prob: float = 0.5,
                 bbox_clip_border: bool = True) -> None:
        super().__init__(crop_size=crop_size, crop_type='absolute', allow_negative_crop=True,
                         recompute_bbox=True, bbox_clip_border=bbox_clip_border)
        if not 0.0 <= lesion_prob <= 1.0:
            raise ValueError(f'lesion_prob must lie in [0, 1], got {lesion_prob}')
        self.lesion_prob = lesion_prob
        self._target: Optional[np.ndarray] = None  # (x1, y1, x2, y2) of the chosen lesion
        self._image_hw: Tuple[int, int] = (0, 0)

    @cache_randomness
    def _choose_lesion(self, boxes: np.ndarray) -> Optional[np.ndarray]:
        if len(boxes) == 0 or np.random.rand() >= self.lesion_prob:
            return None
        return boxes[np.random.randint(len(boxes))]

    @autocast_box_type()
    def transform(self, results: dict) -> Union[dict, None]:
        boxes = results.get('gt_bboxes')
        boxes = np.zeros((0, 4)) if boxes is None else boxes.numpy().reshape(-1, 4)
        ignore = results.get('gt_ignore_flags')
        if ignore is not None and len(ignore) == len(boxes):
            boxes = boxes[~np.asarray(ignore, dtype=bool)]
        self._image_hw = tuple(results['img'].shape[:2])
        self._target = self._choose_lesion(boxes)
        return super().transform(results)

    @cache_randomness
    def _rand_offset(self, margin: Tuple[int, int]) -> Tuple[int, int]:
        """(offset_h, offset_w): uniform, or among the offsets that keep the lesion whole."""
        if self._target is None:
            return super()._rand_offset(margin)
        x1, y1, x2, y2 = self._target
        crop_h = self._image_hw[0] - margin[0]
        crop_w = self._image_hw[1] - margin[1]
        return (_offset_containing(y1, y2, crop_h, margin[0]),
                _offset_containing(x1, x2, crop_w, margin[1]))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crop_size={self.crop_size}, '
                f'lesion_prob={self.lesion_prob}, bbox_clip_border={self.bbox_clip_border})')


def _offset_containing(low: float, high: float, size: int, margin: int) -> int:
    """An offset in [0, margin] whose window [offset, offset + size) holds [low, high].

    Uniform among such offsets; when the interval is longer than the window,
    the window is centred on it (clamped to the image).
    """
    first = max(0, math.ceil(high) - size)
    last = min(margin, math.floor(low))
    if first > last:
        return int(np.clip(round((low + high - size) / 2), 0, margin))
    return int(np.random.randint(first, last + 1))
