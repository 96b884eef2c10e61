# CPU-sized variant of msom_cet1.py for the demo and tests: the same classifier
# (ResNet-50 + FPN, P3, FC) on 256 px input, 40 iterations of batch 2.
#   python tools/train.py configs/msom_cet1_tiny.py --data-root DATA [--det-checkpoint DET.pth]
_base_ = [
    './_base_/models/msom_r50_fpn.py',
    './_base_/datasets/npc_msom_tiny.py',
    './_base_/schedules/schedule_msom_tiny.py',
    './_base_/default_runtime.py',
]

sequence = 'cet1'
data_root = f'data/npc/{sequence}/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval={{_base_.max_iters}}, save_best='msom/auc', rule='greater'))
custom_hooks = [
    dict(type='TrainPatientsHook'),
    dict(type='ClinicalEncoderHook'),
    dict(type='DetCheckpointGuardHook'),
    dict(type='SplitGuardHook'),
]
log_processor = dict(window_size=10, by_epoch=False)
