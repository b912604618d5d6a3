"""Where SE goes: the paper's integration strategies, as attributes of SE-capable blocks.

Hu et al. (TPAMI 2019, Sec. 6.5, Fig. 5) compare five places for SE in a residual block.
Each adapter gives its framework's residual blocks an SE-capable subclass whose own
``forward`` calls SE at each place (the attribute is ``None`` where se_cfg puts none), and
hands that subclass to the framework's builder. SE is therefore an ordinary submodule:
in the module tree, in the block's forward order, in FX, TorchScript and exported graphs.

============  ==============================================  ======================  =============
position      SE rescales                                     attribute               channels
============  ==============================================  ======================  =============
'standard'    the residual branch, after its last norm,       ``se`` (timm),          out
              before the addition                             ``se_layer`` (MMPre.)
'pre'         the residual branch's input (the shortcut       ``se_pre``              in
              still gets the block input unchanged)
'post'        the block output, after the addition and        ``se_post``             out
              its activation
'identity'    the shortcut, parallel to the residual branch   ``downsample.se``: the  out
              (after the projection where there is one)       shortcut's last module
'3x3'         the output of the spatial 3x3 conv's norm,      ``se_3x3``              bottleneck
              before its activation (bottleneck blocks only)                          width
'3x3_act'     the output of the spatial 3x3 conv after its    ``se_3x3_act`` (timm    bottleneck
              norm and activation (bottleneck blocks only):   RegNet: ``se``; timm    width
              where RegNetY and timm's ByobNet put SE         ByobNet: ``attn``)
============  ==============================================  ======================  =============

The attribute names are the defaults; a block layout renames them where the framework's own
SE model has its SE (so that its checkpoints keep their keys).

After a norm ('standard', '3x3') the block calls ``se(norm(z), norm_input=z, norm=norm)``,
which lets :class:`~se_plugins.layers.SELayer` take its memory-lean rescale where that is
exact; as keywords, they stay out of the positional ``args`` that SE's forward hooks see.

Units without a residual branch (Inception modules, a depthwise conv) get SE on their
output through :func:`rescale_output`, which gives the unit an SE-applying subclass of
its own type (from a table the adapter writes, one subclass per unit type).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Tuple

from torch import nn

from .config import POSITIONS, SEConfig
from .layers.se_layer import SELayer

# Inception-v3 (timm and MMPretrain name its modules alike): module -> (se_cfg stage = grid size
# 35, 17 or 8, output channels), so that SE layers are built without a probe forward.
INCEPTION_V3_UNITS = {'Mixed_5b': (0, 256), 'Mixed_5c': (0, 288), 'Mixed_5d': (0, 288), 'Mixed_6a': (0, 768),
                      'Mixed_6b': (1, 768), 'Mixed_6c': (1, 768), 'Mixed_6d': (1, 768), 'Mixed_6e': (1, 768),
                      'Mixed_7a': (1, 1280), 'Mixed_7b': (2, 2048), 'Mixed_7c': (2, 2048)}


@dataclass(frozen=True)
class BlockLayout:
    """The attribute names of a residual block's parts, as one framework names them.

    Attributes:
        standard: The attribute that holds SE at the 'standard' position.
        first_conv: The residual branch's first conv (its input is the block input); the
            conv names are submodule paths (``'conv1.conv'`` in a ``ConvNormAct``).
        spatial_conv: The bottleneck's 3x3 conv; ``None`` for blocks without one.
        last_conv: The residual branch's last conv.
        shortcut: The shortcut projection (``None`` on blocks with an identity shortcut).
        renamed: Position -> attribute, where it is not ``se_<position>``.
        positions: The positions the block has (a block whose 3x3 norm and activation are one
            module has no '3x3'; one whose shortcut is not a ``Sequential`` has no 'identity').
    """

    standard: str
    first_conv: str = 'conv1'
    spatial_conv: Optional[str] = 'conv2'
    last_conv: str = 'conv3'
    shortcut: str = 'downsample'
    renamed: Mapping[str, str] = field(default_factory=dict)
    positions: Tuple[str, ...] = POSITIONS

    def attribute(self, position: str) -> str:
        """The attribute that holds SE at ``position`` (not 'identity', which is in the shortcut)."""
        if position == 'standard':
            return self.standard
        return self.renamed.get(position, f'se_{position}')

    def attributes(self) -> Tuple[str, ...]:
        """Every SE attribute of the block (all ``None`` until a plan installs one)."""
        return tuple(self.attribute(p) for p in self.positions if p != 'identity')


def se_channels(block: nn.Module, position: str, layout: BlockLayout, owner: str) -> int:
    """The channels SE sees at ``position`` of ``block`` (a block of model ``owner``).

    Raises:
        ValueError: for '3x3' on a block without a bottleneck, naming ``owner``.
    """
    if position == 'pre':
        return block.get_submodule(layout.first_conv).in_channels
    if position in ('3x3', '3x3_act'):
        if layout.spatial_conv is None:
            raise ValueError(f"{owner}: se_cfg position {position!r} needs bottleneck blocks (a 1x1-3x3-1x1 "
                             f'residual branch); {type(block).__name__} has none')
        return block.get_submodule(layout.spatial_conv).out_channels
    return block.get_submodule(layout.last_conv).out_channels


def factory_of(module: nn.Module) -> dict:
    """``device``/``dtype`` keywords that make a new SE layer match ``module``'s first parameter."""
    weight = next(module.parameters(), None)
    return {} if weight is None else dict(device=weight.device, dtype=weight.dtype)


