# RegNetY-1.6GF (= timm's regnety_016): regnety-200mf_8xb128_in1k.py at these widths.
_base_ = './regnety-200mf_8xb128_in1k.py'
model = dict(backbone=dict(arch='regnety_1.6gf'), head=dict(in_channels=888))
