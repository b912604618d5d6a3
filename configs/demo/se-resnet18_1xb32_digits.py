# SE-ResNet-18 (CIFAR stem) on scikit-learn's handwritten digits, for `make demo`.
# Data: `python tools/prepare_digits.py --out data/digits` (an ImageFolder of 32x32 PNGs).
# Three epochs on the 1,437 training images (AdamW, cosine) reach >90% top-1 on the 360
# held-out ones in a few minutes on 2 CPU cores.
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)  # se_cfg

model = dict(backbone=dict(se_cfg=dict(ratio=16)))

data_root = 'data/digits/imagefolder'
data_preprocessor = dict(
    num_classes=10,
    mean=[78.9, 78.9, 78.9],  # the digits' grey-level statistics
    std=[89.0, 89.0, 89.0],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=2),  # no flips: digits are not symmetric
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=120,
    num_workers=1,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# From scratch on 45 steps an epoch, AdamW learns far faster than the CIFAR recipe's SGD.
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
max_epochs = 3
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best='auto'),
)
randomness = dict(seed=0)
