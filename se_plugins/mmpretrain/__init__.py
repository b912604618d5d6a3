"""MMPretrain adapter: `se_cfg` on ResNet-family backbones, SE modules in MODELS."""
