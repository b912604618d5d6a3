# SE-ResNet-50 on ImageNet-1k: MMPretrain's ResNet-50 recipe + se_cfg (same network as seresnet50_8xb32_in1k).
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(se_cfg=dict(ratio=16)))
