"""See what SE learned: every SE block's excitations on a dataset, per class, plotted (the paper's Fig. 6).

    python tools/analysis/excitation.py MODEL CHECKPOINT --data DIR --out-dir OUT
        [--classes 0 3 7 ...] [--max-images N] [--batch-size 50] [--img-size 32] [--crop-pct 1.0] [--debug]

MODEL is an MMPretrain config (``*.py``) or a timm model name; DIR an ImageFolder
(``DIR/<class>/<image>``) of the model's classes. OUT receives ``excitation_<block>.png``
(mean gate per channel for a few classes and for all images), ``summary.png`` (how
class-specific and how saturated each block is, across depth), ``overview.png`` (four
blocks from first to last, and the summary), ``stats.csv`` and ``stats.json``. A model, checkpoint,
folder or flag that cannot be used ends it with one line on stderr and exit status 2, before any file is written.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from se_plugins.analysis import ExcitationRecorder, ExcitationStats, block_label, classes_to_plot, se_layers
from se_plugins.analysis.loading import add_model_arguments, evaluate, load_from_args
from se_plugins.analysis.report import format_table, write_csv, write_json
from se_plugins.cli import ArgumentParser, InputError, about, run
from se_plugins.extras import required
from se_plugins.io import Undo, check_output

with required('excitation.py', 'analysis'):
    from se_plugins.analysis.plots import write_plots  # matplotlib

COLUMNS = ('block', 'channels', 'mean_gate', 'gate_std', 'class_spread', 'class_specificity', 'saturation',
           'frac_below_0.1', 'frac_above_0.9')


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = ArgumentParser(prog='excitation.py', description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    add = parser.add_argument
    add('--out-dir', required=True, help='folder for the plots and statistics')
    add('--classes', nargs='+', help='class folder names to plot (default: 4 spread over the classes)')
    return parser


def output_names(se_names: Iterable[str]) -> List[str]:
    """The files written into ``--out-dir`` for the SE layers ``se_names``.

    >>> output_names(['layer1.0.se'])
    ['excitation_layer1.0.png', 'summary.png', 'overview.png', 'stats.csv', 'stats.json']
    """
    return [*(f'excitation_{block_label(name)}.png' for name in se_names), 'summary.png', 'overview.png',
            'stats.csv', 'stats.json']


def check_names(out_dir: Path, names: Iterable[str]) -> None:
    """Raise InputError if a folder stands where a file of ``names`` is to be written in ``out_dir``."""
    for name in names:
        if (out_dir / name).is_dir():
            raise InputError(f'--out-dir {str(out_dir)!r}: {name} is a folder there, where this tool writes a file; '
                             'remove it or choose another --out-dir')


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the analysis; returns what ``stats.json`` holds."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_output(args.out_dir, '--out-dir', folder=True)
    loaded, dataset = load_from_args(args)
    try:
        classes = classes_to_plot(loaded.class_names, args.classes)
    except ValueError as err:  # --classes the data does not have
        parser.error(str(err))
    out_dir = Path(args.out_dir)
    check_names(out_dir, output_names(se_layers(loaded.model)))
    stats = ExcitationStats(len(loaded.class_names))
    start = time.perf_counter()
    with ExcitationRecorder(loaded.model) as recorder:
        metrics = evaluate(loaded, dataset, args.batch_size, 'excitations',
                           lambda labels: stats.update(recorder.pop(), labels))
    seconds = time.perf_counter() - start
    rows = stats.summaries()
    result = {
        'model': args.model, 'checkpoint': args.checkpoint, 'data': args.data, **metrics,
        'seconds': round(seconds, 2), 'classes': loaded.class_names,
        'images_per_class': stats.counts.long().tolist(), 'blocks': rows,
        'mean_gate_per_class': {row['block']: [None if v != v else v  # NaN: a class without images
                                               for v in stats.class_means(row['module']).mean(1).tolist()]
                                for row in rows},
    }
    with Undo(out_dir), about('--out-dir'):  # a file that cannot be written leaves none of the others
        written = write_plots(stats, loaded.class_names, classes, out_dir)
        written += [write_csv(out_dir / 'stats.csv', rows), write_json(out_dir / 'stats.json', result)]
    print(format_table(rows, COLUMNS))
    print(f"{metrics['images']} images, top-1 {metrics['top1']:.2f}%, {seconds:.1f} s; "
          f'wrote {len(written)} files to {out_dir}', file=sys.stderr)
    return result


if __name__ == '__main__':
    run(main, 'excitation.py', extra='analysis')
