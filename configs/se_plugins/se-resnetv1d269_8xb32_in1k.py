# SE-ResNetV1d-269 (blocks 3, 30, 48, 8): our SE-ResNetV1d-152 config at depth 269 (= timm's seresnet269d).
_base_ = './se-resnetv1d152_8xb32_in1k.py'
model = dict(backbone=dict(depth=269))
