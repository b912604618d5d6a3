# RegNetY-8.0GF with torchvision widths (= timm's regnety_080_tv): regnety-3.2gf_8xb64_in1k.py at these widths.
_base_ = './regnety-3.2gf_8xb64_in1k.py'
model = dict(backbone=dict(arch='regnety_8.0gf_tv'), head=dict(in_channels=2016))
