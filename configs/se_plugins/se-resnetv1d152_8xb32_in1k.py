# SE-ResNetV1d-152 (deep stem, avg-pool shortcut): MMPretrain's ResNetV1d-152 recipe + se_cfg (= timm seresnet152d).
_base_ = 'mmpretrain::resnet/resnetv1d152_8xb32_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(se_cfg=dict(ratio=16)))
