# Runtime shared by every mmnpc config (MMDetection's default_runtime plus the
# project's modules, a fixed seed and best-checkpoint selection on box AP@0.5).
default_scope = 'mmdet'
# Importing mmnpc registers its metric and lets MMEngine load its own
# checkpoints under torch>=2.6 (see mmnpc/utils/checkpoint.py).
custom_imports = dict(imports=['mmnpc'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=3,
        save_best='coco/bbox_mAP_50',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # draws ground truth | prediction side by side; tools/test.py --show-dir turns it on
    visualization=dict(type='DetVisualizationHook'))
# Every checkpoint records the patients it was trained on (meta['train_patient_ids']);
# stage 2 refuses a detector checkpoint trained on its validation or test patients.
# SplitGuardHook stops a run whose training loop holds a non-training patient or
# whose validation loop (checkpoint selection) holds a test patient.
custom_hooks = [dict(type='TrainPatientsHook'), dict(type='SplitGuardHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # the tools switch to gloo when a distributed launch finds no GPU
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'

# recorded in the log and in every checkpoint's meta
randomness = dict(seed=0, deterministic=False)

load_from = None
resume = False
