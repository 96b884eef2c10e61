# CPU-sized Mask R-CNN R50-FPN shared by det_{t1,t2,cet1}_tiny.py (demo, tests):
# the same model as the full configs (ResNet-50 depth, FPN, heads, anchors,
# IoUs and NMS unchanged); only the input size (256 px), batch size, the number
# of RoIs sampled per image for the R-CNN heads and an iteration-based schedule
# differ, and fewer detections are kept per slice at test time. The tiny
# configs add their `sequence`.
_base_ = [
    './models/mask-rcnn_r50_fpn_npc.py',
    './datasets/npc_instance.py',
    './schedules/schedule_24e.py',
    './default_runtime.py',
]

image_size = (256, 256)  # px; 512 px slices are resized by 0.5
# Anchors keep their size in the patient: at half the input size, half the
# anchor scale -- 4 * strides = 16..256 px at 256 px input are the paper's
# 32..512 px at 512 px (lymph nodes here are 5-24 px, median 14, at 256 px: half
# of them lie below the smallest anchor; the CPU recipe det_cpu.py starts at 8 px).
# R-CNN heads train on 128 sampled RoIs per image instead of 512 (same 1:3
# positive:negative ratio). On CPU the mask head on up to 128 positive RoIs per
# image -- not the backbone -- dominates an iteration at 256 px; with a few
# lesions per slice 32 positives per image still cover every ground truth.
# At test time the R-CNN head looks at 300 RPN proposals instead of 1000 and
# keeps at most 20 detections per slice (COCO's numbers are meant for crowded
# photos; a slice holds a primary and a few nodes): the box head's FC layers
# run per proposal, the mask head and full-size mask pasting per detection,
# and together they dominate CPU inference.
model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[4])),
    train_cfg=dict(rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(max_per_img=300), rcnn=dict(max_per_img=20)))
max_iters = 200  # validation AP@0.5: see docs/detection.md (experiments/train_detector.py)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[int(max_iters * 0.8)],
        gamma=0.1),
]
auto_scale_lr = dict(base_batch_size=2)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(window_size=10, by_epoch=False)