class SEPlan:
    """``se_cfg`` for the residual blocks of one network: the SE layers each block gets.

    SE-capable blocks take it as a constructor argument (``se_plan``) and call
    :meth:`install` at the end of their ``__init__``.

    Args:
        config: The validated ``se_cfg``.
        stage_channels: Block out-channels of each stage, in order: they tell a block's stage.
        owner: The model or backbone name, for error messages.
        first_stage: The se_cfg stage of ``stage_channels[0]`` (a plan for one later stage).
    """

    def __init__(self, config: SEConfig, stage_channels: Sequence[int], owner: str, first_stage: int = 0) -> None:
        if len(set(stage_channels)) != len(stage_channels):
            raise ValueError(f'{owner}: stage out-channels must differ to identify stages; '
                             f'got {tuple(stage_channels)}')
        self.config, self.owner = config, owner
        self.stage_of: Mapping[int, int] = {channels: first_stage + i for i, channels in enumerate(stage_channels)}

    def stage(self, channels: int) -> int:
        """The stage whose blocks have ``channels`` out-channels."""
        if channels not in self.stage_of:
            raise ValueError(f'{self.owner}: no stage has {channels} out-channels; '
                             f'stages have {tuple(self.stage_of)}')
        return self.stage_of[channels]

    def install(self, block: nn.Module, layout: BlockLayout) -> None:
        """Give ``block`` the SE layer se_cfg puts at its position (none in disabled stages).

        The layer becomes the layout's attribute for the position (``se_pre``, ``se_3x3``,
        ``se_post`` ... by default); the block sets them all to ``None`` first. 'identity' SE is
        appended to the shortcut as ``downsample.se`` (a block without a projection gets
        ``downsample = Sequential(se=se)``), so the shortcut's own keys stay as they are.
        """
        position = self.config.position
        if position not in layout.positions:
            raise ValueError(f'{self.owner}: se_cfg position {position!r} does not exist in '
                             f'{type(block).__name__} blocks; their positions: {layout.positions}')
        stage = self.stage(block.get_submodule(layout.last_conv).out_channels)
        channels = se_channels(block, position, layout, self.owner)  # '3x3' on a basic block fails here
        block_input = block.get_submodule(layout.first_conv).in_channels
        se = self.config.make_layer(stage, channels, block_input, **factory_of(block))
        if se is None:
            return
        if position == 'identity':
            shortcut = getattr(block, layout.shortcut)
            if shortcut is None:
                setattr(block, layout.shortcut, nn.Sequential(OrderedDict(se=se)))
            elif isinstance(shortcut, nn.Sequential):
                shortcut.add_module('se', se)
            else:
                raise TypeError(f"{self.owner}: se_cfg position 'identity' needs {type(block).__name__}."
                                f'{layout.shortcut} to be None or an nn.Sequential; got {type(shortcut).__name__}')
        else:
            setattr(block, layout.attribute(position), se)


def become_se_capable(block: nn.Module, cls: type, plan: SEPlan) -> None:
    """Make the built ``block`` an instance of ``cls``, its SE-capable subclass, with ``plan``'s SE.

    For blocks that a framework's constructor builds from a class it names directly (no block
    argument): ``cls`` adds no state, only a ``forward`` that calls the SE attributes of its
    ``layout``, which start as ``None``; then ``plan`` installs the SE layer it puts there.
    """
    if not issubclass(cls, type(block)):
        raise TypeError(f'{cls.__name__} is not an SE-capable subclass of {type(block).__name__}')
    block.__class__ = cls
    for name in cls.layout.attributes():
        setattr(block, name, None)
    plan.install(block, cls.layout)


def rescale_output(unit: nn.Module, se: SELayer, se_types: Mapping[type, type]) -> None:
    """Make ``unit`` apply ``se`` to its output, held as ``unit.se``.

    ``se_types`` maps the unit's type to its SE subclass, whose ``forward`` is the unit's
    with ``self.se`` applied to the result; the unit becomes an instance of it (same state,
    one more submodule), so SE shows in the module tree and in traced graphs.

    Raises:
        TypeError: if ``se_types`` has no subclass for the unit's type.
    """
    cls = se_types.get(type(unit))
    if cls is None:
        raise TypeError(f'no SE subclass of {type(unit).__name__}; known: {[t.__name__ for t in se_types]}')
    unit.__class__ = cls
    unit.se = se


def add_se_after(owner: str, units: Sequence[nn.Module], stages: Sequence[int], channels: Sequence[int],
                 se_cfg: Any, se_types: Mapping[type, type], num_stages: int = 3) -> None:
    """SE on the output of each of ``units`` (Inception modules, depthwise convs), as ``se_cfg`` says.

    Args:
        owner: The model or backbone name, for error messages.
        units: The modules whose outputs SE rescales.
        stages: The se_cfg stage of each unit.
        channels: The output channels of each unit.
        se_cfg: The ``se_cfg`` (``None``: the defaults).
        se_types: Unit type -> its SE subclass (see :func:`rescale_output`).
        num_stages: Stages of per-stage se_cfg values.
    """
    config = SEConfig.build(se_cfg or {}, owner=owner, num_stages=num_stages)
    if config.position != 'standard':
        raise ValueError(f"{owner}: se_cfg 'position' must be 'standard' (SE after each unit); "
                         f'got {config.position!r}')
    for unit, stage, width in zip(units, stages, channels):
        se = config.make_layer(stage, width, **factory_of(unit))
        if se is not None:
            rescale_output(unit, se, se_types)
