# Stage 1 on T2WI (configs/det_t2.py) fine-tuned from MMDetection's COCO Mask R-CNN
# R50-FPN 1x, exactly as configs/pretrained/det_cet1_coco.py (which explains it).
#   python tools/train.py configs/pretrained/det_t2_coco.py --data-root DATA
_base_ = '../det_t2.py'

custom_imports = dict(imports=['mmnpc', 'mmnpc.utils.pretrained'], allow_failed_imports=False)
load_from = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth'  # noqa: E501
model = dict(backbone=dict(frozen_stages=1, norm_eval=True))
