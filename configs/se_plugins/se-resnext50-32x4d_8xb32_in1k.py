# SE-ResNeXt-50 (32x4d) on ImageNet-1k: MMPretrain's ResNeXt-50 recipe + se_cfg.
_base_ = 'mmpretrain::resnext/resnext50-32x4d_8xb32_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(se_cfg=dict(ratio=16)))
