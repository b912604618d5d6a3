"""SE-Inception-v3 and SE-Inception-ResNet-v2 in timm's model registry (Hu et al., Fig. 2 and 3).

timm's own networks, with ``SELayer`` added by forward hooks after the build (their
blocks have no ``attn_layer`` hook); no block is copied.

- ``se_inception_v3_plugin``: SE after each Inception module (``Mixed_5b.se`` ...
  ``Mixed_7c.se``), on the module's concatenated output.
- ``se_inception_resnet_v2_plugin``: SE on the residual branch of each residual block,
  after its 1x1 up-projection and before the scaled addition (``repeat.0.se``,
  ``repeat_1.0.se``, ``repeat_2.0.se``, ``block8.se``); the reduction modules get none.

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

from ..config import SEConfig
from ..placement import add_se_after, output_channels

__all__: list = []  # @register_model appends every entrypoint name

SECfg = Union[SEConfig, Mapping[str, Any]]
# Module type -> stage (grid size 35, 17, 8): which modules get SE, and the stage of its se_cfg values.
INCEPTION_V3_STAGES = {InceptionA: 0, InceptionB: 0, InceptionC: 1, InceptionD: 1, InceptionE: 2}
INCEPTION_RESNET_V2_STAGES = {Block35: 0, Block17: 1, Block8: 2}


def _create_se_inception_v3(variant: str, pretrained: bool, se_cfg: Optional[SECfg], **kwargs: Any) -> InceptionV3:
    model = build_model_with_cfg(InceptionV3, variant, pretrained, **kwargs)
    units = [m for m in model.modules() if type(m) in INCEPTION_V3_STAGES]
    channels = output_channels(model, units, torch.zeros(1, 3, 75, 75))
    add_se_after(variant, units, [INCEPTION_V3_STAGES[type(m)] for m in units], channels, se_cfg)
    return model


def _create_se_inception_resnet_v2(variant: str, pretrained: bool, se_cfg: Optional[SECfg],
                                   **kwargs: Any) -> InceptionResnetV2:
    model = build_model_with_cfg(InceptionResnetV2, variant, pretrained, **kwargs)
    units = [m for m in model.modules() if type(m) in INCEPTION_RESNET_V2_STAGES]
    add_se_after(variant, units, [INCEPTION_RESNET_V2_STAGES[type(m)] for m in units],
                 [m.conv2d.out_channels for m in units], se_cfg, targets=[m.conv2d for m in units])
    return model


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
    return _create_se_inception_v3('se_inception_v3_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_inception_resnet_v2_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None,
                                  **kwargs: Any) -> InceptionResnetV2:
    """SE-Inception-ResNet-v2: timm's ``inception_resnet_v2``, SE on each residual branch."""
    return _create_se_inception_resnet_v2('se_inception_resnet_v2_plugin', pretrained, se_cfg, **kwargs)
