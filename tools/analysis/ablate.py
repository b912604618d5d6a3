"""Switch SE off stage by stage (gate = 1, identity scaling) and report the accuracy change.

    python tools/analysis/ablate.py MODEL CHECKPOINT --data DIR [--stages layer3 layer4]
        [--out FILE.csv] [--max-images N] [--batch-size 50] [--img-size 32] [--crop-pct 1.0] [--debug]

MODEL is an MMPretrain config (``*.py``) or a timm model name; DIR an ImageFolder of its
classes. The full model is evaluated, then once per stage with that stage's SE layers
scaling by 1, then with all of them off; "loss" (mean cross-entropy) shows changes too
small to flip a prediction. "se params" is what dropping a stage's SE saves
(the paper drops the last stage's for ~4% fewer parameters at a <0.1% top-5 cost).
A model, checkpoint, folder or flag that cannot be used ends it with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional, Sequence

from se_plugins.analysis import identity_gates, se_layers, stage_of
from se_plugins.analysis.loading import add_model_arguments, evaluate, load_from_args
from se_plugins.analysis.report import format_table, write_csv
from se_plugins.cli import ArgumentParser, InputError, about, run
from se_plugins.io import check_output

COLUMNS = ('se_off', 'se_layers', 'se_params', 'se_params_pct', 'top1', 'top1_change', 'top5', 'top5_change',
           'loss', 'loss_change')


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = ArgumentParser(prog='ablate.py', description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    add = parser.add_argument
    add('--stages', nargs='+', help='stages to switch off one at a time (default: every stage with SE)')
    add('--out', help='CSV file for the table')
    return parser


def ablations(names: Sequence[str], stages: Optional[Sequence[str]]) -> Dict[str, List[str]]:
    """``{label: SE layer names switched off}``: none, each stage, all.

    >>> runs = ablations(['layer1.0.se', 'layer1.1.se', 'layer2.0.se'], None)
    >>> {label: len(names) for label, names in runs.items()}
    {'none': 0, 'layer1': 2, 'layer2': 1, 'all': 3}
    >>> ablations(['backbone.layer1.0.se_layer', 'backbone.layer2.0.se_layer'], ['layer2'])['layer2']
    ['backbone.layer2.0.se_layer']
    """
    by_stage: Dict[str, List[str]] = {}
    for name in names:
        by_stage.setdefault(stage_of(name), []).append(name)
    if stages:
        short = {stage.removeprefix('backbone.'): stage for stage in by_stage}
        unknown = [s for s in stages if s not in by_stage and s not in short]
        if unknown:
            raise InputError(f'--stages: no stage {unknown}; stages with SE are {list(short)}')
        by_stage = {s: by_stage[short.get(s, s)] for s in stages}
    return {'none': [], **by_stage, 'all': list(names)}


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """Evaluate every ablation; returns the table's rows."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is not None:
        check_output(args.out, '--out')
    loaded, dataset = load_from_args(args)
    layers = se_layers(loaded.model)
    runs = ablations(list(layers), args.stages)
    total = sum(p.numel() for p in loaded.model.parameters())
    rows: List[Dict[str, Any]] = []
    for label, names in runs.items():
        label = label.removeprefix('backbone.')
        with identity_gates(loaded.model, names):
            metrics = evaluate(loaded, dataset, args.batch_size, f'SE off: {label}')
        params = sum(p.numel() for n in names for p in layers[n].parameters())
        base = rows[0] if rows else metrics
        rows.append({'se_off': label, 'se_layers': len(names), 'se_params': params,
                     'se_params_pct': 100.0 * params / total, 'images': metrics['images'],
                     **{key: metrics[key] for key in ('top1', 'top5', 'loss')},
                     **{f'{key}_change': metrics[key] - base[key] for key in ('top1', 'top5', 'loss')}})
    print(format_table(rows, COLUMNS))
    if args.out:
        with about('--out'):
            write_csv(args.out, rows)
    return rows


if __name__ == '__main__':
    run(main, 'ablate.py', extra='analysis')
