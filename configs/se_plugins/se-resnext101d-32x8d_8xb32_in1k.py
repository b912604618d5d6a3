# SE-ResNeXt-101d 32x8d (deep stem, avg-pool shortcut): our SE-ResNeXt-101 32x8d (= timm's seresnext101d_32x8d).
_base_ = './se-resnext101-32x8d_8xb32_in1k.py'
model = dict(backbone=dict(deep_stem=True, avg_down=True))
