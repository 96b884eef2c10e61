"""MMEngine's checkpoints (with non-tensor objects) load through mmnpc's trusted local loader."""
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import mmnpc  # noqa: F401  installs the loader, as custom_imports does
from mmnpc.utils import load_from_local_trusted


@pytest.fixture
def runner_like_checkpoint(tmp_path):
    """A checkpoint holding what Runner.save_checkpoint stores besides tensors."""
    path = tmp_path / 'iter_2.pth'
    torch.save({'meta': {'iter': 2, 'seed': 0},
                'state_dict': {'w': torch.ones(2)},
                'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([1.0, 0.5], [1, 1])}}},
               path)
    return path


def test_torch_default_refuses_it(runner_like_checkpoint):
    """Why the loader exists: torch>=2.6 loads weights only by default."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(runner_like_checkpoint)


def test_mmengine_loads_local_checkpoints_through_the_trusted_loader(runner_like_checkpoint):
    assert CheckpointLoader._get_checkpoint_loader(str(runner_like_checkpoint)) \
        is load_from_local_trusted
    checkpoint = CheckpointLoader.load_checkpoint(str(runner_like_checkpoint), map_location='cpu')
    assert checkpoint['meta']['iter'] == 2
    assert isinstance(checkpoint['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert torch.equal(checkpoint['state_dict']['w'], torch.ones(2))


def test_remote_schemes_keep_their_own_loaders():
    loader = CheckpointLoader._get_checkpoint_loader('https://example.org/model.pth')
    assert loader is not load_from_local_trusted


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_from_local_trusted(str(tmp_path / 'absent.pth'))
