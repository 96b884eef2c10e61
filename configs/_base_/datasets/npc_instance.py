# One MR sequence of the converter's output (python -m data_prep convert):
#   <root>/<sequence>/images/*.jpg                  512 x 512 grey slices
#   <root>/<sequence>/annotations/{train,val,test}.json  COCO instances, GTV (id 1), GTVln (id 2)
# COCO `file_name`s are relative to <root>/<sequence>/images/.
# Tools accept --data-root <root>: it sets data_root = <root>/<sequence>/ in every
# dataloader and evaluator (mmnpc.utils.set_data_root), so `sequence` is the only
# thing a per-sequence config has to say.
#
# Tumour-free slices are KEPT for training (filter_empty_gt=False, unlike
# MMDetection's COCO default): most slices of a patient have no tumour and at
# prediction time the detector runs on every slice of a new patient, so it must
# learn from negatives that a normal slice has no GTV/GTVln. Mask R-CNN trains on
# images without boxes (all anchors / proposals become background, the mask loss
# of an image without positives is zero).
dataset_type = 'CocoDataset'
sequence = 'cet1'
data_root = f'data/npc/{sequence}/'
metainfo = dict(
    classes=('GTV', 'GTVln'),
    # RGB colours of boxes / masks in --show-dir pictures: GTV crimson, GTVln gold
    palette=[(220, 20, 60), (255, 200, 0)])
image_size = (512, 512)  # px (w, h); the converter writes 512 x 512, so Resize is a no-op here
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),  # left-right: GTV/GTVln occur on both sides
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    # ground truth is loaded so --show-dir can draw it next to the prediction
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
# The converter writes patient-level train / val (/ test with --test-fraction)
# splits. The val split chooses the checkpoint (save_best); tools/test.py reports
# the held-out test split, or falls back to val -- saying so -- when a cohort
# has no test split.
test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], ann_file='annotations/test.json'))

# AP@0.5 per class (GTV, GTVln) and overall, box and mask, via pycocotools.
val_evaluator = dict(
    type='CocoAP50Metric',
    ann_file=data_root + 'annotations/val.json',
    metric=['bbox', 'segm'],
    backend_args=backend_args)
test_evaluator = dict(val_evaluator, ann_file=data_root + 'annotations/test.json')
