"""SE-ResNet / SE-ResNeXt in timm's model registry: timm's own ResNet with our ``SELayer``.

SE goes in through the block's ``attn_layer`` hook (``block_args=dict(attn_layer=...)``),
exactly where timm's ``seresnet*`` put their ``SEModule``: after the last norm of the
residual branch, before the addition. No block is copied. The SE module of block Y of
stage X is ``layerX.Y.se``, with MMPretrain's keys (``se.conv1.conv.weight`` ...).
The other ``se_cfg`` positions install after the build with :mod:`se_plugins.placement`:
``layerX.Y.se_pre``, ``layerX.Y.se_post``, ``layerX.Y.se_3x3`` or ``layerX.Y.downsample.se``.

Every entrypoint takes the ``se_cfg`` dict of MMPretrain configs (see :class:`SEConfig`)
and all of timm's ResNet arguments (``num_classes``, ``features_only``, ``drop_path_rate`` ...).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Union

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import is_scriptable, to_ntuple
from timm.models import build_model_with_cfg, generate_default_cfgs, get_pretrained_cfg, register_model
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import nn

from ..config import SEConfig
from ..convert import timm_checkpoint_filter
from ..layers.se_layer import SELayer
from ..placement import BlockLayout, factory_of, install, se_channels

__all__ = ['StageSE']  # @register_model appends every entrypoint name

SECfg = Union[SEConfig, Mapping[str, Any]]


class StageSE:
    """timm ``attn_layer`` that builds each block's SE layer for its stage, as ``se_cfg`` says.

    timm calls ``attn_layer(out_channels, device=..., dtype=...)`` once per block. The
    out-channels of a ResNet stage are its own (256/512/1024/2048 for bottlenecks), so they
    tell the stage, and with it the stage's ratio and whether it has SE at all.

    Args:
        config: The validated ``se_cfg``.
        stage_channels: Block out-channels of each stage, in order.
    """

    def __init__(self, config: SEConfig, stage_channels: Sequence[int]) -> None:
        if len(set(stage_channels)) != len(stage_channels):
            raise ValueError(f'StageSE: stage out-channels must differ to identify stages; got {tuple(stage_channels)}')
        self.config = config
        self.stage_of = {channels: stage for stage, channels in enumerate(stage_channels)}

    def stage(self, channels: int) -> int:
        """The stage whose blocks have ``channels`` out-channels."""
        if channels not in self.stage_of:
            raise ValueError(f'StageSE: no stage has {channels} out-channels; stages have {tuple(self.stage_of)}')
        return self.stage_of[channels]

    def __call__(self, channels: int, device: Any = None, dtype: Any = None) -> Optional[SELayer]:
        stage = self.stage(channels)
        if self.config.position != 'standard':  # placed after the build, by _place
            return None
        return self.config.make_layer(stage, channels, device=device, dtype=dtype)


# The parts of timm's residual blocks, by name: where SE goes for each se_cfg position, and what it follows.
LAYOUTS = {Bottleneck: BlockLayout(first_conv='conv1', last_conv='conv3', last_norm='bn3', spatial_norm='bn2'),
           BasicBlock: BlockLayout(first_conv='conv1', last_conv='conv2', last_norm='bn2', spatial_norm=None)}


def _place(model: nn.Module, stage_se: StageSE, variant: str) -> None:
    """Install SE at ``se_cfg``'s position in every block of the stages that have it."""
    config = stage_se.config
    for block in model.modules():
        layout = LAYOUTS.get(type(block))
        if layout is None:
            continue
        stage = stage_se.stage(getattr(block, layout.last_norm).num_features)
        if not config.enabled(stage):
            continue
        channels = se_channels(block, config.position, layout, variant)
        install(block, config.position, config.make_layer(stage, channels, **factory_of(block, layout)), layout)


# Architecture arguments, as timm's own entrypoints (resnet50d, resnext50_32x4d ...) set them.
_ARCHS: Dict[str, Dict[str, Any]] = {
    'se_resnet18_plugin': dict(block=BasicBlock, layers=(2, 2, 2, 2)),
    'se_resnet26_plugin': dict(block=Bottleneck, layers=(2, 2, 2, 2)),
    'se_resnet34_plugin': dict(block=BasicBlock, layers=(3, 4, 6, 3)),
    'se_resnet50_plugin': dict(block=Bottleneck, layers=(3, 4, 6, 3)),
    'se_resnet101_plugin': dict(block=Bottleneck, layers=(3, 4, 23, 3)),
    'se_resnet152_plugin': dict(block=Bottleneck, layers=(3, 8, 36, 3)),
    'se_resnet50d_plugin': dict(block=Bottleneck, layers=(3, 4, 6, 3), stem_width=32, stem_type='deep', avg_down=True),
    'se_resnext50_32x4d_plugin': dict(block=Bottleneck, layers=(3, 4, 6, 3), cardinality=32, base_width=4),
    'se_resnext101_32x4d_plugin': dict(block=Bottleneck, layers=(3, 4, 23, 3), cardinality=32, base_width=4),
    'se_resnext101_32x8d_plugin': dict(block=Bottleneck, layers=(3, 4, 23, 3), cardinality=32, base_width=8),
    'se_wide_resnet50_2_plugin': dict(block=Bottleneck, layers=(3, 4, 6, 3), base_width=128),
}


def _create(variant: str, pretrained: bool, se_cfg: Optional[SECfg] = None, **kwargs: Any) -> ResNet:
    """Build ``variant`` with timm's builder, SE placed by ``se_cfg`` through the ``attn_layer`` hook."""
    model_args = dict(_ARCHS[variant], **kwargs)
    block_args = dict(model_args.pop('block_args', None) or {})
    if block_args.get('attn_layer') is not None:
        raise ValueError(f"{variant}: block_args['attn_layer'] is set from se_cfg; "
                         f"got attn_layer={block_args['attn_layer']!r} (configure SE with se_cfg instead)")
    channels = model_args.setdefault('channels', (64, 128, 256, 512))  # timm ResNet's default widths
    blocks = to_ntuple(len(channels))(model_args['block'])
    config = SEConfig.build(se_cfg or {}, owner=variant, num_stages=len(channels))
    stage_se = StageSE(config, [c * b.expansion for c, b in zip(channels, blocks)])
    block_args['attn_layer'] = stage_se
    model = build_model_with_cfg(ResNet, variant, pretrained, block_args=block_args,
                                 pretrained_filter_fn=timm_checkpoint_filter, **model_args)
    if config.position != 'standard':
        _place(model, stage_se, variant)
    # SE follows the last norm of its block (the lean path), except in a model built for TorchScript
    # (timm's create_model(..., scriptable=True)), which cannot compile that Python hook.
    for block in () if is_scriptable() else model.modules():
        if isinstance(block, (BasicBlock, Bottleneck)) and isinstance(block.se, SELayer):
            layout = LAYOUTS[type(block)]
            block.se.follow(getattr(block, layout.last_norm), getattr(block, layout.last_conv))
    return model


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
