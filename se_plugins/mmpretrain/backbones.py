"""``se_cfg`` on MMPretrain's ResNet family: SE-capable subclasses registered under the stock names.

``ResNet``, ``ResNetV1c``, ``ResNetV1d``, ``ResNeXt``, ``ResNet_CIFAR``, ``SEResNet`` and
``SEResNeXt`` in MMPretrain's ``MODELS`` become subclasses of the stock classes that take
``se_cfg`` (default ``None``: the stock network, built by the stock code, untouched). With an
``se_cfg`` the backbone builds the SE-capable blocks of :mod:`se_plugins.mmpretrain.blocks`
through its own ``make_res_layer``; each residual block gets ``se_layer`` after its last
norm, before the addition (``position='standard'``; other positions:
:mod:`se_plugins.placement`), under MMPretrain's ``SEBottleneck`` key names, so stock
SEResNet/SEResNeXt checkpoints load strictly into ``ResNet``/``ResNeXt`` + ``se_cfg``. On
``SEResNet``/``SEResNeXt`` an ``se_cfg`` replaces their built-in SE layers (their
``se_ratio`` must then stay at 16). No stock class or function is changed.

Examples:
    >>> from mmpretrain.registry import MODELS
    >>> model = MODELS.build(dict(type='ResNet', depth=18, se_cfg=dict(ratio=16)))
    >>> model.layer4[0].se_layer.squeeze_channels
    32
"""
from __future__ import annotations

import warnings
from types import MappingProxyType
from typing import Any, Mapping, Optional, TypeVar

from mmpretrain.models.backbones import resnet, resnet_cifar, resnext, seresnet, seresnext
from mmpretrain.registry import MODELS
from torch import nn

from ..config import SEConfig
from ..placement import SEPlan
from .blocks import SEBasicBlock, SEBottleneck, SEResNeXtBottleneck

T = TypeVar('T')

# Stock block type -> its SE-capable subclass (SEResNet's blocks become plain ones with se_cfg's SE).
SE_BLOCKS = {resnet.BasicBlock: SEBasicBlock, resnet.Bottleneck: SEBottleneck,
             resnext.Bottleneck: SEResNeXtBottleneck, seresnet.SEBottleneck: SEBottleneck,
             seresnext.SEBottleneck: SEResNeXtBottleneck}
SUPPORTED_BACKBONES = ('ResNet', 'ResNetV1c', 'ResNetV1d', 'ResNeXt', 'ResNet_CIFAR', 'SEResNet',
                       'SEResNeXt', 'SEResNetV1c', 'SEResNetV1d', 'SEResNet_CIFAR')


def register(obj: T) -> T:
    """Register ``obj`` in MMPretrain's MODELS under its name.

    An SE-capable subclass of the class registered under that name (a stock backbone)
    replaces that entry. A name taken by another class is kept, with a warning.
    """
    existing = MODELS.get(obj.__name__)  # also searches mmengine's root registry
    if existing is None or (isinstance(obj, type) and issubclass(obj, existing)):
        MODELS.register_module(module=obj, force=True)
    elif (existing.__module__, existing.__qualname__) != (obj.__module__, obj.__qualname__):
        warnings.warn(f'se_plugins: {obj.__name__!r} is already in MODELS (from {existing.__module__}); '
                      'keeping that one')
    return obj  # (a re-imported se_plugins keeps its first registration)


def _unsupported(owner: str, block: type) -> str:
    return (f"{owner} does not take 'se_cfg' with {block.__name__} blocks. It works on ResNet-family "
            f"backbones built from MMPretrain's ResNet/ResNeXt/SE blocks: {', '.join(SUPPORTED_BACKBONES)} "
            "and their subclasses that keep those blocks. Elsewhere, use type='SELayer' in your own module.")


class TakesSECfg:
    """Mixin of the registered ResNet-family backbones: ``se_cfg`` builds SE-capable blocks.

    Args:
        se_cfg: See :class:`se_plugins.SEConfig`; ``None``: the stock backbone.
    """

    def __init__(self, *args: Any, se_cfg: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        owner = type(self).__name__
        self.se_config = None if se_cfg is None else SEConfig.build(
            se_cfg, owner=owner, num_stages=kwargs.get('num_stages', 4))
        se_ratio = kwargs.get('se_ratio', 16)
        if se_cfg is not None and se_ratio != 16:
            raise ValueError(f'{owner}: se_ratio={se_ratio!r} and se_cfg are both given; '
                             f'give the ratio once, as se_cfg=dict(ratio={se_ratio!r})')
        super().__init__(*args, **kwargs)

    def make_res_layer(self, **kwargs: Any) -> nn.Module:
        """The stock ``make_res_layer``, with SE-capable blocks and the stage's SE plan when ``se_cfg`` is set."""
        if self.se_config is not None:
            block = kwargs['block']
            if block not in SE_BLOCKS:
                raise TypeError(_unsupported(type(self).__name__, block))
            stage = len(self.res_layers)  # ResNet.__init__ appends each stage after building it
            kwargs.update(block=SE_BLOCKS[block], se_plan=SEPlan(
                self.se_config, [kwargs['out_channels']], type(self).__name__, first_stage=stage))
        return super().make_res_layer(**kwargs)


@register
class ResNet(TakesSECfg, resnet.ResNet):
    """MMPretrain's ``ResNet`` that takes ``se_cfg``."""


@register
class ResNetV1c(TakesSECfg, resnet.ResNetV1c):
    """MMPretrain's ``ResNetV1c`` (deep stem) that takes ``se_cfg``."""


@register
class ResNetV1d(TakesSECfg, resnet.ResNetV1d):
    """MMPretrain's ``ResNetV1d`` (deep stem, average-pool downsampling) that takes ``se_cfg``."""


@register
class ResNeXt(TakesSECfg, resnext.ResNeXt):
    """MMPretrain's ``ResNeXt`` that takes ``se_cfg``."""


@register
class ResNet_CIFAR(TakesSECfg, resnet_cifar.ResNet_CIFAR):  # noqa: N801 (MMPretrain's name)
    """MMPretrain's ``ResNet_CIFAR`` (3x3 stem, no max-pool) that takes ``se_cfg``."""


@register
class SEResNet(TakesSECfg, seresnet.SEResNet):
    """MMPretrain's ``SEResNet``; ``se_cfg`` replaces its SE layers."""


@register
class SEResNeXt(TakesSECfg, seresnext.SEResNeXt):
    """MMPretrain's ``SEResNeXt``; ``se_cfg`` replaces its SE layers."""


_ALL_DEFAULTS = MappingProxyType({})


class _SEByDefault(TakesSECfg):
    """Mixin: ``se_cfg`` defaults to ``dict()`` (SE with the default options in every block)."""

    def __init__(self, *args: Any, se_cfg: Optional[Mapping[str, Any]] = _ALL_DEFAULTS, **kwargs: Any) -> None:
        super().__init__(*args, se_cfg=se_cfg, **kwargs)


@register
class SEResNetV1c(_SEByDefault, resnet.ResNetV1c):
    """``ResNetV1c`` (deep stem) with SE: ``ResNetV1c(se_cfg=dict())``; any depth in 18-152."""


@register
class SEResNetV1d(_SEByDefault, resnet.ResNetV1d):
    """``ResNetV1d`` (deep stem, average-pool downsampling) with SE; any depth in 18-152."""


@register
class SEResNet_CIFAR(_SEByDefault, resnet_cifar.ResNet_CIFAR):  # noqa: N801 (MMPretrain's name + 'SE')
    """``ResNet_CIFAR`` (3x3 stem, no max-pool) with SE; any depth in 18-152."""
