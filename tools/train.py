"""Train a detector (stage 1) or the MSOM classifier (stage 2): MMDetection's
tools/train.py plus ``--data-root`` and, for stage 2, ``--det-checkpoint``.

    python tools/train.py configs/det_cet1.py --data-root DATA [--work-dir DIR]
        [--resume [CKPT]] [--amp] [--auto-scale-lr] [--cfg-options k=v ...]
        [--launcher none|pytorch|slurm|mpi]
    python tools/train.py configs/msom_fusion.py --data-root DATA --det-checkpoint DET.pth

Every checkpoint records its training patients (meta['train_patient_ids']); a
classifier refuses a detector checkpoint trained on one of its validation or
test patients (exit status 1, message on stderr). Pretrained weights named by URL
(configs/pretrained/) that cannot be downloaded stop the run the same way, with a
message naming the URL, the cache file and the --cfg-options for a local copy.
"""
import argparse
import os.path as osp

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from _common import (add_common_arguments, export_local_rank, headless_matplotlib, load_config,
                     work_dir_lock)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--det-checkpoint',
        help='stage 2 only: stage-1 detector checkpoint whose backbone and neck weights '
        'initialise the classifier (sets model.det_checkpoint); refused if the detector '
        'was trained on a patient of the validation or test split')
    add_common_arguments(parser)
    args = parser.parse_args()
    export_local_rank(args)
    return args


def main() -> None:
    args = parse_args()
    headless_matplotlib()
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    # Reduce the number of repeated compilations and improve training speed.
    setup_cache_size_limit_of_dynamo()
    cfg = load_config(args)

    if args.det_checkpoint is not None:
        if cfg.get('task') != 'msom':
            raise SystemExit(f'--det-checkpoint is for the MSOM classifier configs '
                             f'(task = "msom"); {args.config} is not one')
        if not osp.isfile(args.det_checkpoint):
            raise SystemExit(f'--det-checkpoint {args.det_checkpoint}: no such file')
        cfg.model.det_checkpoint = args.det_checkpoint

    if args.amp is True:
        from mmengine.device import get_device
        if get_device() == 'cpu':
            raise SystemExit('--amp (mixed precision, MMEngine\'s AmpOptimWrapper) needs a '
                             'GPU (CUDA, NPU, MLU or MUSA); torch sees none')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and \
                'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or '
                               '"auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your'
                               ' configuration file.')

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    from mmnpc.models import PatientOverlapError
    # importing it also makes MMEngine's http(s) loader explain a failed download
    from mmnpc.utils.pretrained import PretrainedDownloadError

    with work_dir_lock(cfg.work_dir):  # one writer per work dir
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)
        try:
            runner.train()
        except PatientOverlapError as error:
            raise SystemExit(f'refused: {error}')
        except PretrainedDownloadError as error:
            raise SystemExit(str(error))


if __name__ == '__main__':
    main()
