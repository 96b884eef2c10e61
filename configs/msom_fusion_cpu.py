# Stage 2, fusion, CPU recipe: msom_cet1_cpu.py (lesion windows, patient-level
# training) plus the clinical vector before the FC layer (early fusion; the
# list is `fusion_clinical_vars_ebv` in _base_/datasets/npc_msom.py: the slice
# configs' variables and plasma EBV DNA, so clinical.csv needs ebv_dna_copies_ml).
#   python tools/train.py configs/msom_fusion_cpu.py --data-root DATA [--det-checkpoint DET.pth]
_base_ = './msom_cet1_cpu.py'

clinical_vars = {{_base_.fusion_clinical_vars_ebv}}
model = dict(clinical_vars=clinical_vars)
train_dataloader = dict(dataset=dict(clinical_vars=clinical_vars))
val_dataloader = dict(dataset=dict(clinical_vars=clinical_vars))
test_dataloader = dict(dataset=dict(clinical_vars=clinical_vars))
