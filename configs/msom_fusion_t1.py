# Stage 2, fusion: T1WI tumour slices + clinical variables; as msom_fusion.py.
#   python tools/train.py configs/msom_fusion_t1.py --data-root DATA --det-checkpoint DET_T1.pth
_base_ = './msom_fusion.py'

sequence = 't1'
data_root = f'data/npc/{sequence}/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
