# RegNetY-6.4GF (= timm's regnety_064): regnety-3.2gf_8xb64_in1k.py at these widths.
_base_ = './regnety-3.2gf_8xb64_in1k.py'
model = dict(backbone=dict(arch='regnety_6.4gf'), head=dict(in_channels=1296))
