# CPU-sized variant of msom_maxslice_cet1.py (the comparison model: one slice per
# patient, the largest tumour area) for the demo and tests; as msom_cet1_tiny.py.
#   python tools/train.py configs/msom_maxslice_cet1_tiny.py --data-root DATA [--det-checkpoint DET.pth]
_base_ = './msom_cet1_tiny.py'

train_dataloader = dict(dataset=dict(slice_selection='max_area'))
val_dataloader = dict(dataset=dict(slice_selection='max_area'))
test_dataloader = dict(dataset=dict(slice_selection='max_area'))
