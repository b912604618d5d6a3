# SE-ResNet-18 on CIFAR-10 (configs/se_plugins/se-resnet18_8xb16_cifar10.py) with MMPretrain's stock CIFAR10
# dataset reading local python batches only: data/cifar10/cifar-10-batches-py. Nothing is downloaded; a
# missing folder is an error naming it.
_base_ = '../se_plugins/se-resnet18_8xb16_cifar10.py'

train_dataloader = dict(dataset=dict(download=False))
val_dataloader = dict(dataset=dict(download=False))
test_dataloader = val_dataloader
