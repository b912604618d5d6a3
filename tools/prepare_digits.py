"""Prepare scikit-learn's handwritten digits for the demo: an ImageFolder and CIFAR-10 batches.

    python tools/prepare_digits.py --out data/digits [--debug]
"""
import argparse
from typing import Optional, Sequence

from se_plugins.cli import ArgumentParser, InputError, non_negative_int, run
from se_plugins.data import prepare_digits
from se_plugins.data.digits import LayoutError
from se_plugins.io import check_output


def fraction(text: str) -> float:
    """An ``argparse`` type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f'must be a number > 0 and < 1; got {text!r}')
    return value


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse arguments and write the layouts (a no-op where they exist)."""
    parser = ArgumentParser(prog='prepare_digits.py', description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/digits', help='output folder')
    parser.add_argument('--no-cifar10', action='store_true',
                        help='skip the CIFAR-10 python batches')
    parser.add_argument('--val-fraction', type=fraction, default=0.2,
                        help='share of each digit held out for validation')
    parser.add_argument('--seed', type=non_negative_int, default=0, help='seed of the split')
    args = parser.parse_args(argv)
    if args.seed > 2**32 - 1:  # scikit-learn's random_state
        parser.error(f'argument --seed: must be an integer >= 0 and <= {2**32 - 1}; got {args.seed}')
    check_output(args.out, '--out', folder=True)
    try:
        paths = prepare_digits(args.out, cifar10=not args.no_cifar10,
                               val_fraction=args.val_fraction, seed=args.seed)
    except LayoutError as err:  # an incomplete or differently split layout in --out
        raise InputError(f'--out: {err}') from err
    except ValueError as err:  # a split without some digit
        raise InputError(f'--val-fraction {args.val_fraction}: {err}') from err
    for name, path in paths.items():
        print(f'{name}: {path}')


if __name__ == '__main__':
    run(main, 'prepare_digits.py', extra='demo')  # scikit-learn's digits, written with Pillow
