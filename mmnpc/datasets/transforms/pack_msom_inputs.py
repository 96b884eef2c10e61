"""Pack one classifier sample: image tensor + a data sample carrying label and clinical vector."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mmdet.registry import TRANSFORMS

REQUIRED_META: tuple[str, ...] = ('patient_id', 'split', 'img_id', 'img_path', 'z_mm')


@TRANSFORMS.register_module()
class PackMsomInputs(BaseTransform):
    """Pack the loaded slice for :class:`~mmnpc.models.MsomClassifier`.

    As mmpretrain's ``PackInputs``, per-sample extras (label, clinical
    vector) travel on the data sample, not as new ``forward`` arguments.

    Required Keys:

    - img: (H, W, 3) or (H, W) uint8 image (LoadImageFromFile reads a grey
      JPEG as 3 equal channels)
    - patient_id, split, img_id, img_path, z_mm
    - gt_label: 0.0 / 1.0, the patient's MSOM label
    - clinical: float32 (C,) encoded clinical vector (C may be 0)

    Added Keys:

    - inputs: uint8 tensor (3, H, W)
    - data_samples: :class:`mmengine.structures.BaseDataElement` with
      metainfo ``meta_keys`` (those present) and data fields ``gt_label``
      (float32 tensor (1,)) and ``clinical`` (float32 tensor (C,)).

    Args:
        meta_keys: keys copied into the data sample's metainfo; the
            ``REQUIRED_META`` ones must be present.
    """

    def __init__(self, meta_keys: Sequence[str] = (
            'patient_id', 'split', 'img_id', 'img_path', 'z_mm', 'slice_index', 'ori_shape',
            'img_shape', 'scale_factor', 'flip', 'flip_direction')) -> None:
        missing = [key for key in REQUIRED_META if key not in meta_keys]
        if missing:
            raise ValueError(f'PackMsomInputs: meta_keys must include {missing}')
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Return ``dict(inputs=..., data_samples=...)``."""
        absent = [key for key in (*REQUIRED_META, 'img', 'gt_label', 'clinical')
                  if key not in results]
        if absent:
            raise KeyError(f'PackMsomInputs: results lack {absent} ({results.get("img_path")})')
        img = results['img']
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = BaseDataElement(
            metainfo={key: results[key] for key in self.meta_keys if key in results})
        sample.gt_label = torch.tensor([float(results['gt_label'])], dtype=torch.float32)
        sample.clinical = torch.as_tensor(np.asarray(results['clinical'], dtype=np.float32))
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
