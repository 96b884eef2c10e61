# CPU-sized variant of det_t1.py for the demo and tests: the same Mask R-CNN
# R50-FPN on 256 px input with a short iteration schedule (_base_/det_tiny_cpu.py).
#   python tools/train.py configs/det_t1_tiny.py --data-root DATA
_base_ = './_base_/det_tiny_cpu.py'

sequence = 't1'
data_root = f'data/npc/{sequence}/'  # --data-root DIR sets DIR/<sequence>/
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
