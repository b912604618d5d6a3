"""Squeeze-and-Excitation (Hu et al., CVPR 2018), in plain PyTorch."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .activation import ActCfg, build_activation
from .make_divisible import make_divisible
from .rescale import (ConvInput, NormInput, RescaleAfterNorm, is_pointwise, norm_stats, saved_stats,
                      squeeze_after_norm, used_batch_stats)

EXCITATIONS = ('conv', 'linear')
SQUEEZES = ('avg', 'max', 'avgmax')


class ConvAct(nn.Module):
    """A 1x1 convolution and its activation, named as mmcv's ``ConvModule`` names them.

    It maps pooled ``(N, C)`` vectors to ``(N, C')``. A 1x1 convolution of a 1x1 map is
    a matrix product, and it runs as one (``F.linear`` on the flattened weight): on CPU,
    ``conv2d`` of such tiny maps costs up to a millisecond per call in oneDNN's set-up,
    which made SE's excitation the largest part of its training cost. Results equal the
    convolution's up to float rounding (the summation order differs).
    """

    def __init__(self, conv: nn.Conv2d, activate: nn.Module) -> None:
        super().__init__()
        self.conv, self.activate = conv, activate

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.activate(F.linear(s, self.conv.weight.flatten(1), self.conv.bias))


class LinearAct(nn.Linear):
    """``nn.Linear`` followed by its activation (keys ``weight``, ``bias``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool, activate: nn.Module,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.activate = activate

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.activate(F.linear(s, self.weight, self.bias))


def _check_choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"SELayer: '{field}' must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _check_positive(field: str, value: Any, kinds: tuple = (int,)) -> None:
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = ' or '.join(k.__name__ for k in kinds)
        raise ValueError(f"SELayer: '{field}' must be a positive {kind}; got {value!r}")


class SELayer(nn.Module):
    """Squeeze-and-Excitation: rescale each channel by a gate computed from the whole input.

    ``x -> squeeze (global pooling) -> reduce + act -> expand + gate -> x * gate``.
    A drop-in superset of ``mmpretrain.models.utils.SELayer``: with
    ``excitation='conv'`` it has the same state_dict keys (``conv1.conv.*``,
    ``conv2.conv.*``) and computes the same function. It works on
    ``(N, C, *spatial)`` inputs of any spatial rank (1D, 2D, 3D).

    Args:
        channels: Input (and output) channels.
        squeeze_channels: Width of the bottleneck; default
            ``make_divisible(channels // ratio, divisor)``.
        ratio: Reduction ratio, used when ``squeeze_channels`` is ``None``.
        divisor: Rounding multiple for the bottleneck width.
        bias: Bias on the two excitation layers; ``'auto'`` means ``True``.
        conv_cfg: Accepted for MMPretrain compatibility; only ``None`` or a plain conv.
        act_cfg: The (reduce, gate) activation pair, each a dict such as
            ``dict(type='ReLU')``, a type name or an ``nn.Module`` class; one
            config is used for both.
        excitation: ``'conv'`` (1x1 convolutions, MMPretrain keys) or
            ``'linear'`` (``nn.Linear``, keys ``fc1``/``fc2``).
        squeeze: ``'avg'`` (global average pooling), ``'max'`` or ``'avgmax'``
            (the mean of both).
        return_weight: Return the gate, shaped ``(N, C, 1, ...)``, instead of ``x * gate``.
        init_cfg: Accepted for MMPretrain compatibility and kept as an attribute.
        device: Device of the parameters.
        dtype: Dtype of the parameters.

    Examples:
        >>> se = SELayer(64)
        >>> se.squeeze_channels, tuple(se(torch.randn(2, 64, 7, 7)).shape)
        (8, (2, 64, 7, 7))
    """

    def __init__(self, channels: int, squeeze_channels: Optional[int] = None, ratio: Union[int, float] = 16,
                 divisor: int = 8, bias: Union[bool, str] = 'auto', conv_cfg: Optional[dict] = None,
                 act_cfg: Union[ActCfg, Sequence[ActCfg]] = (dict(type='ReLU'), dict(type='Sigmoid')),
                 excitation: str = 'conv', squeeze: str = 'avg', return_weight: bool = False,
                 init_cfg: Any = None, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        _check_positive('channels', channels)
        if squeeze_channels is None:
            _check_positive('ratio', ratio, (int, float))
            _check_positive('divisor', divisor)
            squeeze_channels = make_divisible(channels // ratio, divisor)
        _check_positive('squeeze_channels', squeeze_channels)
        if bias not in ('auto', True, False):
            raise ValueError(f"SELayer: 'bias' must be 'auto', True or False; got {bias!r}")
        if conv_cfg is not None and conv_cfg.get('type') not in ('Conv', 'Conv2d'):
            raise ValueError(f"SELayer: 'conv_cfg' must be None or dict(type='Conv2d'); got {conv_cfg!r}")
        self.excitation = _check_choice('excitation', excitation, EXCITATIONS)
        self.squeeze = _check_choice('squeeze', squeeze, SQUEEZES)
        if isinstance(act_cfg, (dict, str, type)):
            act_cfg = (act_cfg, act_cfg)
        if not isinstance(act_cfg, Sequence) or len(act_cfg) != 2:
            raise ValueError(f"SELayer: 'act_cfg' must be one activation config or a pair; got {act_cfg!r}")
        act1, act2 = (build_activation(cfg, f'act_cfg[{i}]') for i, cfg in enumerate(act_cfg))

        self.channels = channels
        self.squeeze_channels = squeeze_channels
        self.return_weight = return_weight
        self.init_cfg = init_cfg
        self.pending: Optional[tuple] = None  # (norm, its input, its output), set by a followed norm
        self.source: Optional[tuple] = None  # (conv, its input, its output), set by squeeze_from
        bias = bias != False  # noqa: E712  ('auto' means True: there is no norm layer)
        dd = dict(device=device, dtype=dtype)
        self.conv1: Optional[ConvAct] = None
        self.conv2: Optional[ConvAct] = None
        self.fc1: Optional[LinearAct] = None
        self.fc2: Optional[LinearAct] = None
        if excitation == 'conv':
            self.conv1 = ConvAct(nn.Conv2d(channels, squeeze_channels, 1, bias=bias, **dd), act1)
            self.conv2 = ConvAct(nn.Conv2d(squeeze_channels, channels, 1, bias=bias, **dd), act2)
        else:
            self.fc1 = LinearAct(channels, squeeze_channels, bias, act1, **dd)
            self.fc2 = LinearAct(squeeze_channels, channels, bias, act2, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-out) weights and zero biases, as timm and MMPretrain initialise SE."""
        for layer in (self.conv1.conv, self.conv2.conv) if self.conv1 is not None else (self.fc1, self.fc2):
            nn.init.kaiming_normal_(layer.weight, mode='fan_out', nonlinearity='relu')
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, squeeze_channels={self.squeeze_channels}, '
                f'excitation={self.excitation!r}, squeeze={self.squeeze!r}')

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() < 3 or x.shape[1] != self.channels:
            raise ValueError(f'SELayer: input must be (N, {self.channels}, *spatial) with 1-3 spatial dims; '
                             f'got shape {list(x.shape)}')

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Squeeze: ``(N, C, *spatial) -> (N, C)``."""
        self.check_input(x)
        flat = x.flatten(2)
        if self.squeeze == 'avg':
            return flat.mean(-1)
        if self.squeeze == 'max':
            return flat.amax(-1)
        return 0.5 * (flat.mean(-1) + flat.amax(-1))

    def excite(self, s: torch.Tensor) -> torch.Tensor:
        """Excitation: pooled ``(N, C) -> `` gate ``(N, C)``."""
        if self.conv1 is not None and self.conv2 is not None:
            return self.conv2(self.conv1(s))
        if self.fc1 is not None and self.fc2 is not None:
            return self.fc2(self.fc1(s))
        raise RuntimeError('SELayer has no excitation layers')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            pending, self.pending = self.pending, None
            if pending is not None and pending[2] is x:
                return self.forward_after_norm(x, pending[0], pending[1])
            self.source = None
        w = self.excite(self.pool(x))
        for _ in range(x.dim() - 2):
            w = w.unsqueeze(-1)
        return w if self.return_weight else x * w

    @torch.jit.unused
    def follow(self, norm: nn.Module, conv: Optional[nn.Module] = None) -> None:
        """Declare that this layer's input is always ``norm``'s output (the lean path).

        Where ``norm`` is a BatchNorm whose output goes only here, as in a residual
        block, ``x`` is rescaled in place and not kept for backward (see
        :mod:`se_plugins.layers.rescale`); the function computed is the same.
        ``conv``, the layer before ``norm``, is passed on to :meth:`squeeze_from`.
        """
        norm.register_forward_hook(NormInput(self))
        if conv is not None:
            self.squeeze_from(conv)

    @torch.jit.unused
    def squeeze_from(self, conv: nn.Module) -> None:
        """Declare that the followed norm's input is ``conv``'s output.

        Where ``conv`` is pointwise (1x1, stride 1), the lean path squeezes through it: the
        mean comes from the conv's input, a quarter of the block output in a bottleneck.
        Other convs are ignored.
        """
        if is_pointwise(conv):
            conv.register_forward_hook(ConvInput(self))

    @torch.jit.unused
    def forward_after_norm(self, x: torch.Tensor, norm: nn.Module, norm_input: torch.Tensor) -> torch.Tensor:
        """``forward(x)`` for ``x = norm(norm_input)``: in place and lean where that is safe."""
        source, self.source = self.source, None
        lean = (not self.return_weight and self.squeeze == 'avg' and isinstance(norm, _BatchNorm)
                and len(norm._forward_hooks) == 1  # no other hook holds the output we overwrite
                and not torch.jit.is_tracing() and not torch.compiler.is_compiling())
        if not lean:
            return self.forward(x)
        self.check_input(x)
        if source is not None and source[2] is not norm_input:
            source = None
        grad = torch.is_grad_enabled() and x.requires_grad
        if used_batch_stats(norm):
            stats = saved_stats(x)  # None where the norm saved none: recomputed in backward
        else:  # the running statistics, as they are now
            stats = norm_stats(norm, norm_input) if grad or source is not None else None
        pooled = squeeze_after_norm(x, norm, stats, source)
        if grad:
            params = tuple(p for p in self.parameters() if p.requires_grad)
            return RescaleAfterNorm.apply(x, norm_input, pooled, stats, norm, self.excite, *params)
        w = self.excite(pooled)
        return x.mul_(w.view(w.shape + (1,) * (x.dim() - 2)))
