"""Command-line pieces shared by the mmnpc tools (train.py, test.py, ...).

Every tool takes a config, the MMDetection flags (``--work-dir``,
``--cfg-options``, ``--launcher``, ``--local_rank``) and ``--data-root DIR``,
the converter output folder holding ``t1/``, ``t2/`` and ``cet1/``.
:func:`load_config` applies them in MMDetection's order, so the tools stay
``parse_args()`` + ``main()``.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mmengine.config import Config, DictAction


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--work-dir``, ``--data-root``, ``--cfg-options``, ``--launcher``, ``--local_rank``."""
    parser.add_argument('--work-dir', help='the dir to save logs, models and metrics')
    parser.add_argument(
        '--data-root',
        help='converter output folder (holding t1/ t2/ cet1/); sets every dataset root '
        'and annotation file of the config to DATA_ROOT/<sequence>/, <sequence> being '
        'the config variable `sequence` (applied after --cfg-options)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch>=2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def export_local_rank(args: argparse.Namespace) -> None:
    """Set ``LOCAL_RANK`` from ``--local_rank`` unless the launcher already did."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def load_config(args: argparse.Namespace) -> Config:
    """Read ``args.config`` and apply launcher, --cfg-options, --data-root and --work-dir.

    work_dir priority as in MMDetection: CLI > config > ./work_dirs/<config name>.
    A distributed launch without a GPU switches the process group to gloo
    (the configs ask for nccl, which needs CUDA).
    """
    import torch

    import mmnpc  # noqa: F401  registers modules even if a config forgets custom_imports
    from mmnpc.utils import set_data_root

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root is not None:
        set_data_root(cfg, args.data_root)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.launcher != 'none' and not torch.cuda.is_available():
        cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    return cfg


def headless_matplotlib(show: bool = False) -> None:
    """Draw with matplotlib's Agg backend unless pictures are shown on screen."""
    if not show:
        os.environ.setdefault('MPLBACKEND', 'Agg')


@contextmanager
def work_dir_lock(work_dir) -> Iterator[None]:
    """Hold the work dir's lock (``mmnpc.runs.RunFolder.lock``: ``<work_dir>.lock`` beside
    it) while a tool writes there: a second command into the same folder exits at once,
    naming the first one's process; a lock left by a dead process is taken over."""
    from data_prep.folder_lock import FolderLockedError
    from mmnpc.runs import RunFolder
    try:
        with RunFolder(Path(work_dir)).lock():
            yield
    except FolderLockedError as error:
        raise SystemExit(f'refused: {error}')
