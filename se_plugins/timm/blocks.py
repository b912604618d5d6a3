"""timm's ResNet blocks with SE at every place se_cfg can put it, called in their own forward.

``SEBasicBlock`` and ``SEBottleneck`` are timm's ``BasicBlock`` and ``Bottleneck`` (same
constructor, same parameters and keys) with one more argument, ``se_plan``
(:class:`se_plugins.placement.SEPlan`), and a forward that calls ``se_pre``, ``se_3x3``,
``se`` and ``se_post`` where they are not ``None``. timm's ``ResNet(block=...)`` builds
them; ``layerX.Y.se`` is where timm's ``seresnet*`` have their ``SEModule``.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from timm.models.resnet import BasicBlock, Bottleneck

from ..placement import BlockLayout, SEPlan

__all__ = ['SEBasicBlock', 'SEBottleneck']


class TakesSEPlan:
    """Mixin of the SE-capable blocks: ``se_plan`` installs the SE layers after the build."""

    layout: BlockLayout

    def __init__(self, *args: Any, se_plan: Optional[SEPlan] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.layout.attributes():
            setattr(self, name, None)
        if se_plan is not None:
            se_plan.install(self, self.layout)


class SEBasicBlock(TakesSEPlan, BasicBlock):
    """timm's ``BasicBlock`` with SE where ``se_plan`` puts it (no '3x3' or '3x3_act' position)."""

    layout = BlockLayout(standard='se', first_conv='conv1', spatial_conv=None, last_conv='conv2')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.se_pre is not None:
            x = self.se_pre(x)

        x = self.conv1(x)
        x = self.bn1(x)
        x = self.drop_block(x)
        x = self.act1(x)
        x = self.aa(x)

        z = self.conv2(x)
        x = self.bn2(z)
        if self.se is not None:
            if torch.jit.is_scripting():
                x = self.se(x)
            else:  # SE may keep z instead of x for backward
                x = self.se(x, norm_input=z, norm=self.bn2)

        if self.drop_path is not None:
            x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        x = self.act2(x)
        if self.se_post is not None:
            x = self.se_post(x)
        return x


class SEBottleneck(TakesSEPlan, Bottleneck):
    """timm's ``Bottleneck`` with SE where ``se_plan`` puts it."""

    layout = BlockLayout(standard='se', first_conv='conv1', spatial_conv='conv2', last_conv='conv3')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.se_pre is not None:
            x = self.se_pre(x)

        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)

        z = self.conv2(x)
        x = self.bn2(z)
        if self.se_3x3 is not None:
            if torch.jit.is_scripting():
                x = self.se_3x3(x)
            else:
                x = self.se_3x3(x, norm_input=z, norm=self.bn2)
        x = self.drop_block(x)
        x = self.act2(x)
        if self.se_3x3_act is not None:
            x = self.se_3x3_act(x)
        x = self.aa(x)

        z = self.conv3(x)
        x = self.bn3(z)
        if self.se is not None:
            if torch.jit.is_scripting():
                x = self.se(x)
            else:  # SE may keep z instead of x for backward
                x = self.se(x, norm_input=z, norm=self.bn3)

        if self.drop_path is not None:
            x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        x = self.act3(x)
        if self.se_post is not None:
            x = self.se_post(x)
        return x
