# The comparison model the paper beats: a single deep model on ONE slice per
# patient, the one with the largest total tumour (GTV + GTVln) area, for
# training and evaluation; otherwise as msom_cet1.py (CE-T1WI, image only).
#   python tools/train.py configs/msom_maxslice_cet1.py --data-root DATA --det-checkpoint DET.pth
_base_ = './msom_cet1.py'

train_dataloader = dict(dataset=dict(slice_selection='max_area'))
val_dataloader = dict(dataset=dict(slice_selection='max_area'))
test_dataloader = val_dataloader
