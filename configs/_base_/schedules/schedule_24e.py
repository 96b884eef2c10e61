# 24 epochs, batch size 4 (paper). SGD with MMDetection's learning rate
# 0.02 per 16 images scaled linearly to 4 images; x0.1 at epochs 16 and 22
# (MMDetection's 2x schedule). --auto-scale-lr rescales it for another total
# batch size (GPUs x batch_size) relative to base_batch_size.
max_epochs = 24
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[16, 22],
        gamma=0.1),
]
# Gradients are clipped (L2 norm 35, as in many MMDetection configs): from
# random initialisation the mask loss can spike and diverge to NaN within the
# warm-up (seen at lr 0.005 without clipping); clipping keeps the same run stable.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.005, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=4)
