"""``se_cfg`` on MMPretrain's ResNet family, and SE backbone names MMPretrain lacks.

Importing this module wraps ``ResNet.__init__`` once: it takes ``se_cfg`` (default
``None``: the stock network, untouched). With an ``se_cfg`` each residual block gets
``se_layer`` after its last norm, before the addition (``position='standard'``; other
positions: :mod:`se_plugins.placement`): under MMPretrain's
``SEBottleneck`` key names, so stock SEResNet/SEResNeXt checkpoints load strictly into
``ResNet``/``ResNeXt`` + ``se_cfg``. On ``SEResNet``/``SEResNeXt`` an ``se_cfg``
replaces their built-in SE layers (their ``se_ratio`` must then stay at 16).

Examples:
    >>> from mmpretrain.registry import MODELS
    >>> model = MODELS.build(dict(type='ResNet', depth=18, se_cfg=dict(ratio=16)))
    >>> model.layer4[0].se_layer.squeeze_channels
    32
"""
from __future__ import annotations

import functools
import inspect
import warnings
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, TypeVar

from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck, ResNet, ResNetV1c, ResNetV1d
from mmpretrain.models.backbones.resnet_cifar import ResNet_CIFAR
from mmpretrain.models.backbones.resnext import Bottleneck as ResNeXtBottleneck
from mmpretrain.models.backbones.seresnet import SEBottleneck
from mmpretrain.models.backbones.seresnext import SEBottleneck as SEResNeXtBottleneck
from mmpretrain.registry import MODELS
from torch import nn

from ..config import SEConfig
from ..placement import BlockLayout, install, se_channels

T = TypeVar('T')

# Block type -> the norm whose output SE rescales; None: the block calls its own ``se_layer``.
LAST_NORM = {BasicBlock: 'norm2', Bottleneck: 'norm3', ResNeXtBottleneck: 'norm3',
             SEBottleneck: None, SEResNeXtBottleneck: None}
SUPPORTED_BACKBONES = ('ResNet', 'ResNetV1c', 'ResNetV1d', 'ResNeXt', 'ResNet_CIFAR', 'SEResNet',
                       'SEResNeXt', 'SEResNetV1c', 'SEResNetV1d', 'SEResNet_CIFAR')


def register(obj: T) -> T:
    """Register ``obj`` in MMPretrain's MODELS under its name, unless that name is taken."""
    existing = MODELS.get(obj.__name__)  # also searches mmengine's root registry
    if existing is None:
        MODELS.register_module(module=obj)
    elif (existing.__module__, existing.__qualname__) != (obj.__module__, obj.__qualname__):
        warnings.warn(f'se_plugins: {obj.__name__!r} is already in MODELS (from {existing.__module__}); '
                      'keeping that one')
    return obj  # (a re-imported se_plugins keeps its first registration)


def _unsupported(owner: str) -> str:
    return (f"{owner} does not take 'se_cfg'. It works on ResNet-family backbones built from "
            f"MMPretrain's ResNet/ResNeXt/SE blocks: {', '.join(SUPPORTED_BACKBONES)} and their "
            "subclasses that keep those blocks. Elsewhere, use type='SELayer' in your own module.")


def builds_se_blocks(cls: type) -> bool:
    """Whether backbone class ``cls`` is a ResNet whose every depth is made of supported blocks."""
    return (issubclass(cls, ResNet)
            and all(isinstance(arch, tuple) and arch[0] in LAST_NORM for arch in cls.arch_settings.values()))


# Block type -> its parts by name: where SE goes for each se_cfg position, and what it squeezes through.
BOTTLENECK = BlockLayout(first_conv='conv1', last_conv='conv3', last_norm='norm3', spatial_norm='norm2')
LAYOUTS = {BasicBlock: BlockLayout(first_conv='conv1', last_conv='conv2', last_norm='norm2', spatial_norm=None),
           Bottleneck: BOTTLENECK, ResNeXtBottleneck: BOTTLENECK, SEBottleneck: BOTTLENECK,
           SEResNeXtBottleneck: BOTTLENECK}


