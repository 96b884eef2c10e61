# Stage 2, image only: MSOM classifier on contrast-enhanced T1-weighted (CE-T1WI)
# tumour slices. ResNet-50 + FPN as the detector, P3 pooled, FC, sigmoid, BCE;
# batch 2, 20 epochs (paper); see the _base_ files.
#   python tools/train.py configs/msom_cet1.py --data-root DATA --det-checkpoint DET.pth
#   python tools/test.py configs/msom_cet1.py CKPT --data-root DATA
_base_ = [
    './_base_/models/msom_r50_fpn.py',
    './_base_/datasets/npc_msom.py',
    './_base_/schedules/schedule_msom_20e.py',
    './_base_/default_runtime.py',
]

sequence = 'cet1'
data_root = f'data/npc/{sequence}/'  # --data-root DIR sets DIR/<sequence>/ and DIR/clinical.csv
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

# best checkpoint = highest validation-patient AUC
default_hooks = dict(
    checkpoint=dict(save_best='msom/auc', rule='greater'))
custom_hooks = [
    dict(type='TrainPatientsHook'),  # meta['train_patient_ids']
    dict(type='ClinicalEncoderHook'),  # meta['clinical_encoder'], restored on resume / test
    dict(type='DetCheckpointGuardHook'),
    dict(type='SplitGuardHook'),  # no test patient in training or checkpoint selection  # refuses a detector trained on validation patients
]
