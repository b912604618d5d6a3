# SE-ResNeXt-101 (32x4d) on ImageNet-1k: MMPretrain's ResNeXt-101 32x4d recipe + se_cfg (= timm's seresnext101_32x4d).
_base_ = 'mmpretrain::resnext/resnext101-32x4d_8xb32_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(se_cfg=dict(ratio=16)))
