# Stage 1 on CE-T1WI (configs/det_cet1.py), fine-tuned from MMDetection's COCO
# Mask R-CNN R50-FPN 1x (box AP 38.2, mask AP 34.7 on COCO val2017; the checkpoint
# of mmdet's configs/mask_rcnn/metafile.yml). MMEngine downloads it once into
# torch.hub's cache (~/.cache/torch/hub/checkpoints/) and loads it with
# strict=False: the 80-class box / mask predictors (fc_cls, fc_reg, conv_logits)
# do not fit the 2 classes, are logged as size mismatches and stay randomly
# initialised; everything else (backbone, FPN, RPN, RoI heads) is loaded.
# The backbone is then handled as in MMDetection's Mask R-CNN: stem + stage 1
# frozen, BatchNorm statistics frozen (norm_eval) and their scale / shift learnt.
#   python tools/train.py configs/pretrained/det_cet1_coco.py --data-root DATA
# Offline, with the file downloaded elsewhere (or copy it into the cache above):
#   python tools/train.py configs/pretrained/det_cet1_coco.py --data-root DATA \
#       --cfg-options load_from=/path/to/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth
_base_ = '../det_cet1.py'

# mmnpc.utils.pretrained: a failed download names the URL, the cache file and the option above
custom_imports = dict(imports=['mmnpc', 'mmnpc.utils.pretrained'], allow_failed_imports=False)
load_from = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth'  # noqa: E501
model = dict(backbone=dict(frozen_stages=1, norm_eval=True))
