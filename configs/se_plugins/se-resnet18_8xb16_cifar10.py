# SE-ResNet-18 on CIFAR-10: MMPretrain's ResNet-18 CIFAR recipe (ResNet_CIFAR backbone) + se_cfg.
_base_ = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
model = dict(backbone=dict(se_cfg=dict(ratio=16)))
