# RegNetY-600MF (= timm's regnety_006): regnety-200mf_8xb128_in1k.py at these widths.
_base_ = './regnety-200mf_8xb128_in1k.py'
model = dict(backbone=dict(arch='regnety_600mf'), head=dict(in_channels=608))
