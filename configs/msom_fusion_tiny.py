# CPU-sized variant of msom_fusion.py (CE-T1WI + clinical variables) for the
# demo and tests; as msom_cet1_tiny.py plus the clinical vector.
#   python tools/train.py configs/msom_fusion_tiny.py --data-root DATA [--det-checkpoint DET.pth]
_base_ = './msom_cet1_tiny.py'

clinical_vars = {{_base_.fusion_clinical_vars}}
model = dict(clinical_vars=clinical_vars)
train_dataloader = dict(dataset=dict(clinical_vars=clinical_vars))
val_dataloader = dict(dataset=dict(clinical_vars=clinical_vars))
test_dataloader = val_dataloader
