"""Where SE sits in a residual block: the paper's integration strategies, installed with hooks.

Hu et al. (TPAMI 2019, Sec. 6.5, Fig. 5) compare five places for SE in a residual block:

============  ==============================================  ======================  =============
position      SE rescales                                     installed as            channels
============  ==============================================  ======================  =============
'standard'    the residual branch, after its last norm,       forward hook on the     out
              before the addition                             last norm
'pre'         the residual branch's input (the shortcut       forward pre-hook on     in
              still gets the block input unchanged)           the branch's first conv
'post'        the block output, after the addition and        forward hook on the     out
              its ReLU                                        block
'identity'    the shortcut, parallel to the residual branch   ``downsample.se``: the  out
              (after the projection where there is one)       shortcut's last module
'3x3'         the output of the spatial 3x3 conv's norm,      forward hook on the     bottleneck
              before its ReLU (bottleneck blocks only)        3x3's norm              width
============  ==============================================  ======================  =============

This module knows no framework: each adapter names its blocks' parts in a
:class:`BlockLayout`. Hooks are small module-level classes, so ``copy.deepcopy``
(mmengine's EMA) and pickling map them to the copied SE layers. Where SE directly
follows a BatchNorm whose output goes nowhere else ('standard', '3x3'), the hook
calls :meth:`SELayer.forward_after_norm`, the memory-lean path.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .config import POSITIONS, SEConfig
from .layers.se_layer import SELayer


@dataclass(frozen=True)
class BlockLayout:
    """The attribute names of a residual block's parts, as one framework names them.

    Attributes:
        first_conv: The residual branch's first conv (its input is the block input).
        last_conv: The residual branch's last conv (its output is the last norm's input).
        last_norm: The residual branch's last norm (its output is added to the shortcut).
        spatial_norm: The norm after the bottleneck's 3x3 conv; ``None`` for blocks without one.
        shortcut: The shortcut projection, ``None`` on blocks with an identity shortcut;
            the block must call ``self.<shortcut>(x)`` on its shortcut when it is not ``None``.
    """

    first_conv: str = 'conv1'
    last_conv: str = 'conv3'
    last_norm: str = 'bn3'
    spatial_norm: Optional[str] = 'bn2'
    shortcut: str = 'downsample'


def se_name(position: str) -> str:
    """The default block attribute that holds SE at ``position`` ('identity': see :func:`install`)."""
    return f'se_{position}'


def se_channels(block: nn.Module, position: str, layout: BlockLayout, owner: str) -> int:
    """The channels SE sees at ``position`` of ``block`` (a block of model ``owner``).

    Raises:
        ValueError: for '3x3' on a block without a bottleneck, naming ``owner``.
    """
    if position == 'pre':
        return getattr(block, layout.first_conv).in_channels
    if position == '3x3':
        if layout.spatial_norm is None:
            raise ValueError(f"{owner}: se_cfg position '3x3' needs bottleneck blocks (a 1x1-3x3-1x1 residual "
                             f'branch); {type(block).__name__} has none')
        return getattr(block, layout.spatial_norm).num_features
    return getattr(block, layout.last_norm).num_features


def factory_of(block: nn.Module, layout: BlockLayout) -> dict:
    """``device``/``dtype`` keywords that make a new SE layer match ``block``'s last norm."""
    weight = getattr(getattr(block, layout.last_norm), 'weight', None)
    return {} if weight is None else dict(device=weight.device, dtype=weight.dtype)


