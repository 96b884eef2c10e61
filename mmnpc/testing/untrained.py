"""Checkpoints with random weights, saved the way MMEngine's Runner saves them (tests only)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from mmengine.config import Config


def save_untrained(config: Path, path: Path, train_patient_ids: Sequence[str] = ()) -> Path:
    """Build ``config``'s model with random weights and save it to ``path``.

    The meta holds what the tools read: the config text, the class names and
    ``train_patient_ids`` (the leakage guards check it).
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmnpc  # noqa: F401  registers the project's modules

    cfg = Config.fromfile(str(config))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    meta = {'cfg': cfg.pretty_text, 'dataset_meta': {'classes': ('GTV', 'GTVln')},
            'train_patient_ids': sorted(train_patient_ids)}
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)
    return Path(path)
