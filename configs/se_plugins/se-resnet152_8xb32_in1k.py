# SE-ResNet-152 on ImageNet-1k: MMPretrain's ResNet-152 recipe + se_cfg (same network as timm's seresnet152).
_base_ = 'mmpretrain::resnet/resnet152_8xb32_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(se_cfg=dict(ratio=16)))
