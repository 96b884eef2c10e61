# Stage 1: Mask R-CNN R50-FPN detecting GTV / GTVln on T1-weighted (T1WI) slices.
# Paper settings: 2 classes, batch 4, 24 epochs, 5 anchor scales x 3 ratios,
# positive IoU 0.5, NMS IoU 0.7 (RPN) / 0.5 (R-CNN); see the _base_ files.
#   python tools/train.py configs/det_t1.py --data-root DATA
#   python tools/test.py configs/det_t1.py CKPT --data-root DATA --show-dir show
_base_ = [
    './_base_/models/mask-rcnn_r50_fpn_npc.py',
    './_base_/datasets/npc_instance.py',
    './_base_/schedules/schedule_24e.py',
    './_base_/default_runtime.py',
]

sequence = 't1'
data_root = f'data/npc/{sequence}/'  # --data-root DIR sets DIR/<sequence>/
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
