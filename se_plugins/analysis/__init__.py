"""See what SE learned: record excitations, aggregate them per class, switch SE off by stage.

:mod:`.excitation` is plain PyTorch and works on any module with ``SELayer`` s;
:mod:`.plots` (matplotlib), :mod:`.loading` (timm / MMPretrain, ImageFolder data) and
:mod:`.report` (CSV, JSON, tables) serve ``tools/analysis/excitation.py`` and ``ablate.py``;
:mod:`.forward` words a forward pass's failure on an input size for ``complexity.py`` and ``benchmark.py``.
"""
from .excitation import (ExcitationRecorder, ExcitationStats, block_label, classes_to_plot, foreign_se,
                         identity_gates, se_layers, stage_of)

__all__ = ['ExcitationRecorder', 'ExcitationStats', 'block_label', 'classes_to_plot', 'foreign_se',
           'identity_gates', 'se_layers', 'stage_of']
