"""SE-Inception-v3 and SE-Inception-ResNet-v2 in timm's model registry (Hu et al., Fig. 2 and 3).

timm's own networks (as subclasses that take ``se_cfg``) with ``SELayer`` on the output of
their units. Their blocks have no ``attn_layer`` argument and their constructors name the
block classes directly, so after the build each unit becomes an instance of its SE subclass below (same state, one more
submodule ``se``, a forward that applies it; see :func:`se_plugins.placement.rescale_output`).

- ``se_inception_v3_plugin``: SE after each Inception module (``Mixed_5b.se`` ...
  ``Mixed_7c.se``), on the module's concatenated output.
- ``se_inception_resnet_v2_plugin``: SE on the residual branch of each residual block,
  after its 1x1 up-projection and before the scaled addition (``repeat.0.conv2d.se``,
  ``repeat_1.0.conv2d.se``, ``repeat_2.0.conv2d.se``, ``block8.conv2d.se``); the reduction
  modules get none.

``se_cfg`` stages are the three grid sizes (35x35, 17x17, 8x8); the only position is
``'standard'`` (the one the paper defines for these networks).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

import torch
from timm.data import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.inception_resnet_v2 import Block8, Block17, Block35, InceptionResnetV2
from timm.models.inception_v3 import InceptionA, InceptionB, InceptionC, InceptionD, InceptionE, InceptionV3
from torch import nn

from ..config import SEConfig
from ..placement import INCEPTION_V3_UNITS, add_se_after

__all__: list = []  # @register_model appends every entrypoint name

SECfg = Union[SEConfig, Mapping[str, Any]]
INCEPTION_RESNET_V2_STAGES = {Block35: 0, Block17: 1, Block8: 2}


class _ConcatThenSE:
    """Mixin of the SE Inception modules: the module's concatenated branches, then ``self.se``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(torch.cat(self._forward(x), 1))


class SEInceptionA(_ConcatThenSE, InceptionA):
    """timm's ``InceptionA`` followed by ``self.se``."""


class SEInceptionB(_ConcatThenSE, InceptionB):
    """timm's ``InceptionB`` followed by ``self.se``."""


class SEInceptionC(_ConcatThenSE, InceptionC):
    """timm's ``InceptionC`` followed by ``self.se``."""


class SEInceptionD(_ConcatThenSE, InceptionD):
    """timm's ``InceptionD`` followed by ``self.se``."""


class SEInceptionE(_ConcatThenSE, InceptionE):
    """timm's ``InceptionE`` followed by ``self.se``."""


class SEConv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by ``self.se`` (the up-projection of an Inception-ResNet block)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self._conv_forward(x, self.weight, self.bias))


SE_TYPES = {InceptionA: SEInceptionA, InceptionB: SEInceptionB, InceptionC: SEInceptionC,
            InceptionD: SEInceptionD, InceptionE: SEInceptionE, nn.Conv2d: SEConv2d}


class SEInceptionV3(InceptionV3):
    """timm's ``InceptionV3`` with SE after each Inception module; ``se_cfg`` as in :class:`SEConfig`."""

    def __init__(self, *args: Any, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = list(INCEPTION_V3_UNITS)
        add_se_after(type(self).__name__, [getattr(self, name) for name in names],
                     [INCEPTION_V3_UNITS[n][0] for n in names], [INCEPTION_V3_UNITS[n][1] for n in names],
                     se_cfg, SE_TYPES)


class SEInceptionResnetV2(InceptionResnetV2):
    """timm's ``InceptionResnetV2`` with SE on each residual branch; ``se_cfg`` as in :class:`SEConfig`."""

    def __init__(self, *args: Any, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        blocks = [m for m in self.modules() if type(m) in INCEPTION_RESNET_V2_STAGES]
        add_se_after(type(self).__name__, [m.conv2d for m in blocks],
                     [INCEPTION_RESNET_V2_STAGES[type(m)] for m in blocks], [m.conv2d.out_channels for m in blocks],
                     se_cfg, SE_TYPES)


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    """The pretrained_cfg of an untrained Inception network, as timm's ``inception_v3`` has it."""
    return {
        'url': '', 'num_classes': 1000, 'input_size': (3, 299, 299), 'pool_size': (8, 8),
        'crop_pct': 0.875, 'interpolation': 'bicubic', 'mean': IMAGENET_INCEPTION_MEAN,
        'std': IMAGENET_INCEPTION_STD, 'license': 'apache-2.0', **kwargs,
    }


default_cfgs = generate_default_cfgs({
    'se_inception_v3_plugin.untrained': _cfg(first_conv='Conv2d_1a_3x3.conv', classifier='fc'),
    'se_inception_resnet_v2_plugin.untrained': _cfg(first_conv='conv2d_1a.conv', classifier='classif'),
})


@register_model
def se_inception_v3_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None,
                           **kwargs: Any) -> InceptionV3:
    """SE-Inception-v3: timm's ``inception_v3`` with SE after each Inception module."""
    return build_model_with_cfg(SEInceptionV3, 'se_inception_v3_plugin', pretrained, se_cfg=se_cfg, **kwargs)


@register_model
def se_inception_resnet_v2_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None,
                                  **kwargs: Any) -> InceptionResnetV2:
    """SE-Inception-ResNet-v2: timm's ``inception_resnet_v2``, SE on each residual branch."""
    return build_model_with_cfg(SEInceptionResnetV2, 'se_inception_resnet_v2_plugin', pretrained, se_cfg=se_cfg,
                                **kwargs)
