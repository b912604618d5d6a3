"""SE-ResNet / SE-ResNeXt in timm's model registry: timm's own ResNet with our ``SELayer``.

timm's ``ResNet`` builds the SE-capable subclasses of its own blocks
(:mod:`se_plugins.timm.blocks`, given as ``block=``); ``se_cfg`` reaches every block
through ``block_args``. With the default ``position='standard'`` SE sits exactly where timm's
``seresnet*`` put their ``SEModule``: after the last norm of the residual branch, before the
addition. The SE module of block Y of stage X is ``layerX.Y.se``, with MMPretrain's keys
(``se.conv1.conv.weight`` ...); the other positions are ``layerX.Y.se_pre``, ``se_post``,
``se_3x3`` and ``downsample.se``.

Every entrypoint takes the ``se_cfg`` dict of MMPretrain configs (see :class:`SEConfig`)
and all of timm's ResNet arguments (``num_classes``, ``features_only``, ``drop_path_rate`` ...).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import to_ntuple
from timm.models import build_model_with_cfg, generate_default_cfgs, get_pretrained_cfg, register_model
from timm.models.resnet import ResNet

from ..config import SEConfig
from ..convert import timm_checkpoint_filter
from ..placement import SEPlan
from .blocks import SEBasicBlock, SEBottleneck

__all__ = ['SEBasicBlock', 'SEBottleneck']  # @register_model appends every entrypoint name

SECfg = Union[SEConfig, Mapping[str, Any]]


# Architecture arguments, as timm's own entrypoints (resnet50d, resnext50_32x4d ...) set them.
_ARCHS: Dict[str, Dict[str, Any]] = {
    'se_resnet18_plugin': dict(block=SEBasicBlock, layers=(2, 2, 2, 2)),
    'se_resnet26_plugin': dict(block=SEBottleneck, layers=(2, 2, 2, 2)),
    'se_resnet34_plugin': dict(block=SEBasicBlock, layers=(3, 4, 6, 3)),
    'se_resnet50_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3)),
    'se_resnet101_plugin': dict(block=SEBottleneck, layers=(3, 4, 23, 3)),
    'se_resnet152_plugin': dict(block=SEBottleneck, layers=(3, 8, 36, 3)),
    'se_resnet50d_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3), stem_width=32, stem_type='deep',
                                avg_down=True),
    'se_resnext50_32x4d_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3), cardinality=32, base_width=4),
    'se_resnext101_32x4d_plugin': dict(block=SEBottleneck, layers=(3, 4, 23, 3), cardinality=32, base_width=4),
    'se_resnext101_32x8d_plugin': dict(block=SEBottleneck, layers=(3, 4, 23, 3), cardinality=32, base_width=8),
    'se_wide_resnet50_2_plugin': dict(block=SEBottleneck, layers=(3, 4, 6, 3), base_width=128),
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
    """The pretrained_cfg timm gives its untrained SE-ResNets (``seresnet18.untrained`` ...).

    No weights yet: a later entry such as ``'se_resnet50_plugin.in1k': _cfg(hf_hub_id=...)``
    becomes the default tag by itself, since timm prefers a tag with weights.
    """
    return {
        'url': '', 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bicubic', 'test_input_size': (3, 288, 288), 'test_crop_pct': 0.95,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'fc', 'license': 'apache-2.0',
        **kwargs,
    }


def _weights_of(tag: str) -> Dict[str, Any]:
    """The pretrained_cfg of timm's ``tag`` (same architecture, same weights on the HF hub)."""
    cfg = get_pretrained_cfg(tag).to_dict()
    return {k: v for k, v in cfg.items() if v is not None and k not in ('architecture', 'tag')}


default_cfgs = generate_default_cfgs({
    # timm's weights of the same networks; the checkpoint filter renames their SE keys.
    'se_resnet50_plugin.ra2_in1k': _weights_of('seresnet50.ra2_in1k'),
    'se_resnet50_plugin.a1_in1k': _weights_of('seresnet50.a1_in1k'),
    'se_resnext50_32x4d_plugin.racm_in1k': _weights_of('seresnext50_32x4d.racm_in1k'),
    'se_resnext101_32x4d_plugin.gluon_in1k': _weights_of('seresnext101_32x4d.gluon_in1k'),
    'se_resnext101_32x8d_plugin.ah_in1k': _weights_of('seresnext101_32x8d.ah_in1k'),
    'se_resnet18_plugin.untrained': _cfg(),
    'se_resnet26_plugin.untrained': _cfg(),
    'se_resnet34_plugin.untrained': _cfg(),
    'se_resnet50_plugin.untrained': _cfg(),
    'se_resnet101_plugin.untrained': _cfg(),
    'se_resnet152_plugin.untrained': _cfg(),
    'se_resnet50d_plugin.untrained': _cfg(first_conv='conv1.0'),
    'se_resnext50_32x4d_plugin.untrained': _cfg(),
    'se_resnext101_32x4d_plugin.untrained': _cfg(),
    'se_resnext101_32x8d_plugin.untrained': _cfg(),
    'se_wide_resnet50_2_plugin.untrained': _cfg(),
})


@register_model
def se_resnet18_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-18 (as timm's ``seresnet18``)."""
    return _create('se_resnet18_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet26_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-26: timm's ``resnet26`` (bottlenecks, 2-2-2-2) with SE."""
    return _create('se_resnet26_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet34_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-34 (as timm's ``seresnet34``)."""
    return _create('se_resnet34_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet50_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-50 (as timm's ``seresnet50`` and MMPretrain's ``SEResNet(depth=50)``)."""
    return _create('se_resnet50_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet101_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-101 (as timm's ``seresnet101``)."""
    return _create('se_resnet101_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet152_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-152 (as timm's ``seresnet152``)."""
    return _create('se_resnet152_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnet50d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNet-50-D: timm's ``resnet50d`` (deep stem, average-pool shortcut) with SE."""
    return _create('se_resnet50d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext50_32x4d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-50 32x4d (as timm's ``seresnext50_32x4d``)."""
    return _create('se_resnext50_32x4d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext101_32x4d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-101 32x4d (as timm's ``seresnext101_32x4d``)."""
    return _create('se_resnext101_32x4d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_resnext101_32x8d_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-ResNeXt-101 32x8d (as timm's ``seresnext101_32x8d``)."""
    return _create('se_resnext101_32x8d_plugin', pretrained, se_cfg, **kwargs)


@register_model
def se_wide_resnet50_2_plugin(pretrained: bool = False, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """SE-Wide-ResNet-50-2: timm's ``wide_resnet50_2`` with SE."""
    return _create('se_wide_resnet50_2_plugin', pretrained, se_cfg, **kwargs)
