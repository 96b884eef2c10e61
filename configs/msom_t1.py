# Stage 2, image only: MSOM classifier on T1-weighted (T1WI) tumour slices;
# everything else as msom_cet1.py.
#   python tools/train.py configs/msom_t1.py --data-root DATA --det-checkpoint DET_T1.pth
_base_ = './msom_cet1.py'

sequence = 't1'
data_root = f'data/npc/{sequence}/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
