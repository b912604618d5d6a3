"""MMPretrain's ResNet blocks with SE at every place se_cfg can put it, called in their own forward.

Each class is MMPretrain's block (same constructor, parameters and keys) with one more
argument, ``se_plan`` (:class:`se_plugins.placement.SEPlan`), and a forward that calls
``se_pre``, ``se_3x3``, ``se_3x3_act``, ``se_layer`` and ``se_post`` where they are not ``None``; ``with_cp``
checkpoints the residual branch as in the stock block. ``se_layer`` is where MMPretrain's
own ``SEBottleneck`` has its SE, so SEResNet/SEResNeXt checkpoints load strictly.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.utils.checkpoint as cp
from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck
from mmpretrain.models.backbones.resnext import Bottleneck as ResNeXtBottleneck

from ..placement import BlockLayout, SEPlan

__all__ = ['SEBasicBlock', 'SEBottleneck', 'SEResNeXtBottleneck']


class _TakesSEPlan:
    """Mixin of the SE-capable blocks: ``se_plan`` installs the SE layers after the build.

    ``se_ratio``, which SEResNet passes to its blocks, is dropped: with ``se_cfg`` the ratio
    comes from there (the backbone checks that the two do not disagree).
    """

    layout: BlockLayout

    def __init__(self, *args: Any, se_plan: Optional[SEPlan] = None, se_ratio: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.layout.attributes():
            setattr(self, name, None)
        if se_plan is not None:
            se_plan.install(self, self.layout)

    def run(self, residual: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The stock blocks' ending: ``residual`` (checkpointed with ``with_cp``), ReLU, then ``se_post``."""
        out = cp.checkpoint(residual, x) if self.with_cp and x.requires_grad else residual(x)
        out = self.relu(out)
        return out if self.se_post is None else self.se_post(out)


class SEBasicBlock(_TakesSEPlan, BasicBlock):
    """MMPretrain's ``BasicBlock`` with SE where ``se_plan`` puts it (no '3x3' or '3x3_act' position)."""

    layout = BlockLayout(standard='se_layer', first_conv='conv1', spatial_conv=None, last_conv='conv2')

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        def _inner_forward(x: torch.Tensor) -> torch.Tensor:
            identity = x
            out = x if self.se_pre is None else self.se_pre(x)

            out = self.conv1(out)
            out = self.norm1(out)
            out = self.relu(out)

            z = self.conv2(out)
            out = self.norm2(z)
            if self.se_layer is not None:
                out = self.se_layer(out, norm_input=z, norm=self.norm2)

            if self.downsample is not None:
                identity = self.downsample(x)
            out = self.drop_path(out)
            out += identity
            return out

        return self.run(_inner_forward, x)


class SEBottleneck(_TakesSEPlan, Bottleneck):
    """MMPretrain's ``Bottleneck`` with SE where ``se_plan`` puts it."""

    layout = BlockLayout(standard='se_layer', first_conv='conv1', spatial_conv='conv2', last_conv='conv3')

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        def _inner_forward(x: torch.Tensor) -> torch.Tensor:
            identity = x
            out = x if self.se_pre is None else self.se_pre(x)

            out = self.conv1(out)
            out = self.norm1(out)
            out = self.relu(out)

            z = self.conv2(out)
            out = self.norm2(z)
            if self.se_3x3 is not None:
                out = self.se_3x3(out, norm_input=z, norm=self.norm2)
            out = self.relu(out)
            if self.se_3x3_act is not None:
                out = self.se_3x3_act(out)

            z = self.conv3(out)
            out = self.norm3(z)
            if self.se_layer is not None:
                out = self.se_layer(out, norm_input=z, norm=self.norm3)

            if self.downsample is not None:
                identity = self.downsample(x)
            out = self.drop_path(out)
            out += identity
            return out

        return self.run(_inner_forward, x)


class SEResNeXtBottleneck(SEBottleneck, ResNeXtBottleneck):
    """MMPretrain's ResNeXt ``Bottleneck`` (grouped 3x3) with SE where ``se_plan`` puts it."""
