"""Convert SE-ResNet checkpoints between timm (our se_*_plugin models) and MMPretrain.

    python tools/convert_checkpoint.py SRC DST --to timm|mmpretrain [--model NAME]

The source format is detected from its keys (timm, torchvision or MMPretrain; timm's
own seresnet*/regnety* keys included). ``--model`` names the timm model the weights are of:
anti-aliased ResNets (seresnetaa*, seresnextaa*) have the keys of a ResNet-D, so only their
name tells that MMPretrain has no counterpart. DST is written atomically: ``.safetensors`` or a
``torch.save`` file (for MMPretrain, ``{'state_dict': ..., 'meta': ...}`` as mmengine saves).
"""
import argparse
import sys

from se_plugins.convert import FORMATS, CheckpointError, convert, detect_format, refuse_no_counterpart
from se_plugins.io import load_state_dict, save_atomic


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='source checkpoint (.pth, .pt or .safetensors)')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument('--to', required=True, choices=FORMATS, help='target framework layout')
    parser.add_argument('--model', help='the timm model (or se_*_plugin twin) SRC holds, e.g. seresnet152d')
    args = parser.parse_args(argv)
    try:
        if args.model and args.to == 'mmpretrain':
            refuse_no_counterpart(args.model)
        state_dict = load_state_dict(args.src)
        source = detect_format(state_dict)
        converted = convert(state_dict, args.to)
    except (CheckpointError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    wrapped = args.to == 'mmpretrain' and not args.dst.endswith('.safetensors')
    save_atomic({'state_dict': converted, 'meta': {'converted_from': source}} if wrapped else converted, args.dst)
    print(f'{source} -> {args.to}: {len(converted)} tensors written to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
