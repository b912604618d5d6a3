"""SE-ResNet / SE-ResNeXt in timm's model registry: timm's own ResNet with our ``SELayer``.

timm's ``ResNet`` builds the SE-capable subclasses of its own blocks
(:mod:`se_plugins.timm.blocks`, given as ``block=``); ``se_cfg`` reaches every block
through ``block_args``. With the default ``position='standard'`` SE sits exactly where timm's
``seresnet*`` put their ``SEModule``: after the last norm of the residual branch, before the
addition. The SE module of block Y of stage X is ``layerX.Y.se``, with MMPretrain's keys
(``se.conv1.conv.weight`` ...); the other positions are ``layerX.Y.se_pre``, ``se_post``,
``se_3x3``, ``se_3x3_act`` and ``downsample.se``.

Every SE-ResNet and SE-ResNeXt of timm has a twin here (``seresnext26t_32x4d`` ->
``se_resnext26t_32x4d_plugin``, ``senet154`` -> ``se_net154_plugin``: see
``TIMM_SOURCES``) with the same parameters and every pretrained tag timm has for it.

Every entrypoint takes the ``se_cfg`` dict of MMPretrain configs (see :class:`SEConfig`)
and all of timm's ResNet arguments (``num_classes``, ``features_only``, ``drop_path_rate`` ...).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import to_ntuple
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import ResNet
from torch import nn

from ..config import SEConfig
from ..convert import timm_checkpoint_filter
from ..placement import SEPlan
from .blocks import SEBasicBlock, SEBottleneck
from .twins import timm_tags

__all__ = ['SEBasicBlock', 'SEBottleneck']  # @register_model appends every entrypoint name

SECfg = Union[SEConfig, Mapping[str, Any]]


# Architecture arguments, as timm's own entrypoints (seresnet50t, senet154 ...) set them.
_D = dict(stem_width=32, stem_type='deep', avg_down=True)  # 'd': deep stem, average-pool shortcut
_T = dict(stem_width=32, stem_type='deep_tiered', avg_down=True)  # 't': tiered deep stem (24, 32, 64)
_AA = dict(aa_layer=nn.AvgPool2d)  # 'aa': anti-aliased (average-pool) downsampling
_X32x4, _X32x8, _X64x4 = (dict(cardinality=c, base_width=w) for c, w in ((32, 4), (32, 8), (64, 4)))
_ARCHS: Dict[str, Dict[str, Any]] = {
    'se_resnet18_plugin': dict(block=SEBasicBlock, layers=(2, 2, 2, 2)),
    'se_resnet26_plugin': dict(block=SEBottleneck, layers=(2, 2, 2, 2)),
    'se_resnet34_plugin': dict(block=SEBasicBlock, layers=(3, 4, 6, 3)),
    'se_resnet50_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3)),
    'se_resnet50d_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3), **_D),
    'se_resnet50t_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3), **_T),
    'se_resnetaa50d_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3), **_D, **_AA),
    'se_resnet101_plugin': dict(block=SEBottleneck, layers=(3, 4, 23, 3)),
    'se_resnet152_plugin': dict(block=SEBottleneck, layers=(3, 8, 36, 3)),
    'se_resnet152d_plugin': dict(block=SEBottleneck, layers=(3, 8, 36, 3), **_D),
    'se_resnet200d_plugin': dict(block=SEBottleneck, layers=(3, 24, 36, 3), **_D),
    'se_resnet269d_plugin': dict(block=SEBottleneck, layers=(3, 30, 48, 8), **_D),
    'se_resnext26d_32x4d_plugin': dict(block=SEBottleneck, layers=(2, 2, 2, 2), **_X32x4, **_D),
    'se_resnext26t_32x4d_plugin': dict(block=SEBottleneck, layers=(2, 2, 2, 2), **_X32x4, **_T),
    'se_resnext50_32x4d_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3), **_X32x4),
    'se_resnext101_32x4d_plugin': dict(block=SEBottleneck, layers=(3, 4, 23, 3), **_X32x4),
    'se_resnext101_32x8d_plugin': dict(block=SEBottleneck, layers=(3, 4, 23, 3), **_X32x8),
    'se_resnext101d_32x8d_plugin': dict(block=SEBottleneck, layers=(3, 4, 23, 3), **_X32x8, **_D),
    'se_resnext101_64x4d_plugin': dict(block=SEBottleneck, layers=(3, 4, 23, 3), **_X64x4),
    'se_resnextaa101d_32x8d_plugin': dict(block=SEBottleneck, layers=(3, 4, 23, 3), **_X32x8, **_D, **_AA),
    'se_resnextaa201d_32x8d_plugin': dict(block=SEBottleneck, layers=(3, 24, 36, 4), **_X32x8,
                                          **dict(_D, stem_width=64), **_AA),
    'se_net154_plugin': dict(block=SEBottleneck, layers=(3, 8, 36, 3), **_X64x4, stem_type='deep',
                             down_kernel_size=3, block_reduce_first=2),
    'se_wide_resnet50_2_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3), base_width=128),
}
# Twin -> timm's SE model of the same network, whose pretrained tags the twin has.
TIMM_SOURCES: Dict[str, str] = {
    'se_resnet18_plugin': 'seresnet18', 'se_resnet34_plugin': 'seresnet34', 'se_resnet50_plugin': 'seresnet50',
    'se_resnet50t_plugin': 'seresnet50t', 'se_resnetaa50d_plugin': 'seresnetaa50d',
    'se_resnet101_plugin': 'seresnet101', 'se_resnet152_plugin': 'seresnet152',
    'se_resnet152d_plugin': 'seresnet152d', 'se_resnet200d_plugin': 'seresnet200d',
    'se_resnet269d_plugin': 'seresnet269d', 'se_resnext26d_32x4d_plugin': 'seresnext26d_32x4d',
    'se_resnext26t_32x4d_plugin': 'seresnext26t_32x4d', 'se_resnext50_32x4d_plugin': 'seresnext50_32x4d',
    'se_resnext101_32x4d_plugin': 'seresnext101_32x4d', 'se_resnext101_32x8d_plugin': 'seresnext101_32x8d',
    'se_resnext101d_32x8d_plugin': 'seresnext101d_32x8d', 'se_resnext101_64x4d_plugin': 'seresnext101_64x4d',
    'se_resnextaa101d_32x8d_plugin': 'seresnextaa101d_32x8d',
    'se_resnextaa201d_32x8d_plugin': 'seresnextaa201d_32x8d', 'se_net154_plugin': 'senet154',
}


def _create(variant: str, pretrained: bool, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """Build ``variant`` with timm's builder and its SE-capable blocks, SE placed by ``se_cfg``."""
    model_args = dict(_ARCHS[variant], **kwargs)
    block_args = dict(model_args.pop('block_args', None) or {})
    if block_args.get('attn_layer') is not None:
        raise ValueError(f"{variant}: block_args['attn_layer'] is set from se_cfg; "
                         f"got attn_layer={block_args['attn_layer']!r} (configure SE with se_cfg instead)")
    channels = model_args.setdefault('channels', (64, 128, 256, 512))  # timm ResNet's default widths
    blocks = to_ntuple(len(channels))(model_args['block'])
    config = SEConfig.build(se_cfg or {}, owner=variant, num_stages=len(channels))
    block_args['se_plan'] = SEPlan(config, [c * b.expansion for c, b in zip(channels, blocks)], variant)
    return build_model_with_cfg(ResNet, variant, pretrained, block_args=block_args,
                                pretrained_filter_fn=timm_checkpoint_filter, **model_args)


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    """The pretrained_cfg timm gives its untrained ResNets, for twins of no timm SE model."""
    return {
        'url': '', 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bicubic', 'test_input_size': (3, 288, 288), 'test_crop_pct': 0.95,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'fc', 'license': 'apache-2.0',
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    **{tag: cfg for twin, source in TIMM_SOURCES.items() for tag, cfg in timm_tags(twin, source).items()},
    'se_resnet26_plugin.untrained': _cfg(),
    'se_resnet50d_plugin.untrained': _cfg(first_conv='conv1.0'),
    'se_wide_resnet50_2_plugin.untrained': _cfg(),
})


