"""``se_cfg`` on MMPretrain's ResNet family: SE-capable subclasses registered under the stock names.

``ResNet``, ``ResNetV1c``, ``ResNetV1d``, ``ResNeXt``, ``ResNet_CIFAR``, ``SEResNet``,
``SEResNeXt`` and ``RegNet`` in MMPretrain's ``MODELS`` become subclasses of the stock classes that take
``se_cfg`` (default ``None``: the stock network, built by the stock code, untouched). With an
``se_cfg`` the backbone builds the SE-capable blocks of :mod:`se_plugins.mmpretrain.blocks`
through its own ``make_res_layer``; each residual block gets ``se_layer`` after its last
norm, before the addition (``position='standard'``; other positions:
:mod:`se_plugins.placement`), under MMPretrain's ``SEBottleneck`` key names, so stock
SEResNet/SEResNeXt checkpoints load strictly into ``ResNet``/``ResNeXt`` + ``se_cfg``. On
``SEResNet``/``SEResNeXt`` an ``se_cfg`` replaces their built-in SE layers (their
``se_ratio`` must then stay at 16). No stock class or function is changed.

Our subclasses' tables also name what timm has weights for: ``ResNet``, ``ResNetV1c``,
``ResNetV1d``, ``ResNeXt``, ``SEResNetV1c`` and ``SEResNetV1d`` take timm's extra depths 26,
200 and 269; ``RegNet`` takes RegNetY's widths by name (``arch='regnety_4.0gf'``, with
``se_cfg=dict(position='3x3_act', ratio_of='block_input', ratio=4, divisor=1)`` it is
RegNetY) and an optional arch key ``group_min_ratio``, timm's rounding of the torchvision
variants' bottleneck widths (``regnety_800mf_tv``, ``regnety_8.0gf_tv``).

Examples:
    >>> from mmpretrain.registry import MODELS
    >>> model = MODELS.build(dict(type='ResNet', depth=18, se_cfg=dict(ratio=16)))
    >>> model.layer4[0].se_layer.squeeze_channels
    32
"""
from __future__ import annotations

import warnings
from types import MappingProxyType
from typing import Any, Mapping, Optional, Tuple, TypeVar

from mmpretrain.models.backbones import regnet, resnet, resnet_cifar, resnext, seresnet, seresnext
from mmpretrain.models.utils import make_divisible
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
                       'SEResNeXt', 'SEResNetV1c', 'SEResNetV1d', 'SEResNet_CIFAR', 'RegNet')

# Bottleneck depths of timm's SE-ResNets beyond MMPretrain's 18-152: depth -> blocks per stage.
TIMM_DEPTHS = {26: (2, 2, 2, 2), 200: (3, 24, 36, 3), 269: (3, 30, 48, 8)}

# RegNetY widths (timm.models.regnet.model_cfgs, pinned by a test), under MMPretrain-style names:
# name -> (timm's name, w0, wa, wm, group_w, depth, group_min_ratio).
REGNETY = {
    'regnety_200mf': ('regnety_002', 24, 36.44, 2.49, 8, 13, 0.),
    'regnety_400mf': ('regnety_004', 48, 27.89, 2.09, 8, 16, 0.),
    'regnety_600mf': ('regnety_006', 48, 32.54, 2.32, 16, 15, 0.),
    'regnety_800mf': ('regnety_008', 56, 38.84, 2.4, 16, 14, 0.),
    'regnety_800mf_tv': ('regnety_008_tv', 56, 38.84, 2.4, 16, 14, 0.9),
    'regnety_1.6gf': ('regnety_016', 48, 20.71, 2.65, 24, 27, 0.),
    'regnety_3.2gf': ('regnety_032', 80, 42.63, 2.66, 24, 21, 0.),
    'regnety_4.0gf': ('regnety_040', 96, 31.41, 2.24, 64, 22, 0.),
    'regnety_6.4gf': ('regnety_064', 112, 33.22, 2.27, 72, 25, 0.),
    'regnety_8.0gf': ('regnety_080', 192, 76.82, 2.19, 56, 17, 0.),
    'regnety_8.0gf_tv': ('regnety_080_tv', 192, 76.82, 2.19, 56, 17, 0.9),
    'regnety_12gf': ('regnety_120', 168, 73.36, 2.37, 112, 19, 0.),
    'regnety_16gf': ('regnety_160', 200, 106.23, 2.48, 112, 18, 0.),
    'regnety_32gf': ('regnety_320', 232, 115.89, 2.53, 232, 20, 0.),
    'regnety_64gf': ('regnety_640', 352, 147.48, 2.4, 328, 20, 0.),
    'regnety_128gf': ('regnety_1280', 456, 160.83, 2.52, 264, 27, 0.),
    'regnety_256gf': ('regnety_2560', 640, 230.83, 2.53, 373, 27, 0.),
}
REGNET_ARCH_KEYS = ('w0', 'wa', 'wm', 'group_w', 'depth', 'bot_mul')  # required; 'group_min_ratio' optional


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


def with_timm_depths(arch_settings: Mapping[int, tuple], block: type) -> dict:
    """A copy of a stock ``arch_settings`` (depth -> (block, stage blocks)) plus :data:`TIMM_DEPTHS`."""
    return {**arch_settings, **{depth: (block, blocks) for depth, blocks in TIMM_DEPTHS.items()}}


