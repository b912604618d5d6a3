# RegNetY-200MF on ImageNet-1k (= timm's regnety_002): MMPretrain's RegNetX recipe, RegNetY widths + SE.
_base_ = 'mmpretrain::regnet/regnetx-400mf_8xb128_in1k.py'
custom_imports = dict(imports=['se_plugins'], allow_failed_imports=False)
# RegNetY's SE: after the grouped 3x3 conv and its ReLU, squeeze width round(block input / 4).
model = dict(backbone=dict(arch='regnety_200mf', se_cfg=dict(position='3x3_act', ratio_of='block_input', ratio=4,
                                                             divisor=1)),
             head=dict(in_channels=368))
# RGB in, ImageNet mean/std: for timm's weights (tools/convert_checkpoint.py), not the recipe's BGR pycls ones.
# The train pipeline's Lighting keeps to_rgb=False: it jitters the BGR image as loaded, with BGR eigenvectors.
data_preprocessor = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
