# SE-ResNeXt-101 (64x4d) on ImageNet-1k: our SE-ResNeXt-101 32x4d recipe with 64 groups (= timm's seresnext101_64x4d).
_base_ = './se-resnext101-32x4d_8xb32_in1k.py'
model = dict(backbone=dict(groups=64))
