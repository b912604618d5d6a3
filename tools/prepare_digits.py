"""Prepare scikit-learn's handwritten digits for the demo: an ImageFolder and CIFAR-10 batches.

    python tools/prepare_digits.py --out data/digits
"""
import argparse
from typing import Optional, Sequence

from se_plugins.data import prepare_digits
from se_plugins.extras import required


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse arguments and write the layouts (a no-op where they exist)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/digits', help='output folder')
    parser.add_argument('--no-cifar10', action='store_true',
                        help='skip the CIFAR-10 python batches')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help='share of each digit held out for validation')
    parser.add_argument('--seed', type=int, default=0, help='seed of the split')
    args = parser.parse_args(argv)
    paths = prepare_digits(args.out, cifar10=not args.no_cifar10,
                           val_fraction=args.val_fraction, seed=args.seed)
    for name, path in paths.items():
        print(f'{name}: {path}')


if __name__ == '__main__':
    with required('prepare_digits.py', 'demo'):  # scikit-learn's digits, written with Pillow
        main()
