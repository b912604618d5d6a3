"""Squeeze-and-Excitation (Hu et al., CVPR 2018), in plain PyTorch."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .activation import ActCfg, build_activation
from .make_divisible import make_divisible
from .rescale import expand_gate, normalised_by, rescale_after_norm

torch.fx.wrap('expand_gate')  # one node in FX graphs: its loop depends on the input's rank

EXCITATIONS = ('conv', 'linear')
SQUEEZES = ('avg', 'max', 'avgmax')
MEMORY = ('lean', 'plain')


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
        memory: ``'lean'`` (default): where the block hands SE the norm's input
            (``se(norm(z), norm_input=z, norm=norm)``) and the norm is a BatchNorm, keep ``z`` rather than a
            copy of ``x`` for backward (see :mod:`se_plugins.layers.rescale`); the numbers
            are the same. ``'plain'``: always ``x * gate``.
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
                 memory: str = 'lean', init_cfg: Any = None, device: Any = None, dtype: Any = None) -> None:
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
        self.memory = _check_choice('memory', memory, MEMORY)
        if isinstance(act_cfg, (dict, str, type)):
            act_cfg = (act_cfg, act_cfg)
        if not isinstance(act_cfg, Sequence) or len(act_cfg) != 2:
            raise ValueError(f"SELayer: 'act_cfg' must be one activation config or a pair; got {act_cfg!r}")
        act1, act2 = (build_activation(cfg, f'act_cfg[{i}]') for i, cfg in enumerate(act_cfg))

        self.channels = channels
        self.squeeze_channels = squeeze_channels
        self.return_weight = return_weight
        self.init_cfg = init_cfg
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
                f'excitation={self.excitation!r}, squeeze={self.squeeze!r}, memory={self.memory!r}')

    @torch.jit.unused
    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(N, channels, *spatial)`` (not while tracing)."""
        if isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing():
            return
        if x.dim() < 3 or x.shape[1] != self.channels:
            raise ValueError(f'SELayer: input must be (N, {self.channels}, *spatial) with 1-3 spatial dims; '
                             f'got shape {list(x.shape)}')

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Squeeze: ``(N, C, *spatial) -> (N, C)``."""
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

    def forward(self, x: torch.Tensor, norm_input: Optional[torch.Tensor] = None, norm: Any = None) -> torch.Tensor:
        """``x * gate(x)`` (or the gate, with ``return_weight``).

        Args:
            x: ``(N, C, *spatial)``.
            norm_input: Where ``x = norm(norm_input)``, as in a residual block after its last
                norm: with ``memory='lean'`` and a BatchNorm, the rescale keeps
                ``norm_input`` (which the norm keeps anyway) instead of a copy of ``x``.
                Whether ``x`` really is that norm's output is checked, not assumed.
            norm: The norm module that made ``x``.
        """
        if not torch.jit.is_scripting():
            self.check_input(x)
        w = self.excite(self.pool(x))
        if not torch.jit.is_scripting():
            if norm_input is not None and self.lean_applies(x, norm_input, norm):
                return rescale_after_norm(x, w, norm_input, norm)
        w = expand_gate(w, x)
        return w if self.return_weight else x * w

    @torch.jit.unused
    def lean_applies(self, x: torch.Tensor, norm_input: torch.Tensor, norm: Any) -> bool:
        """Whether ``x * gate`` can keep ``norm_input`` instead of ``x`` with the same numbers.

        Only in eager autograd (traced, compiled and FX graphs take the plain formula) and
        only where autograd recorded ``x`` as one plain BatchNorm of ``norm_input``.
        """
        return (self.memory == 'lean' and not self.return_weight and torch.is_grad_enabled()
                and not isinstance(x, torch.fx.Proxy) and x.requires_grad
                and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
                and normalised_by(x, norm_input, norm))
