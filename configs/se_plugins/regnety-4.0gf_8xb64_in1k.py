# RegNetY-4.0GF (= timm's regnety_040): regnety-3.2gf_8xb64_in1k.py at these widths.
_base_ = './regnety-3.2gf_8xb64_in1k.py'
model = dict(backbone=dict(arch='regnety_4.0gf'), head=dict(in_channels=1088))
