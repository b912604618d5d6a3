"""Parameters and FLOPs of timm models and MMPretrain models/configs, with and without SE.

FLOPs are fvcore's ``FlopCountAnalysis``: one per multiply-add of convolutions, linear
layers and matmuls, plus norms and adaptive pooling, as fvcore counts them (so "FLOPs"
here are MACs, the unit of the paper's 3.86 GFLOPs and of timm's "GMACs"). Through
fvcore's own ``elementwise_flop_counter`` we also count SE's squeeze (``aten::mean``,
``aten::amax``: one per input element) and rescale (``aten::mul``: one per output
element). Activations and residual additions are counted by neither. The ``SE`` column
is the part of the total inside SE layers.

Examples:
    python tools/analysis/complexity.py resnet50 se_resnet50_plugin
    python tools/analysis/complexity.py se_resnet50_plugin --se-cfg "{'position': '3x3'}"
    python tools/analysis/complexity.py resnet50_8xb32_in1k --se-cfg "{}" --baseline \\
        --backbone-cfg "{'style': 'caffe'}"
"""
from __future__ import annotations

import argparse
import ast
import os.path as osp
import sys
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
import se_plugins  # noqa: E402  (registers the SE models and se_cfg)
from se_plugins import SELayer  # noqa: E402
from se_plugins.analysis.forward import FORWARD_ERRORS, size_error  # noqa: E402
from se_plugins.cli import ArgumentParser, InputError, positive_int, run  # noqa: E402
from se_plugins.extras import required  # noqa: E402

with required('complexity.py', 'analysis'), warnings.catch_warnings():
    # fvcore scripts a loss with torch.jit.script at import; torch's deprecation of it is not for our user.
    warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter

SE_OPS = {'aten::mean': elementwise_flop_counter(1, 0), 'aten::amax': elementwise_flop_counter(1, 0),
          'aten::mul': elementwise_flop_counter(0, 1), 'aten::mul_': elementwise_flop_counter(0, 1)}


def literal(text: str) -> Dict[str, Any]:
    """A Python dict literal from the command line, such as ``"{'ratio': 8}"``."""
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError) as err:
        raise argparse.ArgumentTypeError(f'not a Python literal ({err}); expected a dict such as '
                                         '"{\'ratio\': 8}"') from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f'expected a dict literal; got {text!r}')
    return value


def build(name: str, se_cfg: Optional[dict], backbone_cfg: Optional[dict],
          num_classes: int) -> Tuple[nn.Module, str]:
    """Build ``name``: a timm model, an MMPretrain model name or an mmengine config file.

    Returns:
        The model and the framework that built it.
    """
    import timm
    if timm.is_model(name):
        if backbone_cfg:
            raise InputError(f'--backbone-cfg is for MMPretrain models; {name!r} is a timm model')
        kwargs = {} if se_cfg is None else dict(se_cfg=se_cfg)
        try:
            return timm.create_model(name, num_classes=num_classes, **kwargs), 'timm'
        except (TypeError, ValueError) as err:  # se_cfg of a model without it, or a bad se_cfg key
            raise InputError(f'{name} --se-cfg {se_cfg}: {err}') from err
    from mmpretrain import get_model, list_models

    from se_plugins.engine.checks import building, read_config
    backbone = dict(backbone_cfg or {}, **({} if se_cfg is None else dict(se_cfg=se_cfg)))
    overrides = dict(backbone=backbone) if backbone else {}
    if name.endswith('.py'):
        model = read_config(name, ('model',))
    elif name in list_models():
        model = name
    else:
        raise InputError(f'{name!r}: neither a timm model, an MMPretrain model nor a config file (*.py)')
    given = [f'{flag} {value}' for flag, value in (('--backbone-cfg', backbone_cfg), ('--se-cfg', se_cfg))
             if value is not None]
    fix = 'fix the config, --backbone-cfg or --se-cfg' if name.endswith('.py') else 'fix --backbone-cfg or --se-cfg'
    with building(' '.join([name, *given]), fix=fix):  # names what the user gave, not only the model
        return get_model(model, **overrides), 'mmpretrain'


def se_types() -> Tuple[type, ...]:
    """SE layer classes: ours, timm's and MMPretrain's, where installed."""
    types = [SELayer]
    for module, name in (('timm.layers', 'SEModule'), ('mmpretrain.models.utils', 'SELayer')):
        try:
            types.append(getattr(__import__(module, fromlist=[name]), name))
        except ImportError:
            pass
    return tuple(types)


def count(model: nn.Module, input_size: int, name: str = '') -> Tuple[int, int, int]:
    """Parameters, FLOPs and the FLOPs inside SE layers, for one ``input_size`` image of the model ``name``."""
    model.eval()
    name = name or type(model).__name__
    try:  # the forward pass: an image too small for the strides, of a size the model refuses, or too large
        flops = FlopCountAnalysis(model, torch.zeros(1, 3, input_size, input_size))
        flops.set_op_handle(**SE_OPS).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module = flops.by_module()
    except FORWARD_ERRORS as err:
        raise size_error(err, f'--input-size {input_size}', input_size, name, model) from err
    se_names = [n for n, m in model.named_modules() if isinstance(m, se_types())]
    return sum(p.numel() for p in model.parameters()), flops.total(), sum(by_module[n] for n in se_names)


def table(rows: Sequence[Tuple[str, str, str, int, int, int]], input_size: int) -> str:
    """A Markdown table of the counted rows."""
    lines = [f'| model | framework | SE | params (M) | GFLOPs @{input_size} (fvcore) | of which SE (%) |',
             '|---|---|---|---:|---:|---:|']
    for name, framework, se, params, total, in_se in rows:
        lines.append(f'| {name} | {framework} | {se} | {params / 1e6:.2f} | {total / 1e9:.4g} | '
                     f'{100 * in_se / total:.2f} |')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Count every model and print the table; a bad input raises :class:`~se_plugins.cli.InputError`."""
    parser = ArgumentParser(prog='complexity.py', description=__doc__.split('\n\n')[0])
    parser.add_argument('models', nargs='+', help='timm model names, MMPretrain model names or config files')
    parser.add_argument('--input-size', type=positive_int, default=224)
    parser.add_argument('--num-classes', type=positive_int, default=1000, help='classes of timm models')
    parser.add_argument('--se-cfg', type=literal, default=None, help="se_cfg for every model, e.g. \"{'ratio': 8}\"")
    parser.add_argument('--backbone-cfg', type=literal, default=None,
                        help="MMPretrain backbone overrides, e.g. \"{'style': 'caffe'}\"")
    parser.add_argument('--baseline', action='store_true',
                        help='also count each MMPretrain model without --se-cfg (timm: name the plain model)')
    args = parser.parse_args(argv)
    torch.set_num_threads(min(4, torch.get_num_threads()))
    rows = []
    for name in args.models:
        variants = [args.se_cfg]
        if args.baseline and args.se_cfg is not None:
            variants.insert(0, None)
        for se_cfg in variants:
            model, framework = build(name, se_cfg, args.backbone_cfg, args.num_classes)
            label = name + (f' {args.backbone_cfg}' if args.backbone_cfg else '')
            has_se = any(isinstance(m, se_types()) for m in model.modules())
            se = 'no' if not has_se else ('default' if not se_cfg else str(se_cfg))
            rows.append((label, framework, se, *count(model, args.input_size, name)))
    out = table(rows, args.input_size)
    print(out)
    return out


if __name__ == '__main__':
    run(main, 'complexity.py', extra='analysis')
