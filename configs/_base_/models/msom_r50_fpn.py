# Stage 2: the MSOM classifier (mmnpc.models.MsomClassifier).
#
# Backbone, neck and input normalisation are written out to be exactly those of
# the stage-1 detector (_base_/models/mask-rcnn_r50_fpn_npc.py: MMDetection's
# ResNet-50 + FPN, random init, no frozen stage; mean 127.5 / std 64 on grey
# 8-bit slices), so that `tools/train.py CONFIG
# --det-checkpoint DET.pth` can copy the detector's `backbone.` and `neck.`
# weights (tests/test_mmnpc/test_models/test_msom_classifier.py checks both).
# The detector's DetDataPreprocessor becomes MMEngine's ImgDataPreprocessor
# with the same mean / std / channel order / padding: the classifier has no
# boxes or masks to pad.
#
# One difference, in how BatchNorm runs, not in the weights: norm_eval=True.
# The classifier fine-tunes at batch size 2, often two slices of one patient;
# BN statistics of such a batch are noise, and with norm_eval=False a model
# trained on them scores slices differently at test time (running statistics)
# than it saw in training (benchmark: training-patient AUC 0.49 in eval mode
# after 300 iterations). With norm_eval=True the BN layers use the statistics
# they were given (the detector's with --det-checkpoint; the identity at
# random init, where zero-initialised residual branches keep activations
# bounded) in training and test alike, as MMDetection does when it
# fine-tunes; their scale and shift (gamma, beta) are still learnt.
#
# Feature map: FPN output `feature_level` = 1 is P3 (stride 8): 256 x 64 x 64
# at the 512 px input of the full configs (256 x 32 x 32 at the 256 px of the
# *_tiny configs). The paper quotes 256 x 32 x 32 for its pooled map, which is
# P3 at 256 px or P4 (feature_level=2) at 512 px; we keep P3, the level the
# method describes, at full resolution. After global average pooling only the
# receptive field differs; pick P4 with --cfg-options model.feature_level=2.
#
# Head: global average pooling -> (256,) [+ the encoded clinical vector, see
# clinical_vars in _base_/datasets/npc_msom.py] -> one FC -> sigmoid; loss =
# binary cross-entropy.
task = 'msom'  # tools tell classifier configs from detector configs by this
model = dict(
    type='MsomClassifier',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[64.0, 64.0, 64.0],
        bgr_to_rgb=False,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,  # see above; the detector has False
        style='pytorch',
        init_cfg=None),
    neck=dict(
        type='FPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        num_outs=5),
    feature_level=1,  # P3, stride 8
    clinical_vars=[],  # image only; the fusion configs set it
    det_checkpoint=None)  # random init; tools/train.py --det-checkpoint sets it
