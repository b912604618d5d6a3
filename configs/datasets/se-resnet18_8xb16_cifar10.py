# SE-ResNet-18 (CIFAR stem) on CIFAR-10 with MMPretrain's stock CIFAR10 dataset and its
# resnet18_8xb16_cifar10 recipe (8 GPUs x 16 images, 200 epochs).
# Data: the official python batches in data/cifar10/cifar-10-batches-py. Nothing is downloaded:
# a missing folder is an error naming it.
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/datasets/cifar10_bs16.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)  # se_cfg

model = dict(backbone=dict(se_cfg=dict(ratio=16)))

train_dataloader = dict(dataset=dict(download=False))
val_dataloader = dict(dataset=dict(download=False))
test_dataloader = val_dataloader
