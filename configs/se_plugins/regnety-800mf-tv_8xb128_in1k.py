# RegNetY-800MF with torchvision widths (= timm's regnety_008_tv): regnety-200mf_8xb128_in1k.py at these widths.
_base_ = './regnety-200mf_8xb128_in1k.py'
model = dict(backbone=dict(arch='regnety_800mf_tv'), head=dict(in_channels=784))
