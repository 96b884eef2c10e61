# CPU-sized variant of npc_msom.py for the *_tiny classifier configs: 256 px
# input (the 512 px slices resized by 0.5), no worker processes, and evaluation
# on at most 8 tumour slices per patient (evenly spaced along z; a synthetic
# patient has ~50), so validating 24 patients takes seconds, not minutes.
_base_ = './npc_msom.py'

image_size = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMsomInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackMsomInputs'),
]
train_dataloader = dict(
    num_workers=0, persistent_workers=False, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=test_pipeline, max_slices_per_patient=8))
test_dataloader = val_dataloader
