"""Data transforms registered in MMDetection's TRANSFORMS registry."""
from .pack_msom_inputs import PackMsomInputs

__all__ = ['PackMsomInputs']
