# SE-ResNet-101 on ImageNet-1k: MMPretrain's ResNet-101 recipe + se_cfg (same network as timm's seresnet101).
_base_ = 'mmpretrain::resnet/resnet101_8xb32_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(se_cfg=dict(ratio=16)))
