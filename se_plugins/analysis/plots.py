"""Figures of :class:`~se_plugins.analysis.excitation.ExcitationStats` (matplotlib, no display)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

from matplotlib.axes import Axes
from matplotlib.figure import Figure  # pyplot-free: no backend, no global figure state

from .excitation import ExcitationStats, block_label
from .report import write_atomic

__all__ = ['draw_excitation', 'draw_summary', 'overview_figure', 'save_figure', 'write_plots']

PathLike = Union[str, Path]


def save_figure(fig: Figure, path: PathLike, dpi: int = 100) -> Path:
    """Save ``fig`` as PNG atomically."""
    return write_atomic(path, lambda f: fig.savefig(f, format='png', dpi=dpi, bbox_inches='tight'))


def draw_excitation(ax: Axes, stats: ExcitationStats, name: str, class_names: Sequence[str],
                    classes: Sequence[int]) -> None:
    """The paper's Fig. 6 panel: mean gate per channel for ``classes`` and for all images."""
    means = stats.class_means(name)
    for k in classes:
        ax.plot(means[k].numpy(), lw=0.9, alpha=0.85, label=str(class_names[k]))
    ax.plot(stats.mean(name).numpy(), color='black', lw=1.2, ls='--', label='all')
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, means.shape[1] - 1)
    ax.set_xlabel('channel index')
    ax.set_ylabel('mean excitation')
    ax.set_title(block_label(name))


def draw_summary(axes: Sequence[Axes], rows: List[Dict[str, Any]]) -> None:
    """Across depth: how gates vary, the share of that due to the class, how saturated they are (3 axes)."""
    x = range(len(rows))
    series = [
        ('How much gates vary', [('gate_std', 'o-', 'std over images'), ('class_spread', 's--', 'std of class means')]),
        ('Share due to the class', [('class_specificity', 'o-', 'between-class / total variance')]),
        ('How saturated', [('saturation', 'o-', 'mean |2 gate - 1|'), ('frac_above_0.9', '^--', 'gates > 0.9'),
                           ('frac_below_0.1', 'v--', 'gates < 0.1'), ('mean_gate', 'k:', 'mean gate')]),
    ]
    for ax, (title, lines) in zip(axes, series):
        for key, style, label in lines:
            ax.plot(x, [row[key] for row in rows], style, label=label)
        ax.set_title(title)
        ax.set_xticks(list(x), [row['block'] for row in rows], rotation=45, ha='right')
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    axes[1].set_ylim(0, 1.02)


def overview_figure(stats: ExcitationStats, rows: List[Dict[str, Any]], class_names: Sequence[str],
                    classes: Sequence[int], blocks: Sequence[str]) -> Figure:
    """One figure: the excitations of ``blocks`` (e.g. first to last) above the summary across depth."""
    fig = Figure(figsize=(4 * len(blocks), 7.2))
    grid = fig.add_gridspec(2, 3 * len(blocks))
    width = len(blocks)  # three summary panels share the row
    for i, name in enumerate(blocks):
        ax = fig.add_subplot(grid[0, 3 * i:3 * i + 3])
        draw_excitation(ax, stats, name, class_names, classes)
        if i == 0:
            ax.legend(fontsize='small', title='class', ncol=2)
    draw_summary([fig.add_subplot(grid[1, width * i:width * i + width]) for i in range(3)], rows)
    fig.tight_layout()
    return fig


def write_plots(stats: ExcitationStats, class_names: Sequence[str], classes: Sequence[int],
                out_dir: PathLike) -> List[Path]:
    """``excitation_<block>.png`` per SE layer, ``summary.png`` and ``overview.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    written = []
    for name in stats.names:
        fig = Figure(figsize=(6, 3.4))
        ax = fig.subplots()
        draw_excitation(ax, stats, name, class_names, classes)
        ax.legend(fontsize='small', title='class', ncol=2)
        written.append(save_figure(fig, out_dir / f'excitation_{block_label(name)}.png'))
    rows = stats.summaries()
    fig = Figure(figsize=(15, 3.8))
    axes = fig.subplots(1, 3)
    draw_summary(axes, rows)
    fig.tight_layout()
    written.append(save_figure(fig, out_dir / 'summary.png'))
    names = stats.names
    picks = sorted({0, len(names) // 2, len(names) - 2, len(names) - 1} - {-1})
    fig = overview_figure(stats, rows, class_names, classes, [names[i] for i in picks])
    written.append(save_figure(fig, out_dir / 'overview.png', dpi=72))
    return written
