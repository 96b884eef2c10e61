"""Data transforms registered in MMDetection's TRANSFORMS registry."""
from .crop_region import CropRegion
from .lesion_crop import LesionCrop
from .pack_msom_inputs import PackMsomInputs

__all__ = ['CropRegion', 'LesionCrop', 'PackMsomInputs']
