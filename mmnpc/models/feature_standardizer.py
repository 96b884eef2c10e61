"""Put the pooled image features on the clinical vector's scale before the one FC layer."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class RunningStandardizer(nn.Module):
    """Per-feature z-score with a running mean and variance over the training slices.

    Why: after global average pooling, a ResNet-50 + FPN gives 256 features
    whose spread *between* slices is tiny next to their common offset (on the
    synthetic cohort about 0.003 against 0.17 at random init). One FC layer
    fed with those raw features next to a standardised clinical vector sees,
    in practice, only the clinical vector, and SGD needs weights of order
    1/0.003 before an image difference moves the logit. Dividing each
    feature by its spread over the training data -- what the clinical
    encoder does for age or haemoglobin -- makes both halves of the early
    fusion comparable, and is a fixed affine map, so the model stays "pooled
    features (+ clinical) -> one FC -> sigmoid".

    Unlike BatchNorm the statistics are *never* those of the current batch
    (batch size 2 would turn every feature into +-1): in training mode the
    running first and second moments are updated from the batch (no
    gradient; a cumulative average for the first ``1 / momentum`` batches,
    then an exponential one) and the input is standardised with them; in
    evaluation mode they are only used. They are buffers, so checkpoints
    carry them to ``tools/test.py`` and ``tools/predict.py``; they are
    fitted on training slices only.
    """

    def __init__(self, num_features: int, momentum: float = 0.01, eps: float = 1e-8) -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f'momentum must be in (0, 1], got {momentum}')
        self.momentum = momentum
        self.eps = eps
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_sq_mean', torch.ones(num_features))
        self.register_buffer('num_batches_tracked', torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def _update(self, x: Tensor) -> None:
        weight = max(self.momentum, 1.0 / float(self.num_batches_tracked + 1))
        self.running_mean.lerp_(x.mean(0).to(self.running_mean), weight)
        self.running_sq_mean.lerp_((x * x).mean(0).to(self.running_sq_mean), weight)
        self.num_batches_tracked += 1

    def variance(self) -> Tensor:
        """The running variance of each feature (>= 0)."""
        return (self.running_sq_mean - self.running_mean ** 2).clamp_min(0.0)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C) -> (N, C) standardised with the running statistics."""
        if self.training:
            self._update(x.detach())
        return (x - self.running_mean) / torch.sqrt(self.variance() + self.eps)

    def extra_repr(self) -> str:
        return f'{self.running_mean.numel()}, momentum={self.momentum}'
