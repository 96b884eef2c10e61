# 20 epochs, batch size 2 (paper). Optimiser (the paper does not say): SGD with
# momentum 0.9, as stage 1, at lr 0.001 -- stage 1's 0.005 for 4 images is
# 0.0025 for 2; fine-tuning features the detector already learnt takes a
# smaller step, so they are adapted rather than overwritten. 100-iteration
# linear warm-up, then cosine decay to 0 over the 20 epochs. Gradients are
# clipped (L2 norm 35) as in stage 1.
max_epochs = 20
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0, end=max_epochs),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
# --auto-scale-lr rescales lr for another total batch size (GPUs x batch_size)
auto_scale_lr = dict(enable=False, base_batch_size=2)
