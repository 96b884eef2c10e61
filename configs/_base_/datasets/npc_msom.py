# Tumour slices of one MR sequence for the MSOM classifier (mmnpc.datasets.MsomSliceDataset),
# read from the converter's output (python -m data_prep convert):
#   <root>/<sequence>/images/*.jpg, <root>/<sequence>/annotations/{train,val,test}.json,
#   <root>/clinical.csv
# --data-root <root> sets every data_root to <root>/<sequence>/ and every
# clinical_file to <root>/clinical.csv (mmnpc.utils.set_data_root).
#
# Slices: every slice with at least one GTV or GTVln annotation
# (slice_selection='tumour'), labelled with its patient's `msom`; a patient
# whose msom is missing is refused with an error naming it. The comparison
# model uses slice_selection='max_area' (one slice per patient, the largest
# total tumour area). Evaluation scores the same slices of every patient of
# the training patients and of the evaluated split: the patient's risk is the
# mean of its slice scores, the cut-off is chosen on the training patients and
# applied to the validation (checkpoint selection) or test (reported) patients
# (PatientAUCMetric). Training sees the training patients only.
dataset_type = 'MsomSliceDataset'
sequence = 'cet1'
data_root = f'data/npc/{sequence}/'
clinical_file = 'data/npc/clinical.csv'
image_size = (512, 512)  # px (w, h); the converter writes 512 x 512
backend_args = None

# Clinical variables of the fusion configs (msom_fusion*.py), in vector order.
# Numeric ones are standardised with the training patients' mean / SD; the
# categorical ones are one-hot over the categories listed here (a value not
# listed is an error: add it); every variable gets a missing indicator (a
# missing numeric value becomes the training mean). 25 features in all.
fusion_clinical_vars = [
    dict(name='age', kind='numeric'),  # years
    dict(name='sex', kind='categorical', categories=['F', 'M']),
    dict(name='clinical_stage', kind='categorical',
         categories=['I', 'II', 'III', 'IVA', 'IVB']),  # AJCC/UICC 8th edition
    dict(name='pni', kind='numeric'),  # prognostic nutritional index
    dict(name='hgb', kind='numeric'),  # haemoglobin, g/L
    dict(name='treatment', kind='categorical',
         categories=['IMRT', 'IMRT+CCRT', 'IMRT+IC+CCRT']),  # as written in clinical.csv
    dict(name='gtv_dose_gy', kind='numeric'),  # Gy
    dict(name='cisplatin_dose_mg_m2', kind='numeric'),  # mg/m2
    dict(name='chemo_cycles', kind='numeric'),
]
# The list with pre-treatment plasma EBV DNA (copies/mL; 0 = undetectable), log10(1 + value)
# before standardising: the region recipe msom_fusion_cpu.py uses it, so its cohort's
# clinical.csv needs the column (the synthetic generator writes it from version 2 on).
fusion_clinical_vars_ebv = fusion_clinical_vars + [
    dict(name='ebv_dna_copies_ml', kind='numeric', transform='log10p'),
]
clinical_vars = []  # image only by default

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),  # left-right: tumours occur on both sides
    dict(type='PackMsomInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackMsomInputs'),
]
train_dataloader = dict(
    batch_size=2,  # paper
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        clinical_file=clinical_file,
        ann_files=dict(train='annotations/train.json'),
        data_prefix=dict(img='images/'),
        clinical_vars=clinical_vars,
        slice_selection='tumour',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        clinical_file=clinical_file,
        # both splits: train patients choose the cut-off, val patients are evaluated
        ann_files=dict(train='annotations/train.json', val='annotations/val.json'),
        data_prefix=dict(img='images/'),
        clinical_vars=clinical_vars,
        slice_selection='tumour',
        test_mode=True,
        pipeline=test_pipeline))
# Reported figures come from the held-out test patients (converter
# --test-fraction): nothing -- weights, checkpoint, cut-off -- is chosen on them.
# tools/test.py falls back to the val split, saying so, for two-way cohorts.
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'],
                 # train patients choose the cut-off, test patients are evaluated
                 ann_files=dict(train='annotations/train.json', test='annotations/test.json')))

# Patient-level AUC (mean slice score per patient), reported as msom/auc etc.;
# validation AUC selects the checkpoint, the test split is reported.
val_evaluator = dict(type='PatientAUCMetric', eval_split='val')
test_evaluator = dict(type='PatientAUCMetric', eval_split='test')
