"""Stage 2: the detector's ResNet-50 + FPN, global average pooling, clinical vector, FC, sigmoid."""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from mmdet.registry import MODELS

from ..datasets.clinical_encoder import ClinicalEncoder
from .detector_transfer import load_detector_weights
from .feature_standardizer import RunningStandardizer

MODES: tuple[str, ...] = ('loss', 'predict', 'tensor')
LOSS_LEVELS: tuple[str, ...] = ('instance', 'patient')
BAG_POOLINGS: tuple[str, ...] = ('mean', 'attention')


@MODELS.register_module()
class MsomClassifier(BaseModel):
    """Slice-level MSOM classifier on top of the stage-1 detector's features.

    ``backbone`` and ``neck`` are built exactly like the detector's (ResNet-50
    + FPN, 256 channels per level) so that ``det_checkpoint`` can initialise
    them. For an input batch (N, 3, H, W) the FPN level ``feature_level``
    (0 = P2 stride 4, 1 = P3 stride 8, ...) -- 256 x H/8 x W/8 for P3 -- is
    globally average-pooled to (N, 256), standardised per feature with running
    statistics of the training slices (``standardize_image_features``, see
    :class:`RunningStandardizer`: without it the image half of the FC input
    is ~50x smaller in spread than the z-scored clinical half), the encoded
    clinical vector of each slice's patient (N, C) is concatenated when
    ``clinical_vars`` is given, and one FC layer gives a logit; the MSOM
    probability is its sigmoid and the loss is binary cross-entropy
    (``BCEWithLogitsLoss``, the numerically stable form of sigmoid + BCE).

    ``forward(inputs, data_samples, mode)`` dispatches like mmpretrain's
    ``ImageClassifier``: ``'loss'`` -> ``{'loss_bce': ...}``, ``'predict'`` ->
    the data samples with ``pred_score`` (float tensor (1,)) added,
    ``'tensor'`` -> logits (N, 1).

    Args:
        backbone: backbone config (mmdet ``ResNet``).
        neck: neck config (mmdet ``FPN``).
        feature_level: index of the FPN output that is pooled.
        clinical_vars: the config's clinical variable list; its encoded length
            (:class:`~mmnpc.datasets.ClinicalEncoder`) sizes the FC input.
            Empty = image only.
        standardize_image_features: z-score the pooled features with the
            running mean / variance of the training slices (buffers saved in
            the checkpoint) before the FC; False = raw pooled features.
        loss_level: ``'instance'`` (default, the paper): every slice or region is
            compared with its patient's label; ``'patient'``: multiple-instance
            learning, the logits of each patient's samples in the batch are
            averaged (mean pooling) and one BCE term per patient compares the
            pooled logit with the label (use ``PatientBatchSampler`` so that
            a batch holds whole bags). Prediction is the same in both.
        bag_pooling: how ``loss_level='patient'`` pools a patient's logits:
            ``'mean'`` (default) or ``'attention'`` (attention-based MIL, Ilse
            et al. 2018: a small network scores each sample's standardised
            image feature, ``a = w^T tanh(V h)``, and the patient logit is the
            softmax(a)-weighted sum of its samples' logits). With attention,
            every predicted sample also carries ``pred_logit`` and
            ``pred_attention``, and evaluation and prediction pool the same way
            (:mod:`mmnpc.models.bag_pooling`).
        attention_hidden: width of the attention network's hidden layer.
        det_checkpoint: stage-1 checkpoint whose ``backbone.`` / ``neck.``
            weights :meth:`init_weights` loads (``tools/train.py
            --det-checkpoint``); None = random initialisation.
        data_preprocessor: normalisation config (the detector's mean / std).
        init_cfg: MMEngine init config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 feature_level: int = 1,
                 clinical_vars: Sequence[Mapping] = (),
                 standardize_image_features: bool = True,
                 loss_level: str = 'instance',
                 bag_pooling: str = 'mean',
                 attention_hidden: int = 128,
                 det_checkpoint: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        num_levels = self.neck.num_outs
        if not 0 <= feature_level < num_levels:
            raise ValueError(f'feature_level {feature_level} not in [0, {num_levels}) '
                             '(the FPN outputs)')
        self.feature_level = feature_level
        self.clinical_feature_names = ClinicalEncoder(clinical_vars).feature_names
        self.num_clinical = len(self.clinical_feature_names)
        self.image_norm = (RunningStandardizer(self.neck.out_channels)
                           if standardize_image_features else nn.Identity())
        self.fc = nn.Linear(self.neck.out_channels + self.num_clinical, 1)
        self.loss_fn = nn.BCEWithLogitsLoss()
        if loss_level not in LOSS_LEVELS:
            raise ValueError(f'loss_level {loss_level!r} not in {LOSS_LEVELS}')
        self.loss_level = loss_level
        if bag_pooling not in BAG_POOLINGS:
            raise ValueError(f'bag_pooling {bag_pooling!r} not in {BAG_POOLINGS}')
        if bag_pooling == 'attention' and loss_level != 'patient':
            raise ValueError("bag_pooling='attention' pools a patient's samples: it needs "
                             "loss_level='patient' (and PatientBatchSampler)")
        self.bag_pooling = bag_pooling
        self.attention = (nn.Sequential(nn.Linear(self.neck.out_channels, attention_hidden),
                                        nn.Tanh(), nn.Linear(attention_hidden, 1))
                          if bag_pooling == 'attention' else None)
        self.det_checkpoint = det_checkpoint

    def init_weights(self) -> None:
        """Initialise, then copy the detector's backbone + FPN when ``det_checkpoint`` is set."""
        super().init_weights()
        if self.det_checkpoint:
            keys = load_detector_weights(self, self.det_checkpoint)
            MMLogger.get_current_instance().info(
                f'MsomClassifier: {len(keys)} backbone/neck tensors loaded from the detector '
                f'checkpoint {self.det_checkpoint}')

    # ----------------------------------------------------------------- forward
    def extract_feat(self, inputs: Tensor) -> Tensor:
        """(N, 3, H, W) normalised images -> (N, C_fpn) pooled FPN level ``feature_level``."""
        level = self.neck(self.backbone(inputs))[self.feature_level]
        return F.adaptive_avg_pool2d(level, 1).flatten(1)

    def _clinical_batch(self, data_samples: Optional[Sequence[BaseDataElement]],
                        batch_size: int, device: torch.device) -> Optional[Tensor]:
        if self.num_clinical == 0:
            return None
        if data_samples is None:
            raise ValueError(f'this model uses {self.num_clinical} clinical features: pass data '
                             'samples with a `clinical` field')
        clinical = torch.stack([sample.clinical for sample in data_samples]).to(device).float()
        if clinical.shape != (batch_size, self.num_clinical):
            raise ValueError(f'clinical batch of shape {tuple(clinical.shape)}, the model expects '
                             f'({batch_size}, {self.num_clinical}) = {self.clinical_feature_names}')
        return clinical

    def _outputs(self, inputs: Tensor, clinical: Optional[Tensor]
                 ) -> tuple[Tensor, Optional[Tensor]]:
        """(logits (N, 1), attention scores (N,) or None without attention pooling)."""
        image = self.image_norm(self.extract_feat(inputs))
        attention = None if self.attention is None else self.attention(image).view(-1)
        features = image if clinical is None else torch.cat(
            [image, clinical.to(image.dtype)], dim=1)
        return self.fc(features), attention

    def _logits(self, inputs: Tensor, clinical: Optional[Tensor]) -> Tensor:
        return self._outputs(inputs, clinical)[0]

    def forward(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        """Dispatch to :meth:`loss`, :meth:`predict` or the raw logits (N, 1)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            clinical = self._clinical_batch(data_samples, inputs.shape[0], inputs.device)
            return self._logits(inputs, clinical)
        raise RuntimeError(f'Invalid mode "{mode}"; expected one of {MODES}')

    def loss(self, inputs: Tensor, data_samples: List[BaseDataElement]) -> Dict[str, Tensor]:
        """Binary cross-entropy between logits and the patients' labels: per sample, or
        per patient on the mean logit of its samples (``loss_level``)."""
        clinical = self._clinical_batch(data_samples, inputs.shape[0], inputs.device)
        logits, attention = self._outputs(inputs, clinical)
        logits = logits.view(-1)
        labels = torch.stack([sample.gt_label for sample in data_samples]).to(logits).view(-1)
        if self.loss_level == 'patient':
            logits, labels = patient_mean_logits(
                logits, labels, [sample.metainfo['patient_id'] for sample in data_samples],
                attention)
        return {'loss_bce': self.loss_fn(logits, labels)}

    def predict(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None
                ) -> List[BaseDataElement]:
        """The data samples (new empty ones if None) with ``pred_score`` = sigmoid(logit), (1,);
        with attention pooling also ``pred_logit`` (1,) and ``pred_attention`` (1,)."""
        clinical = self._clinical_batch(data_samples, inputs.shape[0], inputs.device)
        logits, attention = self._outputs(inputs, clinical)
        scores = torch.sigmoid(logits)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(inputs.shape[0])]
        for k, (sample, score) in enumerate(zip(data_samples, scores)):
            sample.pred_score = score.detach()
            if attention is not None:
                sample.pred_logit = logits[k].detach()
                sample.pred_attention = attention[k:k + 1].detach()
        return data_samples

    # ------------------------------------------------------------- python API
    @torch.no_grad()
    def score_slices(self, images: Tensor, clinical: Optional[Tensor] = None,
                     details: bool = False):
        """MSOM probability of each slice of one patient, for prediction code.

        Args:
            images: (N, 3, H, W) or (N, 1, H, W) pixel values 0..255 (uint8 or
                float), prepared like the config's test pipeline (same size).
                The model's data preprocessor normalises them.
            clinical: the patient's encoded vector (C,) or per-slice (N, C)
                (:meth:`ClinicalEncoder.encode`); None for an image-only model.

            details: also return the logits and attention scores.

        Returns:
            float tensor (N,) of sigmoid probabilities; with ``details`` the
            tuple (probabilities, logits (N,), attention (N,) or None). Runs in
            eval mode (BatchNorm running statistics) and restores the previous mode.
        """
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError('images must be (N, 3, H, W) or (N, 1, H, W), got '
                             f'{tuple(images.shape)}')
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        batch = self.data_preprocessor({'inputs': images.float(), 'data_samples': None}, False)
        inputs = batch['inputs']
        if self.num_clinical == 0:
            if clinical is not None and clinical.numel() > 0:
                raise ValueError('this model is image-only; got a clinical vector')
            vector = None
        else:
            if clinical is None:
                raise ValueError(f'this model needs the clinical vector ({self.num_clinical})')
            vector = torch.as_tensor(clinical, dtype=torch.float32, device=inputs.device)
            vector = vector.expand(inputs.shape[0], -1) if vector.dim() == 1 else vector
            if vector.shape != (inputs.shape[0], self.num_clinical):
                raise ValueError(f'clinical of shape {tuple(clinical.shape)}, expected '
                                 f'({self.num_clinical},) or '
                                 f'({inputs.shape[0]}, {self.num_clinical})')
        was_training = self.training
        self.eval()
        try:
            logits, attention = self._outputs(inputs, vector)
        finally:
            self.train(was_training)
        if details:
            return (torch.sigmoid(logits).view(-1), logits.view(-1),
                    None if attention is None else attention.view(-1))
        return torch.sigmoid(logits).view(-1)


def patient_mean_logits(logits: Tensor, labels: Tensor, patient_ids: Sequence[str],
                        attention: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """(pooled logit, label) per patient, in order of first appearance: the mean logit,
    or with ``attention`` (N,) the softmax(attention)-weighted sum of the patient's logits.

    Raises ValueError when one patient's samples carry different labels.
    """
    order: Dict[str, List[int]] = {}
    for k, patient_id in enumerate(patient_ids):
        order.setdefault(str(patient_id), []).append(k)
    pooled, bag_labels = [], []
    for patient_id, rows in order.items():
        index = torch.as_tensor(rows, device=logits.device)
        label = labels[index]
        if not torch.all(label == label[0]):
            raise ValueError(f'patient {patient_id}: samples with different labels in one batch')
        if attention is None:
            pooled.append(logits[index].mean())
        else:
            pooled.append((torch.softmax(attention[index], dim=0) * logits[index]).sum())
        bag_labels.append(label[0])
    return torch.stack(pooled), torch.stack(bag_labels)