def _add_se(backbone: ResNet, se_cfg: Mapping[str, Any]) -> None:
    """Give every block of ``backbone`` the SE layer ``se_cfg`` describes for its stage and position.

    'standard' SE is ``se_layer`` (MMPretrain's ``SEBottleneck`` name); the other positions
    are named by :func:`se_plugins.placement.install` (``se_pre``, ``se_post``, ``se_3x3``,
    ``downsample.se``).
    """
    owner = type(backbone).__name__
    config = SEConfig.build(se_cfg, owner=owner, num_stages=backbone.num_stages)
    se_ratio = getattr(backbone, 'se_ratio', 16)
    if se_ratio != 16:
        raise ValueError(f'{owner}: se_ratio={se_ratio!r} and se_cfg are both given; '
                         f'give the ratio once, as se_cfg=dict(ratio={se_ratio!r})')
    standard = config.position == 'standard'
    for stage, name in enumerate(backbone.res_layers):  # the stage index of per-stage se_cfg values
        for block in getattr(backbone, name):
            if type(block) not in LAST_NORM:
                raise TypeError(_unsupported(owner) + f' ({type(block).__name__} blocks are not supported)')
            layout, norm = LAYOUTS[type(block)], LAST_NORM[type(block)]
            if norm is None:  # SEResNet/SEResNeXt blocks: their own SE goes, se_cfg's comes in
                block.se_layer = nn.Identity()
            if not config.enabled(stage):
                continue
            se = config.make_layer(stage, se_channels(block, config.position, layout, owner))
            if standard and norm is None:  # the block calls its se_layer itself
                block.se_layer = se
            else:
                install(block, config.position, se, layout, name='se_layer' if standard else None)
    backbone._freeze_stages()  # the new SE layers of frozen stages freeze too


def takes_se_cfg(init: Callable[..., None], add_se: Callable[[nn.Module, Mapping[str, Any]], None]
                 ) -> Callable[..., None]:
    """Wrap a backbone's ``__init__`` to take ``se_cfg`` and apply ``add_se``; a wrapped one is kept."""
    if getattr(init, 'takes_se_cfg', False):
        return init

    @functools.wraps(init)
    def __init__(self: nn.Module, *args: Any, se_cfg: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if se_cfg is not None:
            add_se(self, se_cfg)

    __init__.takes_se_cfg = True  # type: ignore[attr-defined]
    return __init__


def _check_se_cfg_target(build_func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap MODELS' build function: a cfg with ``se_cfg`` for a type that cannot take it fails clearly.

    Types that declare ``se_cfg`` or forward ``**kwargs`` (e.g. ``TIMMBackbone``) pass through.
    """
    if getattr(build_func, 'checks_se_cfg', False):
        return build_func

    @functools.wraps(build_func)
    def build(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(cfg, dict) and 'se_cfg' in cfg:
            registry = kwargs.get('registry', MODELS)
            with registry.switch_scope_and_registry(cfg.get('_scope_')) as scoped:
                cls = scoped.get(cfg['type']) if isinstance(cfg.get('type'), str) else cfg.get('type')
            if inspect.isclass(cls) and not _accepts_se_cfg(cls):
                raise TypeError(_unsupported(cls.__name__))
        return build_func(cfg, *args, **kwargs)

    build.checks_se_cfg = True  # type: ignore[attr-defined]
    return build


def _accepts_se_cfg(cls: type) -> bool:
    if issubclass(cls, ResNet):
        return builds_se_blocks(cls)
    if getattr(cls.__init__, 'takes_se_cfg', False):  # e.g. InceptionV3, MobileNetV2 (other_backbones.py)
        return True
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the build decide
        return True
    return any(p.name == 'se_cfg' or p.kind is p.VAR_KEYWORD for p in params)


ResNet.__init__ = takes_se_cfg(ResNet.__init__, _add_se)
MODELS.build_func = _check_se_cfg_target(MODELS.build_func)

_ALL_DEFAULTS = MappingProxyType({})


class _SEByDefault:
    """Mixin: ``se_cfg`` defaults to ``dict()`` (SE with the default options in every block)."""

    def __init__(self, *args: Any, se_cfg: Optional[Mapping[str, Any]] = _ALL_DEFAULTS, **kwargs: Any) -> None:
        super().__init__(*args, se_cfg=se_cfg, **kwargs)


@register
class SEResNetV1c(_SEByDefault, ResNetV1c):
    """``ResNetV1c`` (deep stem) with SE: ``ResNetV1c(se_cfg=dict())``; any depth in 18-152."""


@register
class SEResNetV1d(_SEByDefault, ResNetV1d):
    """``ResNetV1d`` (deep stem, average-pool downsampling) with SE; any depth in 18-152."""


@register
class SEResNet_CIFAR(_SEByDefault, ResNet_CIFAR):  # noqa: N801 (MMPretrain's name + 'SE')
    """``ResNet_CIFAR`` (3x3 stem, no max-pool) with SE; any depth in 18-152."""
