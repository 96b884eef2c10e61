"""Cut the millimetre window around a lesion box (stage 2 reading the detected region)."""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmdet.registry import TRANSFORMS

from ..regions import RegionSpec, crop_region, keep_mask


@TRANSFORMS.register_module()
class CropRegion(BaseTransform):
    """Replace the slice by the window of :mod:`mmnpc.datasets.regions` around ``region_box``.

    Required Keys: img (the full-resolution slice, as the converter wrote it),
    region_box (x1, y1, x2, y2 px), spacing_mm ([sx, sy], the COCO image entry's).

    Modified Keys: img ((out_px, out_px[, C])), img_shape.

    Added Keys: region_spec (the :class:`RegionSpec` as a dict).

    Augmentation (training pipelines only): ``jitter_mm`` > 0 moves the box by
    a uniform random offset in [-jitter_mm, jitter_mm] mm along x and y before
    the window is cut, so the model does not learn that the lesion sits exactly
    at the centre (a detector's box never does). It moves pixels, never changes
    their values: intensity ratios (texture is a variance) are kept.

    Args:
        size_mm, out_px, margin_mm, keep: the :class:`RegionSpec`.
        jitter_mm: training-time box shift (0 = none; test pipelines keep 0).
    """

    def __init__(self, size_mm: float = 64.0, out_px: int = 128, margin_mm: float = 5.0,
                 keep: str = 'window', jitter_mm: float = 0.0) -> None:
        self.spec = RegionSpec(size_mm=size_mm, out_px=out_px, margin_mm=margin_mm, keep=keep)
        if jitter_mm < 0:
            raise ValueError(f'jitter_mm must be >= 0, got {jitter_mm}')
        self.jitter_mm = float(jitter_mm)

    @cache_randomness
    def _shift_mm(self) -> np.ndarray:
        return np.random.uniform(-self.jitter_mm, self.jitter_mm, 2)

    def transform(self, results: dict) -> dict:
        for key in ('img', 'region_box', 'spacing_mm'):
            if results.get(key) is None:
                raise KeyError(f'CropRegion needs {key!r} ({results.get("img_path")}): use '
                               'MsomRegionDataset on the converter\'s COCO files')
        box = np.asarray(results['region_box'], dtype=np.float64)
        if self.jitter_mm > 0:
            # the window moves, the lesion does not: cut the whole window at the shifted box,
            # then mask around the lesion's true box, moved into the window's pixels
            shift = self._shift_mm()
            moved = box + np.tile(shift / np.asarray(results['spacing_mm'], np.float64), 2)
            img = crop_region(results['img'], moved, results['spacing_mm'], self.spec.unmasked())
            if self.spec.keep != 'window':
                mask = keep_mask(box, results['spacing_mm'], self.spec)
                offset = np.rint(-shift / self.spec.step_mm).astype(int)  # (dx, dy) px
                mask = _shifted(mask, offset[0], offset[1])
                img[~mask] = 0
        else:
            img = crop_region(results['img'], box, results['spacing_mm'], self.spec)
        results['img'] = np.ascontiguousarray(img)
        results['img_shape'] = img.shape[:2]
        results['region_spec'] = dict(vars(self.spec))
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.spec}, jitter_mm={self.jitter_mm})'


def _shifted(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``mask`` moved by (dx, dy) pixels (x right, y down), False where it comes in."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out
