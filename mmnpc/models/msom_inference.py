"""Load a trained MSOM classifier and its clinical encoder for prediction code."""
from __future__ import annotations

from typing import Tuple, Union

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from ..datasets.clinical_encoder import ClinicalEncoder, clinical_encoder_from_checkpoint
from ..utils import register_trusted_local_loader
from .msom_classifier import MsomClassifier


def init_msom_classifier(config: Union[str, Config], checkpoint: str, device: str = 'cpu'
                         ) -> Tuple[MsomClassifier, ClinicalEncoder]:
    """The classifier of ``config`` with ``checkpoint``'s weights (eval mode) and its encoder.

    Typical use, one patient (slices resized as in the config's test pipeline)::

        model, encoder = init_msom_classifier('configs/msom_fusion.py', 'best.pth')
        clinical = torch.from_numpy(encoder.encode(row, patient_id))  # row: clinical.csv cells
        risk = model.score_slices(images, clinical).mean()            # images: (N, 3, H, W)

    (the mean pooling of the slice configs; a model with ``bag_pooling='attention'``
    pools ``model.score_slices(images, clinical, details=True)`` by
    :func:`mmnpc.models.bag_pooling.pooled_score`, as ``tools/predict.py`` does).

    Raises:
        ValueError: the config is not a classifier (``task != 'msom'``), the
            checkpoint has no fitted clinical encoder while the model uses
            clinical variables, or their variables differ.
    """
    from mmdet.registry import MODELS

    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg.get('task') != 'msom':
        raise ValueError(f'{cfg.filename}: not an MSOM classifier config (task != "msom")')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model.copy()
    model_cfg.det_checkpoint = None  # the checkpoint below holds every weight
    model = MODELS.build(model_cfg)
    register_trusted_local_loader()
    loaded = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    encoder = clinical_encoder_from_checkpoint(loaded)
    if encoder is None:
        if model.num_clinical:
            raise ValueError(f'{checkpoint} has no meta["clinical_encoder"]; it was not trained '
                             'with ClinicalEncoderHook')
        encoder = ClinicalEncoder([])
    if encoder.feature_names != model.clinical_feature_names:
        raise ValueError(f'{checkpoint}: encoder features {encoder.feature_names} differ from '
                         f"the config's {model.clinical_feature_names}")
    model.cfg = cfg
    return model.to(device).eval(), encoder
