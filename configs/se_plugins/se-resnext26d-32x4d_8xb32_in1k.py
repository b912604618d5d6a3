# SE-ResNeXt-26d 32x4d (blocks 2, 2, 2, 2; deep stem, avg-pool shortcut): our SE-ResNeXt-50 (= timm seresnext26d_32x4d).
_base_ = './se-resnext50-32x4d_8xb32_in1k.py'
model = dict(backbone=dict(depth=26, deep_stem=True, avg_down=True))
