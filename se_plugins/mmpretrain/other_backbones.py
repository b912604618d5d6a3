"""``se_cfg`` on MMPretrain's InceptionV3 and MobileNetV2 (SE-Inception; SE in inverted residuals).

Importing this module wraps the two backbones' ``__init__`` to take ``se_cfg`` (default
``None``: the stock network). SE goes in with forward hooks, no block copied:

- ``InceptionV3``: SE after each Inception module (``Mixed_5b.se`` ... ``Mixed_7c.se``, the
  same keys as timm's ``se_inception_v3_plugin``); se_cfg stages are the three grid sizes
  (35x35, 17x17, 8x8).
- ``MobileNetV2``: SE after the depthwise conv (and its norm and activation) of each inverted
  residual, as MBConv and MMPretrain's MobileNetV3 place it (``layerX.Y.se``); its channels
  are the expanded width; se_cfg stages are ``layer1`` ... ``layer7``.

Examples:
    >>> from mmpretrain.registry import MODELS
    >>> model = MODELS.build(dict(type='MobileNetV2', se_cfg=dict(ratio=4)))
    >>> model.layer2[0].se.channels, model.layer2[0].se.squeeze_channels
    (96, 24)
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from mmpretrain.models.backbones.inception_v3 import (InceptionA, InceptionB, InceptionC, InceptionD, InceptionE,
                                                      InceptionV3)
from mmpretrain.models.backbones.mobilenet_v2 import MobileNetV2

from ..placement import add_se_after, output_channels
from .backbones import takes_se_cfg

INCEPTION_V3_STAGES = {InceptionA: 0, InceptionB: 0, InceptionC: 1, InceptionD: 1, InceptionE: 2}


def add_se_inception_v3(backbone: InceptionV3, se_cfg: Mapping[str, Any]) -> None:
    """SE after each Inception module of ``backbone``."""
    units = [m for m in backbone.modules() if type(m) in INCEPTION_V3_STAGES]
    channels = output_channels(backbone, units, torch.zeros(1, 3, 75, 75))
    add_se_after(type(backbone).__name__, units, [INCEPTION_V3_STAGES[type(m)] for m in units], channels, se_cfg)


def add_se_mobilenet_v2(backbone: MobileNetV2, se_cfg: Mapping[str, Any]) -> None:
    """SE after the depthwise conv of each inverted residual of ``backbone``."""
    layers = [name for name in backbone.layers if name.startswith('layer')]  # not the last conv, 'conv2'
    units, stages, targets = [], [], []
    for stage, name in enumerate(layers):
        for block in getattr(backbone, name):
            units.append(block)
            stages.append(stage)
            targets.append(next(m for m in block.conv if m.conv.groups > 1))  # the depthwise ConvModule
    add_se_after(type(backbone).__name__, units, stages, [m.conv.out_channels for m in targets], se_cfg,
                 num_stages=len(layers), targets=targets)
    backbone._freeze_stages()  # the new SE layers of frozen stages freeze too


InceptionV3.__init__ = takes_se_cfg(InceptionV3.__init__, add_se_inception_v3)
MobileNetV2.__init__ = takes_se_cfg(MobileNetV2.__init__, add_se_mobilenet_v2)
