# Stage 2, fusion: CE-T1WI tumour slices + clinical variables (the list is
# `fusion_clinical_vars` in _base_/datasets/npc_msom.py). The pooled P3
# features (256) and the encoded clinical vector (25) are concatenated before
# the FC layer; encoder statistics are fitted on the training patients and
# saved in the checkpoint. Otherwise as msom_cet1.py.
#   python tools/train.py configs/msom_fusion.py --data-root DATA --det-checkpoint DET.pth
_base_ = './msom_cet1.py'

clinical_vars = {{_base_.fusion_clinical_vars}}
model = dict(clinical_vars=clinical_vars)
train_dataloader = dict(dataset=dict(clinical_vars=clinical_vars))
val_dataloader = dict(dataset=dict(clinical_vars=clinical_vars))
test_dataloader = val_dataloader
