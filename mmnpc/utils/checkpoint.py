"""Let MMEngine load the checkpoints it writes itself under torch >= 2.6.

torch 2.6 changed ``torch.load`` to ``weights_only=True`` by default. MMEngine
0.10.7 calls ``torch.load(filename, map_location=...)`` without the argument,
and its checkpoints hold more than tensors (``meta`` with the config text,
``message_hub`` objects, numpy scalars), so ``--resume``, ``load_from`` and
``tools/test.py CONFIG CKPT`` would all fail with an ``UnpicklingError``.

Trust model: ``weights_only=False`` un-pickles arbitrary Python objects, i.e.
loading a checkpoint can execute code. It is acceptable only for files the
user trusts -- checkpoints this project wrote, or a published MMDetection COCO
checkpoint the user downloaded on purpose. This module therefore widens
exactly one door: MMEngine's loader for *local file paths* (the scheme ``''``
of :class:`mmengine.runner.CheckpointLoader`). Remote schemes (``http://``,
``https://``, ``open-mmlab://``, ...) keep torch's safe default, and nothing
else in the process is changed.

It is installed when :mod:`mmnpc` is imported, which the configs do through
``custom_imports = dict(imports=['mmnpc'])``.
"""
from __future__ import annotations

import os.path as osp
from typing import Any

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_from_local_trusted(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint the user trusts with ``weights_only=False``.

    Named ``load_from_*`` because MMEngine logs the backend as the function
    name without that prefix ("Loads checkpoint by local_trusted backend").
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def register_trusted_local_loader() -> None:
    """Make MMEngine load local checkpoints with :func:`load_from_local_trusted`.

    Idempotent: registering again replaces the same entry.
    """
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_trusted, force=True)
