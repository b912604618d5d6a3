"""ByobNet twins in timm's model registry: ``seresnet33ts`` and ``seresnext26ts`` with our SE.

timm's ``ByobNet`` builds each stage's blocks from ``ByoBlockCfg.type``, which may be a
``partial`` of a block class: the twins give it :class:`SEByoBottleneck` (timm's
``BottleneckBlock`` with one more argument, ``se_plan``, and a forward that calls the SE
attributes) and no ``attn_layer``. By default SE sits where timm's models have it,
``stages.X.Y.attn`` after the 3x3 conv, its norm and activation (``position='3x3_act'``,
ratio 16 of those channels); other positions: ``'standard'`` (``attn_last``, timm's own
name for SE after the last norm), ``'pre'``, ``'post'``. Every pretrained tag of the timm
model is a tag of its twin (the filter renames ``attn.fc1`` -> ``attn.conv1.conv``).
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any, Optional

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs
from timm.models.byobnet import BottleneckBlock, ByobNet, model_cfgs

from ..config import SEConfig
from ..convert import timm_checkpoint_filter
from ..placement import BlockLayout, SEPlan
from .blocks import TakesSEPlan
from .twins import register_twins, se_cfg_over, timm_tags

__all__ = ['SEByoBottleneck']  # register_twins appends every entrypoint name

BYOBNET_SE = dict(position='3x3_act')
TIMM_SOURCES = {'se_resnet33ts_plugin': 'seresnet33ts', 'se_resnext26ts_plugin': 'seresnext26ts'}


class SEByoBottleneck(TakesSEPlan, BottleneckBlock):
    """timm's ByobNet ``BottleneckBlock`` with SE where ``se_plan`` puts it (no '3x3': its 3x3 conv's
    norm and activation are one ``BatchNormAct2d``; no 'identity': its shortcut is one module)."""

    layout = BlockLayout(standard='attn_last', first_conv='conv1_1x1.conv', spatial_conv='conv2_kxk.conv',
                         last_conv='conv3_1x1.conv', shortcut='shortcut', renamed={'3x3_act': 'attn'},
                         positions=('standard', 'pre', 'post', '3x3_act'))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.se_pre is not None:
            x = self.se_pre(x)
        x = self.conv1_1x1(x)
        x = self.conv2_kxk(x)
        x = self.conv2b_kxk(x)
        if self.attn is not None:
            x = self.attn(x)
        x = self.conv3_1x1(x)
        if self.attn_last is not None:
            x = self.attn_last(x)
        x = self.drop_path(x)
        if self.shortcut is not None:
            x = x + self.shortcut(shortcut)
        x = self.act(x)
        if self.se_post is not None:
            x = self.se_post(x)
        return x


def _create(variant: str, pretrained: bool, se_cfg: Optional[Any] = None, **kwargs: Any) -> ByobNet:
    """Build ``variant`` with timm's builder, its bottlenecks SE-capable, SE placed by ``se_cfg``."""
    cfg = model_cfgs[TIMM_SOURCES[variant]]
    config = SEConfig.build(se_cfg_over(BYOBNET_SE, se_cfg), owner=variant, num_stages=len(cfg.blocks))
    blocks = tuple(replace(stage, type=partial(SEByoBottleneck, se_plan=SEPlan(config, [stage.c], variant, index)))
                   for index, stage in enumerate(cfg.blocks))
    return build_model_with_cfg(ByobNet, variant, pretrained, model_cfg=replace(cfg, blocks=blocks, attn_layer=None),
                                feature_cfg=dict(flatten_sequential=True), pretrained_filter_fn=timm_checkpoint_filter,
                                **kwargs)


default_cfgs = generate_default_cfgs(
    {tag: cfg for twin, source in TIMM_SOURCES.items() for tag, cfg in timm_tags(twin, source).items()})

globals().update(register_twins(__name__, TIMM_SOURCES, _create,
                                "timm's ``{source}`` (ByobNet) with our SE (see the module docstring)."))
