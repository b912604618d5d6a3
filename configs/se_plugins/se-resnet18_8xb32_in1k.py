# SE-ResNet-18 on ImageNet-1k: MMPretrain's ResNet-18 recipe + se_cfg (same network as timm's seresnet18).
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(se_cfg=dict(ratio=16)))
