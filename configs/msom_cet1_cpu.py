# Stage 2, image only, CPU recipe: the classifier reads the lesion regions stage 1
# finds instead of the whole slice (detection, then prediction).
#
# Samples: every contoured GTV / GTVln section of a training patient (at most
# the 8 largest of each structure per patient) is a window of 64 x 64 mm
# around its box, sampled at 0.5 mm (128 px) from the converter's full 512 px
# slice (mmnpc.datasets.regions: millimetres, so a lesion's size stays
# visible; 0 beyond the slice). At test time the same windows of the contours
# (tools/test.py) or of the detector's boxes (tools/predict.py,
# tools/test_end_to_end.py); a slice's score is the mean of its windows', the
# patient's the mean of its slices'.
# Training is patient-level (multiple-instance learning): each batch holds 8
# patients with 4 of their windows drawn at random, and the loss compares the
# mean logit of each patient's windows with the patient's label
# (loss_level='patient'). With 32 windows per batch BatchNorm learns its
# statistics (norm_eval=False; the slice recipes keep them fixed because a
# batch of 2 slices gives noise).
# Augmentation moves pixels only (flip, a box shift of up to 4 mm), never
# their values: texture is a variance, intensity ratios are kept.
# Random initialisation by default (no detector needed to train);
# --det-checkpoint DET.pth initialises backbone + FPN from stage 1.
#   python tools/train.py configs/msom_cet1_cpu.py --data-root DATA [--det-checkpoint DET.pth]
#   python tools/test.py configs/msom_cet1_cpu.py CKPT --data-root DATA
_base_ = './msom_cet1.py'

region = dict(size_mm=64.0, out_px=128, margin_mm=5.0, keep='window')
region_classes = ('GTV', 'GTVln')
regions_per_structure = 8
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CropRegion', jitter_mm=4.0, **region),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMsomInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CropRegion', **region),
    dict(type='PackMsomInputs'),
]
_region_dataset = dict(type='MsomRegionDataset', region_classes=region_classes,
                       regions_per_structure=regions_per_structure)
train_dataloader = dict(
    batch_size=64,  # not used: PatientBatchSampler counts patients
    num_workers=0, persistent_workers=False,
    batch_sampler=dict(type='PatientBatchSampler', patients_per_batch=8, max_per_patient=4),
    dataset=dict(pipeline=train_pipeline, **_region_dataset))
val_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=test_pipeline, **_region_dataset))
test_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=test_pipeline, **_region_dataset))

model = dict(loss_level='patient', backbone=dict(norm_eval=False))

# 300 iterations of 8 patients (2,400 bags: ~8 passes over 300 training patients);
# validation (checkpoint choice) once, at the end
max_iters = 300
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False, begin=0, end=max_iters),
]
optim_wrapper = dict(optimizer=dict(lr=0.01))
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=2))
log_processor = dict(window_size=20, by_epoch=False)
