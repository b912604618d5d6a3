"""Convert SE-ResNet checkpoints between timm (our se_*_plugin models) and MMPretrain.

    python tools/convert_checkpoint.py SRC DST --to timm|mmpretrain [--model NAME] [--debug]

The source format is detected from its keys (timm, torchvision or MMPretrain; timm's
own seresnet*/regnety* keys included). ``--model`` names the timm model the weights are of:
anti-aliased ResNets (seresnetaa*, seresnextaa*) have the keys of a ResNet-D, so only their
name tells that MMPretrain has no counterpart. DST is written atomically: ``.safetensors`` or a
``torch.save`` file (for MMPretrain, ``{'state_dict': ..., 'meta': ...}`` as mmengine saves).
A checkpoint that cannot be read or converted is one line on stderr and exit status 2.
"""
import os
from typing import Optional, Sequence

from se_plugins.cli import ArgumentParser, InputError, about, run
from se_plugins.convert import FORMATS, convert, detect_format, refuse_no_counterpart
from se_plugins.io import check_output, load_state_dict, save_atomic


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Convert SRC and write DST; a bad input raises :class:`~se_plugins.cli.InputError`."""
    parser = ArgumentParser(prog='convert_checkpoint.py', description=__doc__.splitlines()[0])
    parser.add_argument('src', help='source checkpoint (.pth, .pt or .safetensors)')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument('--to', required=True, choices=FORMATS, help='target framework layout')
    parser.add_argument('--model', help='the timm model (or se_*_plugin twin) SRC holds, e.g. seresnet152d')
    args = parser.parse_args(argv)
    check_output(args.dst, 'DST')
    if os.path.exists(args.dst) and os.path.exists(args.src) and os.path.samefile(args.src, args.dst):
        raise InputError(f'DST {args.dst!r}: is SRC; write the converted weights to another file')
    if args.model:
        check_model_name(args.model)
    if args.model and args.to == 'mmpretrain':
        with about(f'--model {args.model}'):
            refuse_no_counterpart(args.model)
    state_dict = load_state_dict(args.src)
    with about(args.src):
        source = detect_format(state_dict)
        converted = convert(state_dict, args.to)
    wrapped = args.to == 'mmpretrain' and not args.dst.endswith('.safetensors')
    save_atomic({'state_dict': converted, 'meta': {'converted_from': source}} if wrapped else converted, args.dst)
    print(f'{source} -> {args.to}: {len(converted)} tensors written to {args.dst}')


def check_model_name(name: str) -> None:
    """Raise InputError if timm (where installed) has no model ``name``."""
    try:
        import timm
    except ImportError:
        return
    import se_plugins  # noqa: F401  (the se_*_plugin twins)
    if not timm.is_model(name):
        raise InputError(f"--model {name!r}: unknown to timm; give the timm model SRC holds, e.g. seresnet152d "
                         "(timm.list_models('se*'))")


if __name__ == '__main__':
    run(main, 'convert_checkpoint.py')
