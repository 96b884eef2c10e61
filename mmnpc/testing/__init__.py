"""Synthetic data for tests and benchmarks (not patient data)."""
from .synthetic_coco import synthetic_slice, write_synthetic_coco
from .untrained import save_untrained

__all__ = ['save_untrained', 'synthetic_slice', 'write_synthetic_coco']
