# SE-ResNetV1d-200 (blocks 3, 24, 36, 3): our SE-ResNetV1d-152 config at depth 200 (= timm's seresnet200d).
_base_ = './se-resnetv1d152_8xb32_in1k.py'
model = dict(backbone=dict(depth=200))