@register_model
def se_resnet18_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-18 (timm's ``seresnet18``)."""
    return _create('se_resnet18_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet26_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-26: timm's ``resnet26`` (bottlenecks, 2-2-2-2) with SE."""
    return _create('se_resnet26_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet34_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-34 (timm's ``seresnet34``)."""
    return _create('se_resnet34_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet50_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-50 (timm's ``seresnet50``, MMPretrain's ``SEResNet(depth=50)``)."""
    return _create('se_resnet50_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet50d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-50-D: timm's ``resnet50d`` (deep stem, average-pool shortcut) with SE."""
    return _create('se_resnet50d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet50t_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-50-T: tiered deep stem, average-pool shortcut (timm's ``seresnet50t``)."""
    return _create('se_resnet50t_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnetaa50d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-50-D with anti-aliased downsampling (timm's ``seresnetaa50d``)."""
    return _create('se_resnetaa50d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet101_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-101 (timm's ``seresnet101``)."""
    return _create('se_resnet101_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet152_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-152 (timm's ``seresnet152``)."""
    return _create('se_resnet152_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet152d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-152-D (timm's ``seresnet152d``)."""
    return _create('se_resnet152d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet200d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-200-D (timm's ``seresnet200d``)."""
    return _create('se_resnet200d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet269d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-269-D (timm's ``seresnet269d``)."""
    return _create('se_resnet269d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext26d_32x4d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-26-D 32x4d (timm's ``seresnext26d_32x4d``)."""
    return _create('se_resnext26d_32x4d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext26t_32x4d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-26-T 32x4d: tiered deep stem (timm's ``seresnext26t_32x4d``)."""
    return _create('se_resnext26t_32x4d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext50_32x4d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-50 32x4d (timm's ``seresnext50_32x4d``)."""
    return _create('se_resnext50_32x4d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext101_32x4d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-101 32x4d (timm's ``seresnext101_32x4d``)."""
    return _create('se_resnext101_32x4d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext101_32x8d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-101 32x8d (timm's ``seresnext101_32x8d``)."""
    return _create('se_resnext101_32x8d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext101d_32x8d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-101-D 32x8d (timm's ``seresnext101d_32x8d``)."""
    return _create('se_resnext101d_32x8d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext101_64x4d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-101 64x4d (timm's ``seresnext101_64x4d``)."""
    return _create('se_resnext101_64x4d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnextaa101d_32x8d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-101-D 32x8d, anti-aliased (timm's ``seresnextaa101d_32x8d``)."""
    return _create('se_resnextaa101d_32x8d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnextaa201d_32x8d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-201-D 32x8d, anti-aliased (timm's ``seresnextaa201d_32x8d``)."""
    return _create('se_resnextaa201d_32x8d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_net154_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SENet-154 (timm's ``senet154``: SE-ResNeXt-152 64x4d, deep stem, 3x3 shortcut convs)."""
    return _create('se_net154_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_wide_resnet50_2_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-Wide-ResNet-50-2: timm's ``wide_resnet50_2`` with SE."""
    return _create('se_wide_resnet50_2_plugin', pretrained, se_cfg, **kwargs)
