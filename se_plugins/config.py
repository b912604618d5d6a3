"""``se_cfg``: the one description of where and how SE goes into a network.

timm models take it as a keyword and MMPretrain backbones as a config field; both
validate it here, so the same keys mean the same thing in both frameworks.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

from .layers.make_divisible import make_divisible
from .layers.se_layer import SELayer

POSITIONS = ('standard', 'pre', 'post', 'identity', '3x3', '3x3_act')  # see se_plugins.placement
RATIO_OF = ('channels', 'block_input')
Ratio = Union[int, float]


@dataclass(frozen=True)
class SEConfig:
    """A validated ``se_cfg``.

    Attributes:
        ratio: Reduction ratio, or one per stage.
        divisor: Rounding multiple of the squeeze width.
        squeeze_channels: A fixed squeeze width (overrides ``ratio``).
        squeeze: ``'avg'``, ``'max'`` or ``'avgmax'``.
        excitation: ``'conv'`` or ``'linear'``.
        act_cfg: The (reduce, gate) activation pair, or one config for both.
        bias: Bias on the excitation layers.
        position: Where SE sits in a residual block (the paper's integration
            strategies): ``'standard'`` (residual branch, after its last norm, before the
            addition), ``'pre'`` (start of the residual branch), ``'post'`` (after the
            addition and its ReLU), ``'identity'`` (on the shortcut), ``'3x3'`` (after
            the bottleneck's 3x3 conv and its norm) or ``'3x3_act'`` (after the 3x3 conv, its
            norm and its activation: RegNetY's and timm's ByobNet's place); see
            :mod:`se_plugins.placement`.
        ratio_of: What ``ratio`` divides: ``'channels'`` (the channels SE rescales:
            ``make_divisible(channels // ratio, divisor)``, MMPretrain's rule) or
            ``'block_input'`` (the residual block's input channels:
            ``make_divisible(round(block_input / ratio), divisor)``, RegNetY's rule, which with
            ``ratio=4, divisor=1`` is its ``se_ratio=0.25``).
        stages: Which stages get SE, one bool per stage; ``None`` means all.
        memory: ``'lean'`` (default): SE right after a BatchNorm keeps the norm's input
            instead of a copy of its output for backward, wherever that is exact (see
            :mod:`se_plugins.layers.rescale`); ``'plain'``: always the plain ``x * gate``.
    """

    ratio: Union[Ratio, Tuple[Ratio, ...]] = 16
    divisor: int = 8
    squeeze_channels: Optional[int] = None
    squeeze: str = 'avg'
    excitation: str = 'conv'
    act_cfg: Any = (dict(type='ReLU'), dict(type='Sigmoid'))
    bias: Union[bool, str] = 'auto'
    position: str = 'standard'
    ratio_of: str = 'channels'
    stages: Optional[Tuple[bool, ...]] = None
    memory: str = 'lean'

    @classmethod
    def build(cls, se_cfg: Union['SEConfig', Mapping[str, Any]], owner: str,
              num_stages: int) -> 'SEConfig':
        """Validate ``se_cfg`` for a network of ``num_stages`` stages.

        Args:
            se_cfg: A mapping of the keys above (or an ``SEConfig``).
            owner: The model or backbone type, named in error messages.
            num_stages: Number of stages, for per-stage ``ratio`` and ``stages``.

        Raises:
            TypeError, ValueError: naming ``owner``, the key and what is allowed.
        """
        if isinstance(se_cfg, SEConfig):
            se_cfg = {f.name: getattr(se_cfg, f.name) for f in fields(cls)}
        if not isinstance(se_cfg, Mapping):
            raise TypeError(f'{owner}: se_cfg must be a dict; got {type(se_cfg).__name__}')
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(se_cfg) - set(allowed))
        if unknown:
            raise ValueError(f'{owner}: unknown se_cfg key(s) {unknown}; allowed: {allowed}')
        cfg = dict(se_cfg)
        for key in ('ratio', 'stages'):
            value = cfg.get(key)
            if isinstance(value, Sequence) and not isinstance(value, str):
                if len(value) != num_stages:
                    raise ValueError(f'{owner}: se_cfg {key!r} needs one entry per stage ({num_stages}); '
                                     f'got {tuple(value)!r}')
                cfg[key] = tuple(value)
        stages = cfg.get('stages')
        if stages is not None and not (isinstance(stages, tuple) and all(isinstance(s, bool) for s in stages)):
            raise TypeError(f'{owner}: se_cfg \'stages\' must be a tuple of {num_stages} bools; got {stages!r}')
        if cfg.get('position', 'standard') not in POSITIONS:
            raise ValueError(f"{owner}: se_cfg 'position' must be one of {POSITIONS}; got {cfg['position']!r}")
        if cfg.get('ratio_of', 'channels') not in RATIO_OF:
            raise ValueError(f"{owner}: se_cfg 'ratio_of' must be one of {RATIO_OF}; got {cfg['ratio_of']!r}")
        config = cls(**cfg)
        for stage in range(num_stages):  # build one layer per stage: every value error shows up now
            try:
                SELayer(64, **config.layer_kwargs(stage))
            except (TypeError, ValueError) as err:
                raise type(err)(f'{owner}: se_cfg {str(err).removeprefix("SELayer: ")}') from None
        return config

    def enabled(self, stage: int) -> bool:
        """Whether stage ``stage`` (0-based) gets SE."""
        return self.stages is None or self.stages[stage]

    def layer_kwargs(self, stage: int) -> dict:
        """Keyword arguments of ``SELayer`` for stage ``stage`` (0-based)."""
        ratio = self.ratio[stage] if isinstance(self.ratio, tuple) else self.ratio
        return dict(ratio=ratio, divisor=self.divisor, squeeze_channels=self.squeeze_channels,
                    squeeze=self.squeeze, excitation=self.excitation, act_cfg=self.act_cfg, bias=self.bias,
                    memory=self.memory)

    def make_layer(self, stage: int, channels: int, block_input: Optional[int] = None,
                   **factory: Any) -> Optional[SELayer]:
        """The SE layer for a block of ``stage`` with ``channels`` channels, or ``None``.

        ``block_input`` (the block's input channels) is needed with ``ratio_of='block_input'``.
        """
        if not self.enabled(stage):
            return None
        kwargs = self.layer_kwargs(stage)
        if self.ratio_of == 'block_input' and self.squeeze_channels is None:
            if block_input is None:
                raise ValueError("se_cfg ratio_of='block_input' needs SE inside a residual block")
            kwargs['squeeze_channels'] = make_divisible(round(block_input / kwargs['ratio']), self.divisor)
        return SELayer(channels, **kwargs, **factory)

