# The CPU recipe on T2WI: Mask R-CNN R50-FPN from random initialisation,
# trained on whole slices at 256 px with anchors matched to the lesions and a
# 1300-iteration schedule (_base_/det_cpu.py); 37 min on 2 cores for CE-T1WI.
# docs/detection.md gives its AP@0.5 on held-out patients.
#   python tools/train.py configs/det_t2_cpu.py --data-root DATA
_base_ = './_base_/det_cpu.py'

sequence = 't2'
data_root = f'data/npc/{sequence}/'  # --data-root DIR sets DIR/<sequence>/
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
