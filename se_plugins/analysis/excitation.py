"""What SE layers excite: record their gates, aggregate them per class, switch them off.

Everything works on any ``nn.Module`` that contains :class:`~se_plugins.layers.SELayer` s
(a timm model, an MMPretrain classifier, your own network) through forward hooks on the
layer that produces each gate (``conv2``/``fc2``, whose output is the ``(N, C)`` gate):
that output is the gate itself on every path an ``SELayer`` takes (the plain and the
memory-lean rescale, ``return_weight``).

Examples:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 16, 3), SELayer(16, squeeze_channels=4))
    >>> with ExcitationRecorder(model) as recorder:
    ...     _ = model(torch.randn(2, 3, 8, 8))
    >>> {name: tuple(gate.shape) for name, gate in recorder.pop().items()}
    {'1': (2, 16)}
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import torch
from torch import nn

from ..layers import SELayer

__all__ = ['ExcitationRecorder', 'ExcitationStats', 'block_label', 'classes_to_plot', 'foreign_se',
           'identity_gates', 'se_layers', 'stage_of']

SATURATED = 0.1  # a gate below 0.1 or above 0.9 counts as saturated
# SE modules of the frameworks themselves, whose gates the hooks here do not find: (module prefix, class) -> name.
FOREIGN_SE = {('timm.', 'SEModule'): "timm's SEModule", ('timm.', 'EffectiveSEModule'): "timm's EffectiveSEModule",
              ('timm.', 'SqueezeExcite'): "timm's SqueezeExcite", ('mmpretrain.', 'SELayer'): "MMPretrain's SELayer"}


def foreign_se(model: nn.Module) -> Optional[str]:
    """The name of the first SE module of timm's or MMPretrain's own in ``model``, or None.

    >>> foreign_se(nn.Sequential(nn.Conv2d(3, 8, 1), SELayer(8)))  # ours
    """
    for module in model.modules():
        kind = type(module)
        for (prefix, name), label in FOREIGN_SE.items():
            if kind.__name__ == name and kind.__module__.startswith(prefix):
                return label
    return None


def se_layers(model: nn.Module) -> Dict[str, SELayer]:
    """The ``SELayer`` s of ``model`` by module name, in forward (registration) order."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, SELayer)}
    if not layers:
        theirs = foreign_se(model)
        if theirs is not None:
            raise ValueError(f"{type(model).__name__} has no SELayer of se_plugins: its SE is {theirs}, which "
                             'is not recorded; convert the model and its checkpoint with '
                             'tools/convert_checkpoint.py (an se_plugins model has an SELayer per block)')
        raise ValueError(f'{type(model).__name__} has no SELayer: nothing to analyse '
                         '(se_plugins models have one per block; check se_cfg)')
    return layers


def _select(model: nn.Module, names: Optional[Iterable[str]], owner: str) -> Dict[str, SELayer]:
    """The SE layers ``names`` of ``model`` (default all); an unknown name is a ``ValueError``."""
    layers = se_layers(model)
    names = list(layers) if names is None else list(names)
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise ValueError(f'{owner}: no SELayer named {unknown}; SE layers are {list(layers)}')
    return {n: layers[n] for n in names}


def _gate_layer(se: SELayer) -> nn.Module:
    """The submodule whose output is the ``(N, C)`` gate."""
    return se.conv2 if se.conv2 is not None else se.fc2


def stage_of(name: str) -> str:
    """The stage a block's SE layer belongs to: its name up to the block index.

    >>> stage_of('layer3.1.se'), stage_of('backbone.layer4.0.se_layer'), stage_of('se')
    ('layer3', 'backbone.layer4', 'se')
    """
    parts = name.split('.')
    index = max((i for i, part in enumerate(parts) if part.isdigit()), default=None)
    return '.'.join(parts[:index]) if index else name


def block_label(name: str) -> str:
    """A short name for plots and files: no ``backbone.`` prefix, no SE suffix.

    >>> block_label('layer3.1.se'), block_label('backbone.layer4.0.se_layer')
    ('layer3.1', 'layer4.0')
    """
    parts = name.split('.')
    if len(parts) > 1 and parts[0] == 'backbone':
        parts = parts[1:]
    if len(parts) > 1 and not parts[-1].isdigit():
        parts = parts[:-1]
    return '.'.join(parts)


class ExcitationRecorder(contextlib.AbstractContextManager):
    """Context manager that keeps the gate of every SE layer of ``model`` in each forward.

    Args:
        model: A module containing ``SELayer`` s.
        names: Record only these SE layers (module names); default all.
    """

    def __init__(self, model: nn.Module, names: Optional[Iterable[str]] = None) -> None:
        self.layers = _select(model, names, 'ExcitationRecorder')
        self.gates: Dict[str, List[torch.Tensor]] = {n: [] for n in self.layers}
        self._handles: List[Any] = []

    def _hook(self, name: str):
        def record(module: nn.Module, args: Any, gate: torch.Tensor) -> None:
            self.gates[name].append(gate.detach().flatten(1).float().cpu())
        return record

    def __enter__(self) -> 'ExcitationRecorder':
        self._handles = [_gate_layer(se).register_forward_hook(self._hook(n)) for n, se in self.layers.items()]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def pop(self) -> Dict[str, torch.Tensor]:
        """The gates recorded since the last ``pop``: ``(N, C)`` per layer, forwards concatenated."""
        gates = {n: torch.cat(g) for n, g in self.gates.items() if g}
        self.gates = {n: [] for n in self.gates}
        return gates


