# Stage 1 on CE-T1WI (configs/det_cet1.py) with an ImageNet-pretrained ResNet-50,
# MMDetection's default start (its Mask R-CNN configs name it torchvision://resnet50;
# that prefix imports torchvision, which is not installed here, so the config names
# the file it resolves to -- torchvision's IMAGENET1K_V1 weights, per mmengine's
# hub/torchvision_0.12.json -- by URL). FPN and heads start from random weights.
# MMEngine downloads it once into torch.hub's cache (~/.cache/torch/hub/checkpoints/)
# and loads it with strict=False (the classifier's fc.* is logged as unexpected).
# As in MMDetection: stem + stage 1 frozen, BatchNorm statistics frozen (norm_eval),
# their scale / shift learnt.
#   python tools/train.py configs/pretrained/det_cet1_imagenet.py --data-root DATA
# Offline, with the file downloaded elsewhere (or copy it into the cache above):
#   python tools/train.py configs/pretrained/det_cet1_imagenet.py --data-root DATA \
#       --cfg-options model.backbone.init_cfg.checkpoint=/path/to/resnet50-0676ba61.pth
_base_ = '../det_cet1.py'

# mmnpc.utils.pretrained: a failed download names the URL, the cache file and the option above
custom_imports = dict(imports=['mmnpc', 'mmnpc.utils.pretrained'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(
            _delete_=True,  # the base has init_cfg=None
            type='Pretrained',
            checkpoint='https://download.pytorch.org/models/resnet50-0676ba61.pth')))
