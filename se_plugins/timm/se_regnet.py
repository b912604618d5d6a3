"""RegNetY twins in timm's model registry: timm's RegNet with our SE where RegNetY has it.

``se_regnety_040_plugin`` ... are timm's ``regnety_*`` (every RegNetY timm has weights for)
built by timm's own ``RegNet`` without its SE (``se_ratio=0``); each block then becomes an
:class:`SERegBottleneck` (timm's ``Bottleneck``, same state, a forward that calls the SE
attributes; see :func:`se_plugins.placement.become_se_capable`), since ``RegNet`` names its
block class directly. By default SE sits where RegNetY puts it, ``sX.bY.se`` after the
grouped 3x3 conv, its norm and activation, squeezing to ``round(block_input / 4)`` channels:
``se_cfg=dict(position='3x3_act', ratio_of='block_input', ratio=4, divisor=1)``. A twin's
``se_cfg`` keys override these; other positions: ``'standard'`` (``se_last``, after conv3's
norm, before the addition), ``'pre'``, ``'post'``. Every pretrained tag of the timm model is a
tag of its twin; the checkpoint filter renames timm's SE keys (``se.fc1`` -> ``se.conv1.conv``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Optional

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs
from timm.models._manipulate import named_apply
from timm.models.regnet import Bottleneck, RegNet, RegNetCfg, model_cfgs
from timm.models.regnet import _filter_fn as timm_regnet_filter
from timm.models.regnet import _init_weights as timm_regnet_init

from ..config import SEConfig
from ..convert import timm_checkpoint_filter
from ..layers.se_layer import SELayer
from ..placement import BlockLayout, SEPlan, become_se_capable
from .twins import register_twins, se_cfg_over, timm_tags

__all__ = ['SERegBottleneck', 'SERegNet']  # register_twins appends every entrypoint name

REGNETY_SE = dict(position='3x3_act', ratio_of='block_input', ratio=4, divisor=1)
TIMM_SOURCES = {f'se_{name}_plugin': name for name in (
    'regnety_002', 'regnety_004', 'regnety_006', 'regnety_008', 'regnety_008_tv', 'regnety_016', 'regnety_032',
    'regnety_040', 'regnety_064', 'regnety_080', 'regnety_080_tv', 'regnety_120', 'regnety_160', 'regnety_320',
    'regnety_640', 'regnety_1280', 'regnety_2560')}


class SERegBottleneck(Bottleneck):
    """timm's RegNet ``Bottleneck`` with SE where ``se_cfg`` puts it (no '3x3': its 3x3 conv's norm and
    activation are one ``BatchNormAct2d``; no 'identity': its shortcut is one ``ConvNormAct``)."""

    layout = BlockLayout(standard='se_last', first_conv='conv1.conv', spatial_conv='conv2.conv',
                         last_conv='conv3.conv', renamed={'3x3_act': 'se'},
                         positions=('standard', 'pre', 'post', '3x3_act'))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.se_pre is not None:
            x = self.se_pre(x)
        x = self.conv1(x)
        x = self.conv2(x)
        if self.se is not None:
            x = self.se(x)
        x = self.conv3(x)
        if self.se_last is not None:
            x = self.se_last(x)
        if self.downsample is not None:
            x = self.drop_path(x) + self.downsample(shortcut)
        x = self.act3(x)
        if self.se_post is not None:
            x = self.se_post(x)
        return x


class SERegNet(RegNet):
    """timm's ``RegNet`` whose blocks are :class:`SERegBottleneck` with SE placed by ``se_cfg``.

    Args:
        cfg: timm's ``RegNetCfg``; its ``se_ratio`` is ignored (SE comes from ``se_cfg``).
        se_cfg: A validated ``se_cfg`` (see :class:`SEConfig`).
        owner: The model name, for error messages.
    """

    def __init__(self, cfg: RegNetCfg, *args: Any, se_cfg: SEConfig, owner: str = 'SERegNet',
                 **kwargs: Any) -> None:
        if cfg.preact:
            raise ValueError(f'{owner}: pre-activation RegNets (regnetv) are not supported')
        super().__init__(replace(cfg, se_ratio=0.), *args, **kwargs)
        for index in range(4):
            blocks = list(getattr(self, f's{index + 1}').children())
            plan = SEPlan(se_cfg, [blocks[0].conv3.conv.out_channels], owner, first_stage=index)
            for block in blocks:
                become_se_capable(block, SERegBottleneck, plan)
        for se in [m for m in self.modules() if isinstance(m, SELayer)]:
            named_apply(timm_regnet_init, se)  # the init timm gives its RegNets' convs, SE included


def _filter(state_dict: Mapping[str, Any], model: SERegNet) -> dict:
    """timm's RegNet filter (pycls, SEER and torchvision layouts), then timm's SE keys renamed to ours."""
    return timm_checkpoint_filter(timm_regnet_filter(state_dict), model)


def _create(variant: str, pretrained: bool, se_cfg: Optional[Any] = None, **kwargs: Any) -> SERegNet:
    """Build ``variant`` with timm's builder, SE placed by ``se_cfg`` over RegNetY's own."""
    if 'se_ratio' in kwargs:
        raise ValueError(f'{variant}: se_ratio={kwargs["se_ratio"]!r} is set from se_cfg; give '
                         "se_cfg=dict(ratio=...) instead (of the block input: RegNetY's se_ratio=0.25 is ratio=4)")
    config = SEConfig.build(se_cfg_over(REGNETY_SE, se_cfg), owner=variant, num_stages=4)
    return build_model_with_cfg(SERegNet, variant, pretrained, model_cfg=model_cfgs[TIMM_SOURCES[variant]],
                                se_cfg=config, owner=variant, pretrained_filter_fn=_filter, **kwargs)


default_cfgs = generate_default_cfgs(
    {tag: cfg for twin, source in TIMM_SOURCES.items() for tag, cfg in timm_tags(twin, source).items()})

globals().update(register_twins(__name__, TIMM_SOURCES, _create,
                                "RegNetY: timm's ``{source}`` with our SE (see the module docstring)."))
