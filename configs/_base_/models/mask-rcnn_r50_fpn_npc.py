# Mask R-CNN ResNet-50-FPN for GTV / GTVln on grey MR slices.
#
# Everything not written here is MMDetection's own Mask R-CNN R50-FPN
# (mmdet::_base_/models/mask-rcnn_r50_fpn.py, resolved offline from the
# installed mmdet package's .mim configs). What differs and why:
#
# * 2 classes, GTV (label 0, COCO category 1) and GTVln (label 1, category 2).
# * Input normalisation. Slices are 8-bit grey JPEGs (0 = padding outside the
#   volume, 1..255 = windowed MR intensity) that LoadImageFromFile reads as
#   3 identical channels, so mean/std are the same for every channel and the
#   channel order is irrelevant (bgr_to_rgb=False). mean = 127.5 (centre of the
#   8-bit range) and std = 64 map [0, 255] to about [-2, 2], the range that
#   ImageNet-normalised inputs span, so a COCO/ImageNet-pretrained stem given
#   with load_from sees inputs of the scale it was trained on.
# * Random initialisation. Nothing can be downloaded, so the backbone has no
#   torchvision:// init_cfg. Because it starts from random weights, no stage is
#   frozen (frozen_stages=-1) and BatchNorm statistics are learnt
#   (norm_eval=False); MMDetection's defaults (frozen_stages=1,
#   norm_eval=True) only make sense for a pretrained backbone. When
#   fine-tuning a COCO checkpoint you may restore them:
#   --cfg-options load_from=CKPT model.backbone.frozen_stages=1
#   model.backbone.norm_eval=True
# * Paper settings: RPN anchors of 5 scales x 3 ratios -- one scale per FPN
#   level: anchor side = scales[0] * stride = 8 * (4, 8, 16, 32, 64) =
#   32, 64, 128, 256, 512 px, ratios 0.5, 1, 2; an anchor / proposal is
#   positive at IoU >= 0.5 (RPN and R-CNN); NMS IoU 0.7 for RPN proposals and
#   0.5 for the final R-CNN detections.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

num_classes = 2
model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5],
        std=[64.0, 64.0, 64.0],
        bgr_to_rgb=False),
    backbone=dict(
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    rpn_head=dict(
        anchor_generator=dict(
            scales=[8],
            ratios=[0.5, 1.0, 2.0],
            strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(assigner=dict(pos_iou_thr=0.5)),
        rpn_proposal=dict(nms=dict(type='nms', iou_threshold=0.7)),
        rcnn=dict(assigner=dict(pos_iou_thr=0.5))),
    test_cfg=dict(
        rpn=dict(nms=dict(type='nms', iou_threshold=0.7)),
        rcnn=dict(nms=dict(type='nms', iou_threshold=0.5))))
