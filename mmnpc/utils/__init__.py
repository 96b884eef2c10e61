"""Helpers shared by the mmnpc tools and modules."""
from .checkpoint import load_from_local_trusted, register_trusted_local_loader
from .data_root import set_data_root
from .eval_split import resolve_test_split

__all__ = ['load_from_local_trusted', 'register_trusted_local_loader', 'set_data_root',
           'resolve_test_split']