class NormGate:
    """Forward hook of a norm: returns ``se(output)``, computed from the norm's input and output."""

    def __init__(self, se: SELayer) -> None:
        self.se = se

    def __call__(self, norm: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():  # the same function, traced in the SE layer's own scope (FLOP counters)
            return self.se(output)
        return self.se.forward_after_norm(output, norm, args[0])


class KeepNormGate:
    """Forward pre-hook of a block: keeps a :class:`NormGate` on the block's current ``norm``.

    mmengine's Runner swaps norm modules (``revert_sync_batchnorm``, ``convert_sync_batchnorm``);
    the new norm has no hooks, so the gate is attached again here rather than silently lost.
    """

    def __init__(self, se: nn.Module, norm: str) -> None:
        self.gate, self.norm = NormGate(se), norm

    def __call__(self, block: nn.Module, args: Any) -> None:
        norm = getattr(block, self.norm)
        if self.gate not in norm._forward_hooks.values():
            norm.register_forward_hook(self.gate)


class InputGate:
    """Forward pre-hook of a module: rescales its first input with ``se``."""

    def __init__(self, se: SELayer) -> None:
        self.se = se

    def __call__(self, module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        return (self.se(args[0]),) + tuple(args[1:])


class OutputGate:
    """Forward hook of a module: rescales its output with ``se``."""

    def __init__(self, se: SELayer) -> None:
        self.se = se

    def __call__(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        return self.se(output)


def after(module: nn.Module, se: SELayer, holder: Optional[nn.Module] = None, name: str = 'se') -> None:
    """Rescale ``module``'s output with ``se``, held as ``holder.<name>`` (default ``module.<name>``).

    For SE after a whole unit (an Inception module) or after one layer of it (the depthwise
    conv of an inverted residual, the up-projection of an Inception-ResNet block).
    """
    (module if holder is None else holder).add_module(name, se)
    module.register_forward_hook(OutputGate(se))


def add_se_after(owner: str, units: Sequence[nn.Module], stages: Sequence[int], channels: Sequence[int],
                 se_cfg: Optional[Union[SEConfig, Mapping[str, Any]]], num_stages: int = 3,
                 targets: Optional[Sequence[nn.Module]] = None) -> None:
    """Give each of ``units`` an SE layer (``unit.se``) that rescales the output of its target.

    Args:
        owner: The model or backbone name, for error messages.
        units: The modules that hold the SE layers.
        stages: The se_cfg stage of each unit.
        channels: The channels SE sees in each unit.
        se_cfg: The ``se_cfg`` (``None``: the defaults).
        num_stages: Stages of per-stage se_cfg values.
        targets: The module whose output SE rescales, per unit (default: the unit itself).
    """
    config = SEConfig.build(se_cfg or {}, owner=owner, num_stages=num_stages)
    if config.position != 'standard':
        raise ValueError(f"{owner}: se_cfg 'position' must be 'standard' (SE after each unit); "
                         f'got {config.position!r}')
    for i, (unit, stage, width) in enumerate(zip(units, stages, channels)):
        se = config.make_layer(stage, width)
        if se is not None:
            after(unit if targets is None else targets[i], se, holder=unit)


def output_channels(model: nn.Module, modules: Sequence[nn.Module], *inputs: Any) -> List[int]:
    """The output channels of each of ``modules``, read from one forward of ``model`` (in eval mode)."""
    channels: Dict[nn.Module, int] = {}

    def record(module: nn.Module, args: Any, output: torch.Tensor) -> None:
        channels[module] = output.shape[1]

    handles = [m.register_forward_hook(record) for m in modules]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return [channels[m] for m in modules]


def gate_norm(block: nn.Module, norm: str, se: SELayer) -> None:
    """Rescale the output of ``block.<norm>`` with ``se``, lean, and keep it so across norm swaps."""
    keep = KeepNormGate(se, norm)
    block.register_forward_pre_hook(keep)
    keep(block, ())


def install(block: nn.Module, position: str, se: SELayer, layout: BlockLayout,
            name: Optional[str] = None) -> str:
    """Put ``se`` into ``block`` at ``position``; returns the name of its module in the block.

    ``se`` becomes ``block.<name>`` (default ``se_<position>``, e.g. ``se_pre``, ``se_3x3``),
    except at 'identity', where it is appended to the shortcut as ``downsample.se`` (a block
    without a projection gets ``downsample = Sequential(se=se)``), so that the shortcut's
    own keys (``downsample.0``, ``downsample.1``) stay as they are.

    Raises:
        ValueError: for an unknown position, or '3x3' on a block without a bottleneck.
    """
    if position not in POSITIONS:
        raise ValueError(f"se_cfg 'position' must be one of {POSITIONS}; got {position!r}")
    if position == 'identity':
        shortcut = getattr(block, layout.shortcut)
        if shortcut is None:
            setattr(block, layout.shortcut, nn.Sequential(OrderedDict(se=se)))
        elif isinstance(shortcut, nn.Sequential):
            shortcut.add_module('se', se)
        else:
            raise TypeError(f"se_cfg position 'identity' needs {type(block).__name__}.{layout.shortcut} "
                            f'to be None or an nn.Sequential; got {type(shortcut).__name__}')
        return f'{layout.shortcut}.se'
    se_channels(block, position, layout, type(block).__name__)  # '3x3' on a block without one fails here
    name = name or se_name(position)
    block.add_module(name, se)
    if position == 'pre':
        getattr(block, layout.first_conv).register_forward_pre_hook(InputGate(se))
    elif position == 'post':
        block.register_forward_hook(OutputGate(se))
    else:
        gate_norm(block, layout.last_norm if position == 'standard' else layout.spatial_norm, se)
        if position == 'standard':
            se.squeeze_from(getattr(block, layout.last_conv))
    return name
