# SE-ResNet-34 on ImageNet-1k: MMPretrain's ResNet-34 recipe + se_cfg (same network as timm's seresnet34).
_base_ = 'mmpretrain::resnet/resnet34_8xb32_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(se_cfg=dict(ratio=16)))
