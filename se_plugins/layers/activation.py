"""Build activation modules from OpenMMLab-style configs, in plain PyTorch."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Union

import torch
import torch.nn.functional as F
from torch import nn

ActCfg = Union[str, Mapping[str, Any], type]


class HSigmoid(nn.Module):
    """``clamp((x + bias) / divisor, min_value, max_value)``, as mmcv's ``HSigmoid``.

    With the defaults this is ``torch.nn.functional.hardsigmoid``.
    """

    def __init__(self, bias: float = 3.0, divisor: float = 6.0,
                 min_value: float = 0.0, max_value: float = 1.0) -> None:
        super().__init__()
        if divisor == 0:
            raise ValueError("HSigmoid: 'divisor' must be non-zero; got 0")
        self.bias, self.divisor = float(bias), float(divisor)
        self.min_value, self.max_value = float(min_value), float(max_value)
        self.is_hardsigmoid = (self.bias, self.divisor, self.min_value, self.max_value) == (3.0, 6.0, 0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_hardsigmoid:
            return F.hardsigmoid(x)
        return ((x + self.bias) / self.divisor).clamp(self.min_value, self.max_value)


_BUILTINS: dict[str, Callable[..., nn.Module]] = {
    'ReLU': nn.ReLU, 'ReLU6': nn.ReLU6, 'LeakyReLU': nn.LeakyReLU, 'PReLU': nn.PReLU,
    'ELU': nn.ELU, 'SiLU': nn.SiLU, 'Swish': nn.SiLU, 'GELU': nn.GELU, 'Tanh': nn.Tanh,
    'Sigmoid': nn.Sigmoid, 'HSigmoid': HSigmoid, 'HardSigmoid': HSigmoid,
    'HSwish': nn.Hardswish, 'HardSwish': nn.Hardswish, 'Identity': nn.Identity,
}
_BY_LOWER = {name.lower(): cls for name, cls in _BUILTINS.items()}
KNOWN_ACTIVATIONS = tuple(_BUILTINS)


def _from_mmengine(name: str) -> Callable[..., nn.Module] | None:
    """Look ``name`` up in mmengine's MODELS registry (with mmcv's activations), if installed."""
    try:
        import mmcv.cnn  # noqa: F401  (registers mmcv's activations in mmengine's MODELS)
        from mmengine.registry import MODELS
    except ImportError:
        return None
    return MODELS.get(name)


def build_activation(cfg: ActCfg, field: str = 'act_cfg') -> nn.Module:
    """Build one activation from a dict such as ``dict(type='ReLU', inplace=True)``.

    ``cfg`` may also be a type name (``'HSigmoid'``, case-insensitive) or an
    ``nn.Module`` class. Names not built in are looked up in mmengine's MODELS
    registry when mmengine is installed.

    Args:
        cfg: The activation config.
        field: The name used for ``cfg`` in error messages.

    Returns:
        A new activation module.

    Examples:
        >>> build_activation(dict(type='LeakyReLU', negative_slope=0.2))
        LeakyReLU(negative_slope=0.2)
    """
    if isinstance(cfg, (str, type)):
        cfg = {'type': cfg}
    if not isinstance(cfg, Mapping) or 'type' not in cfg:
        raise TypeError(f"{field} must be a dict with a 'type' key, a type name or an nn.Module class; "
                        f"got {cfg!r}")
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    kind = cfg['type']
    if isinstance(kind, type):
        if not issubclass(kind, nn.Module):
            raise TypeError(f"{field} type must be an nn.Module class; got {kind!r}")
        factory = kind
    elif isinstance(kind, str):
        factory = _BY_LOWER.get(kind.lower()) or _from_mmengine(kind)
        if factory is None:
            raise ValueError(f"{field} type {kind!r} is unknown; built in: {', '.join(KNOWN_ACTIVATIONS)} "
                             "(other names are looked up in mmengine's MODELS registry when it is installed)")
    else:
        raise TypeError(f"{field} type must be a str or an nn.Module class; got {kind!r}")
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise TypeError(f"{field} {dict(cfg)!r}: {err}") from None
