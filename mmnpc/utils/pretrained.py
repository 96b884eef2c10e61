"""Pretrained weights named by URL: say what to do when they cannot be downloaded.

The ``configs/pretrained/`` configs name MMDetection's COCO Mask R-CNN checkpoint
(``load_from``) or torchvision's ImageNet ResNet-50 (``model.backbone.init_cfg``)
by https URL. MMEngine downloads such a file once into torch.hub's cache,
``<torch hub dir>/checkpoints/<file name>`` (by default
``~/.cache/torch/hub/checkpoints/``, moved by ``$TORCH_HOME``), and loads it from
there afterwards without any network access. Offline the first download fails
deep inside urllib with an error that does not say what to do.

Importing this module replaces MMEngine's ``http://`` / ``https://`` checkpoint
loader (the same registry entry, the same behaviour) by one that turns a failed
download into :class:`PretrainedDownloadError`, whose message names the URL, the
cache file that would satisfy it and the ``--cfg-options`` that point the config
at a local copy. The pretrained configs import it through ``custom_imports``;
``tools/train.py`` imports it too and prints the message.
"""
from __future__ import annotations

import http.client
import os.path as osp
from typing import Any, Optional
from urllib.parse import urlparse

import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_from_http


class PretrainedDownloadError(RuntimeError):
    """A checkpoint named by URL is neither in the download cache nor downloadable."""


def hub_cache_path(url: str, model_dir: Optional[str] = None) -> str:
    """Where MMEngine (through ``torch.hub.load_state_dict_from_url``) caches ``url``.

    Args:
        url: an ``http(s)://`` checkpoint URL.
        model_dir: the loader's ``model_dir``; ``None`` means torch.hub's
            ``<hub dir>/checkpoints``.
    """
    folder = model_dir if model_dir is not None else osp.join(torch.hub.get_dir(), 'checkpoints')
    return osp.join(folder, osp.basename(urlparse(url).path))


def download_failure_message(url: str, error: BaseException,
                             model_dir: Optional[str] = None) -> str:
    """What went wrong and the two ways to provide the file without a download."""
    cache = hub_cache_path(url, model_dir)
    name = osp.basename(cache)
    return (
        f'cannot download pretrained weights from\n  {url}\n'
        f'({type(error).__name__}: {error}); this machine is offline or cannot reach the server.\n'
        'Download the file on a machine with internet access, then either\n'
        f'  * copy it to {cache}\n'
        '    (MMEngine\'s download cache: a file there is used without downloading;\n'
        '    $TORCH_HOME moves it), or\n'
        '  * point the config at your copy:\n'
        f'    --cfg-options load_from=/path/to/{name}\n'
        '      (a whole-detector checkpoint: configs/pretrained/det_*_coco.py)\n'
        f'    --cfg-options model.backbone.init_cfg.checkpoint=/path/to/{name}\n'
        '      (a backbone checkpoint: configs/pretrained/det_*_imagenet.py)')


@CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), force=True)
def load_from_http_explained(filename: str, map_location: Any = None,
                             model_dir: Optional[str] = None, **kwargs: Any) -> Any:
    """MMEngine's ``load_from_http``, with a failed download raised as :class:`PretrainedDownloadError`.

    A cached file is loaded without network access, exactly as MMEngine does.

    Raises:
        PretrainedDownloadError: the download failed (no network, DNS, proxy,
            TLS, HTTP error status, connection dropped).
    """
    try:
        return load_from_http(filename, map_location=map_location, model_dir=model_dir, **kwargs)
    except (OSError, http.client.HTTPException) as error:  # URLError, HTTPError, timeouts, ...
        raise PretrainedDownloadError(
            download_failure_message(filename, error, model_dir)) from error
