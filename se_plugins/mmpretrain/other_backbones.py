"""``se_cfg`` on MMPretrain's InceptionV3 and MobileNetV2 (SE-Inception; SE in inverted residuals).

Subclasses of the two stock backbones, registered under the stock names, take ``se_cfg``
(default ``None``: the stock network). Their builders name their unit classes directly, so
after the build each unit that gets SE becomes an instance of its SE subclass below (same
state, one more submodule ``se``, a forward that applies it; see
:func:`se_plugins.placement.rescale_output`):

- ``InceptionV3``: SE after each Inception module (``Mixed_5b.se`` ... ``Mixed_7c.se``, the
  same keys as timm's ``se_inception_v3_plugin``); se_cfg stages are the three grid sizes
  (35x35, 17x17, 8x8).
- ``MobileNetV2``: SE after the depthwise conv (and its norm and activation) of each inverted
  residual, as MBConv and MMPretrain's MobileNetV3 place it (``layerX.Y.conv.1.se``, or
  ``conv.0.se`` where there is no expansion); its channels are the expanded width; se_cfg
  stages are ``layer1`` ... ``layer7``.

Examples:
    >>> from mmpretrain.registry import MODELS
    >>> model = MODELS.build(dict(type='MobileNetV2', se_cfg=dict(ratio=4)))
    >>> model.layer2[0].conv[1].se.channels, model.layer2[0].conv[1].se.squeeze_channels
    (96, 24)
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from mmcv.cnn import ConvModule
from mmpretrain.models.backbones import inception_v3, mobilenet_v2

from ..placement import INCEPTION_V3_UNITS, add_se_after
from .backbones import register


class _OutputSE:
    """Mixin of a unit's SE subclass: ``forward`` is the unit's, then ``self.se``."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.se(super().forward(x, *args, **kwargs))


class SEInceptionA(_OutputSE, inception_v3.InceptionA):
    """``InceptionA`` followed by ``self.se``."""


class SEInceptionB(_OutputSE, inception_v3.InceptionB):
    """``InceptionB`` followed by ``self.se``."""


class SEInceptionC(_OutputSE, inception_v3.InceptionC):
    """``InceptionC`` followed by ``self.se``."""


class SEInceptionD(_OutputSE, inception_v3.InceptionD):
    """``InceptionD`` followed by ``self.se``."""


class SEInceptionE(_OutputSE, inception_v3.InceptionE):
    """``InceptionE`` followed by ``self.se``."""


class SEConvModule(_OutputSE, ConvModule):
    """mmcv's ``ConvModule`` (conv, norm, activation) followed by ``self.se``."""


SE_TYPES = {inception_v3.InceptionA: SEInceptionA, inception_v3.InceptionB: SEInceptionB,
            inception_v3.InceptionC: SEInceptionC, inception_v3.InceptionD: SEInceptionD,
            inception_v3.InceptionE: SEInceptionE, ConvModule: SEConvModule}


@register
class InceptionV3(inception_v3.InceptionV3):
    """MMPretrain's ``InceptionV3`` that takes ``se_cfg``: SE after each Inception module."""

    def __init__(self, *args: Any, se_cfg: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if se_cfg is not None:
            names = list(INCEPTION_V3_UNITS)
            add_se_after(type(self).__name__, [getattr(self, n) for n in names],
                         [INCEPTION_V3_UNITS[n][0] for n in names], [INCEPTION_V3_UNITS[n][1] for n in names],
                         se_cfg, SE_TYPES)


@register
class MobileNetV2(mobilenet_v2.MobileNetV2):
    """MMPretrain's ``MobileNetV2`` that takes ``se_cfg``: SE after each depthwise conv."""

    def __init__(self, *args: Any, se_cfg: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if se_cfg is None:
            return
        layers = [name for name in self.layers if name.startswith('layer')]  # not the last conv, 'conv2'
        units, stages = [], []
        for stage, name in enumerate(layers):
            for block in getattr(self, name):
                units.append(next(m for m in block.conv if m.conv.groups > 1))  # the depthwise ConvModule
                stages.append(stage)
        add_se_after(type(self).__name__, units, stages, [m.conv.out_channels for m in units], se_cfg, SE_TYPES,
                     num_stages=len(layers))
        self._freeze_stages()  # the new SE layers of frozen stages freeze too
