"""RunningStandardizer: z-scores with training statistics, never the batch's own."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmnpc.models.feature_standardizer import RunningStandardizer


def _batches(seed: int = 0, n_batches: int = 50, size: int = 2, features: int = 4):
    rng = np.random.default_rng(seed)
    offset, spread = np.array([0.17, -2.0, 5.0, 0.0]), np.array([0.003, 1.0, 10.0, 0.2])
    return [torch.tensor(offset + spread * rng.standard_normal((size, features)),
                         dtype=torch.float64) for _ in range(n_batches)]


def test_first_batches_give_the_cumulative_mean_and_variance():
    batches = _batches()
    norm = RunningStandardizer(4, momentum=0.01).double().train()  # 1/momentum > 50 batches
    for batch in batches:
        norm(batch)
    seen = torch.cat(batches).numpy()
    np.testing.assert_allclose(norm.running_mean.numpy(), seen.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm.variance().numpy(), seen.var(0), rtol=1e-8)


def test_output_is_standardised_with_running_statistics_not_the_batch():
    norm = RunningStandardizer(4).double().train()
    for batch in _batches():
        norm(batch)
    probe = _batches(seed=1, n_batches=1, size=2)[0]
    norm.eval()
    expected = (probe - norm.running_mean) / torch.sqrt(norm.variance() + norm.eps)
    torch.testing.assert_close(norm(probe), expected)
    # a BatchNorm would map any batch of two to +-1; here each slice keeps its own value
    torch.testing.assert_close(norm(probe[:1]), expected[:1])
    # tiny-spread features come out with unit spread, like the z-scored clinical vector
    many = torch.cat(_batches(seed=2, n_batches=200))
    assert norm(many).std(0).numpy() == pytest.approx(np.ones(4), rel=0.15)


def test_eval_mode_leaves_the_statistics_alone_and_they_are_saved():
    norm = RunningStandardizer(4).double().train()
    norm(_batches()[0])
    state = {k: v.clone() for k, v in norm.state_dict().items()}
    assert set(state) == {'running_mean', 'running_sq_mean', 'num_batches_tracked'}
    norm.eval()
    norm(_batches(seed=3)[0])
    for key, value in norm.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_exponential_average_after_the_cumulative_phase():
    norm = RunningStandardizer(1, momentum=0.5).double().train()
    for value in (1.0, 3.0, 5.0):  # weights 1, 1/2, then max(0.5, 1/3) = 0.5
        norm(torch.full((2, 1), value, dtype=torch.float64))
    assert norm.running_mean.item() == pytest.approx(((1 + 3) / 2 + 5) / 2)
    with pytest.raises(ValueError, match='momentum'):
        RunningStandardizer(1, momentum=0.0)
