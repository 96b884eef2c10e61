# Stage 2, image only: MSOM classifier on T2-weighted (T2WI) tumour slices;
# everything else as msom_cet1.py.
#   python tools/train.py configs/msom_t2.py --data-root DATA --det-checkpoint DET_T2.pth
_base_ = './msom_cet1.py'

sequence = 't2'
data_root = f'data/npc/{sequence}/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
