# RegNetY-64GF (= timm's regnety_640): regnety-3.2gf_8xb64_in1k.py at these widths.
_base_ = './regnety-3.2gf_8xb64_in1k.py'
model = dict(backbone=dict(arch='regnety_64gf'), head=dict(in_channels=4920))
