"""Test (and evaluate) a detector: MMDetection's tools/test.py plus ``--data-root``
and ``WORK_DIR/metrics.json``.

    python tools/test.py configs/det_cet1.py CKPT --data-root DATA [--work-dir DIR]
        [--out preds.pkl] [--show] [--show-dir show] [--wait-time 2] [--tta]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

metrics.json holds AP@0.5 of GTV and GTVln and their mean, for boxes and masks
(see mmnpc.evaluation.summary); null marks a value that is undefined because
the split has no ground truth of that class. --show-dir draws ground truth |
prediction side by side for every test slice under WORK_DIR/<timestamp>/SHOW_DIR.
"""
import argparse
import os.path as osp
import warnings
from copy import deepcopy

from mmengine import ConfigDict
from mmengine.dist import is_main_process
from mmengine.runner import Runner

from _common import add_common_arguments, export_local_rank, headless_matplotlib, load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true')
    add_common_arguments(parser)
    args = parser.parse_args()
    export_local_rank(args)
    return args


def add_tta(cfg: ConfigDict) -> ConfigDict:
    """Wrap the model in test-time augmentation (flip), as MMDetection's test.py."""
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, '
                      'we will set it as default.')
        cfg.tta_model = dict(
            type='DetTTAModel',
            tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, '
                      'we will set it as default.')
        test_data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in test_data_cfg:
            test_data_cfg = test_data_cfg['dataset']
        cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
        flip_tta = dict(
            type='TestTimeAug',
            transforms=[
                [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                [dict(type='PackDetInputs',
                      meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                 'scale_factor', 'flip', 'flip_direction'))],
            ])
        cfg.tta_pipeline[-1] = flip_tta
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg


def write_summary(cfg: ConfigDict, metrics: dict) -> None:
    """Write WORK_DIR/metrics.json from the CocoAP50Metric results (main process only)."""
    from mmnpc.evaluation import detection_summary, write_metrics_json

    if not is_main_process():
        return
    classes = cfg.test_dataloader.dataset.metainfo['classes']
    try:
        summary = detection_summary(metrics, classes)
    except KeyError as error:
        print(f'metrics.json not written: {error}')
        return
    path = osp.join(cfg.work_dir, 'metrics.json')
    write_metrics_json(summary, path)
    print(f'metrics written to {path}')
    for note in summary['notes']:
        print(f'note: {note}')


def main() -> None:
    args = parse_args()
    headless_matplotlib(args.show)
    from mmdet.engine.hooks.utils import trigger_visualization_hook
    from mmdet.evaluation import DumpDetResults
    from mmdet.registry import RUNNERS
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    # Reduce the number of repeated compilations and improve testing speed.
    setup_cache_size_limit_of_dynamo()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        cfg = add_tta(cfg)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)

    # add `DumpResults` dummy metric
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), \
            'The dump file must be a pkl file.'
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))

    metrics = runner.test()
    write_summary(cfg, metrics)


if __name__ == '__main__':
    main()
