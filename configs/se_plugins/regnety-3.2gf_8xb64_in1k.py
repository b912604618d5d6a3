# RegNetY-3.2GF on ImageNet-1k (= timm's regnety_032): MMPretrain's RegNetX 8xb64 recipe, RegNetY widths + SE.
_base_ = 'mmpretrain::regnet/regnetx-3.2gf_8xb64_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
# As in ./regnety-200mf_8xb128_in1k.py: RegNetY's SE, and RGB in for timm's weights.
model = dict(backbone=dict(arch='regnety_3.2gf', se_cfg=dict(position='3x3_act', ratio_of='block_input', ratio=4,
                                                             divisor=1)),
             head=dict(in_channels=1512))
data_preprocessor = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