def _regnety_arch(name: str) -> dict:
    """The ``arch`` dict of :data:`REGNETY` entry ``name``."""
    _, w0, wa, wm, group_w, depth, group_min_ratio = REGNETY[name]
    arch = dict(w0=w0, wa=wa, wm=wm, group_w=group_w, depth=depth, bot_mul=1.0)
    return arch if not group_min_ratio else dict(arch, group_min_ratio=group_min_ratio)


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


RESNET_DEPTHS = with_timm_depths(resnet.ResNet.arch_settings, resnet.Bottleneck)


@register
class ResNet(TakesSECfg, resnet.ResNet):
    """MMPretrain's ``ResNet`` that takes ``se_cfg``; depths 18-152 and timm's 26, 200, 269."""

    arch_settings = RESNET_DEPTHS


@register
class ResNetV1c(TakesSECfg, resnet.ResNetV1c):
    """MMPretrain's ``ResNetV1c`` (deep stem) that takes ``se_cfg``; depths as ResNet."""

    arch_settings = RESNET_DEPTHS


@register
class ResNetV1d(TakesSECfg, resnet.ResNetV1d):
    """MMPretrain's ``ResNetV1d`` (deep stem, average-pool downsampling) that takes ``se_cfg``; depths as ResNet."""

    arch_settings = RESNET_DEPTHS


@register
class ResNeXt(TakesSECfg, resnext.ResNeXt):
    """MMPretrain's ``ResNeXt`` that takes ``se_cfg``; depths 50-152 and timm's 26, 200, 269."""

    arch_settings = with_timm_depths(resnext.ResNeXt.arch_settings, resnext.Bottleneck)


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
    """``ResNetV1c`` (deep stem) with SE: ``ResNetV1c(se_cfg=dict())``; depths 18-152, 26, 200, 269."""

    arch_settings = RESNET_DEPTHS


@register
class SEResNetV1d(_SEByDefault, resnet.ResNetV1d):
    """``ResNetV1d`` (deep stem, average-pool downsampling) with SE; depths 18-152, 26, 200, 269."""

    arch_settings = RESNET_DEPTHS


@register
class SEResNet_CIFAR(_SEByDefault, resnet_cifar.ResNet_CIFAR):  # noqa: N801 (MMPretrain's name + 'SE')
    """``ResNet_CIFAR`` (3x3 stem, no max-pool) with SE; any depth in 18-152."""


@register
class RegNet(TakesSECfg, regnet.RegNet):
    """MMPretrain's ``RegNet`` that takes ``se_cfg`` and RegNetY's widths by name.

    Args:
        arch: A name of ``arch_settings`` (the stock RegNetX ones and :data:`REGNETY`'s), or a
            dict of :data:`REGNET_ARCH_KEYS` and optionally ``group_min_ratio`` (default 0:
            the stock rounding; else torchvision's, as timm's ``group_min_ratio``).
        se_cfg: See :class:`TakesSECfg`.

    Raises:
        TypeError, ValueError: for an ``arch`` of another type, an unknown name or bad keys.

    Examples:
        >>> regnety = RegNet('regnety_200mf', se_cfg=dict(position='3x3_act', ratio_of='block_input',
        ...                                              ratio=4, divisor=1))
        >>> regnety.stage_widths, regnety.layer4[1].se_3x3_act.squeeze_channels  # round(368 / 4)
        ([24, 56, 152, 368], 92)
    """

    arch_settings = {**regnet.RegNet.arch_settings, **{name: _regnety_arch(name) for name in REGNETY}}

    def __init__(self, arch: Any, *args: Any, **kwargs: Any) -> None:
        arch = self.check_arch(arch)
        self.group_min_ratio = arch.get('group_min_ratio', 0.)
        super().__init__(arch, *args, **kwargs)

    @classmethod
    def check_arch(cls, arch: Any) -> dict:
        """The arch dict of ``arch`` (a name or a dict), checked."""
        owner = cls.__name__
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'{owner}: arch={arch!r} is not a known name; known: {list(cls.arch_settings)}')
            return dict(cls.arch_settings[arch])
        if not isinstance(arch, Mapping):
            raise TypeError(f'{owner}: arch must be a name or a dict of {list(REGNET_ARCH_KEYS)}; '
                            f'got {type(arch).__name__}')
        missing = [key for key in REGNET_ARCH_KEYS if key not in arch]
        unknown = sorted(set(arch) - {*REGNET_ARCH_KEYS, 'group_min_ratio'})
        if missing or unknown:
            raise ValueError(f'{owner}: arch dict needs the keys {list(REGNET_ARCH_KEYS)} (and may have '
                             f"'group_min_ratio'); missing {missing}, unknown {unknown}")
        ratio = arch.get('group_min_ratio', 0.)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            raise ValueError(f"{owner}: arch 'group_min_ratio' must be a number in [0, 1); got {ratio!r}")
        return dict(arch)

    def adjust_width_group(self, widths: list, bottleneck_ratio: list, groups: list) -> Tuple[list, list]:
        """The stock rounding of bottleneck widths to multiples of the group width, or with
        ``group_min_ratio`` timm's torchvision rounding, ``make_divisible(width, group, min_ratio)``."""
        if not self.group_min_ratio:
            return super().adjust_width_group(widths, bottleneck_ratio, groups)
        bottleneck = [int(w * b) for w, b in zip(widths, bottleneck_ratio)]
        groups = [min(g, w) for g, w in zip(groups, bottleneck)]
        bottleneck = [make_divisible(w, g, min_ratio=self.group_min_ratio) for w, g in zip(bottleneck, groups)]
        return [int(w / b) for w, b in zip(bottleneck, bottleneck_ratio)], groups
