"""Synthetic data for tests and benchmarks (not patient data)."""
from .synthetic_coco import synthetic_slice, write_synthetic_coco

__all__ = ['synthetic_slice', 'write_synthetic_coco']