@contextlib.contextmanager
def identity_gates(model: nn.Module, names: Optional[Iterable[str]] = None) -> Iterator[List[str]]:
    """Inside the ``with`` block, the SE layers ``names`` (default all) scale by 1: SE is off.

    Yields the names switched off. A gate of ones makes ``x * gate == x``, the network
    without those SE layers; the excitation still runs (its cost, not its effect, remains).
    """
    layers = _select(model, names, 'identity_gates')
    handles = [_gate_layer(se).register_forward_hook(lambda m, a, gate: torch.ones_like(gate))
               for se in layers.values()]
    try:
        yield list(layers)
    finally:
        for handle in handles:
            handle.remove()


class ExcitationStats:
    """Running per-class sums of gates, and the statistics of the paper's Fig. 6 from them.

    Per block it keeps, per class and channel, the count, sum and sum of squares of
    the gates, and the number of saturated gates; memory is ``O(classes x channels)``.

    Args:
        num_classes: Labels are ``0 .. num_classes - 1``.
    """

    def __init__(self, num_classes: int) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"ExcitationStats: 'num_classes' must be a positive int; got {num_classes!r}")
        self.num_classes = num_classes
        self.counts = torch.zeros(num_classes, dtype=torch.float64)
        self.sums: Dict[str, torch.Tensor] = {}
        self.squares: Dict[str, torch.Tensor] = {}
        self.low: Dict[str, float] = {}
        self.high: Dict[str, float] = {}
        self.deviation: Dict[str, float] = {}  # sum of |2 gate - 1|

    def update(self, gates: Dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        """Add one batch: ``gates[name]`` is ``(N, C)``, ``labels`` is ``(N,)``."""
        labels = labels.long().cpu()
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f'ExcitationStats: labels must be in [0, {self.num_classes}); '
                             f'got {labels.min().item()}..{labels.max().item()}')
        onehot = nn.functional.one_hot(labels, self.num_classes).double()  # (N, K)
        self.counts += onehot.sum(0)
        for name, gate in gates.items():
            if gate.shape[0] != labels.shape[0]:
                raise ValueError(f'ExcitationStats: {name} has {gate.shape[0]} gates for {labels.shape[0]} labels')
            g = gate.double()
            if name not in self.sums:
                self.sums[name] = torch.zeros(self.num_classes, g.shape[1], dtype=torch.float64)
                self.squares[name] = torch.zeros_like(self.sums[name])
                self.low[name] = self.high[name] = self.deviation[name] = 0.0
            self.sums[name] += onehot.T @ g
            self.squares[name] += onehot.T @ g.square()
            self.low[name] += (g < SATURATED).sum().item()
            self.high[name] += (g > 1 - SATURATED).sum().item()
            self.deviation[name] += (2 * g - 1).abs().sum().item()

    @property
    def names(self) -> List[str]:
        """The SE layers seen, in order."""
        return list(self.sums)

    def class_means(self, name: str) -> torch.Tensor:
        """``(K, C)`` mean gate per class and channel; NaN for a class without images."""
        return self.sums[name] / self.counts[:, None]

    def mean(self, name: str) -> torch.Tensor:
        """``(C,)`` mean gate per channel over all images."""
        return self.sums[name].sum(0) / self.counts.sum()

    def summary(self, name: str) -> Dict[str, Any]:
        """Statistics of one SE layer.

        - ``mean_gate``: the mean of all its gates.
        - ``gate_std``: how much a channel's gate varies from image to image (std over
          images, averaged over channels).
        - ``class_spread``: how much it varies from class to class (std of the class
          means, averaged over channels): the paper's "class-specific" in absolute terms.
        - ``class_specificity``: variance between class means / total variance, over all
          channels: the share of the variation that the class explains (0: every class
          excites alike; 1: the class alone decides the gate), however small ``gate_std``.
        - ``saturation``: the mean of ``|2 gate - 1|`` (0: all gates 0.5; 1: all 0 or 1).
        - ``frac_below_0.1``, ``frac_above_0.9``: the fractions of saturated gates.
        """
        n = self.counts.sum()
        present = self.counts > 0
        sums, squares = self.sums[name], self.squares[name]
        channels = sums.shape[1]
        overall = sums.sum(0) / n
        total = (squares.sum(0) / n - overall.square()).clamp_min(0)  # per channel
        class_means = sums[present] / self.counts[present, None]
        between = (self.counts[present, None] * (class_means - overall).square()).sum(0) / n
        elements = n * channels
        return {
            'block': block_label(name), 'module': name, 'stage': stage_of(name), 'channels': channels,
            'images': int(n), 'mean_gate': (overall.mean()).item(),
            'gate_std': total.sqrt().mean().item(),
            'class_spread': class_means.std(0, unbiased=False).mean().item(),
            'class_specificity': (between.sum() / total.sum()).item() if total.sum() > 0 else 0.0,
            'saturation': self.deviation[name] / elements.item(),
            'frac_below_0.1': self.low[name] / elements.item(),
            'frac_above_0.9': self.high[name] / elements.item(),
        }

    def summaries(self) -> List[Dict[str, Any]]:
        """``summary`` of every SE layer, in order."""
        return [self.summary(name) for name in self.names]


def classes_to_plot(class_names: Sequence[str], wanted: Optional[Sequence[str]] = None,
                    count: int = 4) -> List[int]:
    """Indices of the classes to draw: ``wanted`` by name, else ``count`` spread evenly."""
    if wanted:
        missing = [c for c in wanted if c not in class_names]
        if missing:
            raise ValueError(f'--classes: no class named {missing}; classes are {list(class_names)}')
        return [list(class_names).index(c) for c in wanted]
    k = len(class_names)
    if k <= count:
        return list(range(k))
    return sorted({round(i * (k - 1) / (count - 1)) for i in range(count)})
