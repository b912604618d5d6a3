# SE-ResNet-50 on any ImageNet-layout folder with MMPretrain's CustomDataset and its
# resnet50_8xb32_in1k recipe (8 GPUs x 32 images, 100 epochs).
# Data: data/imagenet/{train,val}/<class>/<image>; classes are the folder names, sorted.
# Set num_classes to the number of class folders, e.g. with
#   --cfg-options model.head.num_classes=N data_preprocessor.num_classes=N
# (tools/train.py stops before training if the head is smaller than the dataset).
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)  # se_cfg

num_classes = 1000
data_root = 'data/imagenet'

model = dict(backbone=dict(se_cfg=dict(ratio=16)), head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(dataset=dict(
    _delete_=True, type='CustomDataset', data_root=data_root, data_prefix='train',
    pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    _delete_=True, type='CustomDataset', data_root=data_root, data_prefix='val',
    pipeline=test_pipeline))
test_dataloader = val_dataloader
