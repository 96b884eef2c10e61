# Stage 1 on T1WI (configs/det_t1.py) with an ImageNet-pretrained ResNet-50,
# exactly as configs/pretrained/det_cet1_imagenet.py (which explains it).
#   python tools/train.py configs/pretrained/det_t1_imagenet.py --data-root DATA
_base_ = '../det_t1.py'

custom_imports = dict(imports=['mmnpc', 'mmnpc.utils.pretrained'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(
            _delete_=True,  # the base has init_cfg=None
            type='Pretrained',
            checkpoint='https://download.pytorch.org/models/resnet50-0676ba61.pth')))
