# RegNetY-400MF (= timm's regnety_004): regnety-200mf_8xb128_in1k.py at these widths.
_base_ = './regnety-200mf_8xb128_in1k.py'
model = dict(backbone=dict(arch='regnety_400mf'), head=dict(in_channels=440))
