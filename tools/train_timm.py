#!/usr/bin/env python3
"""Train a timm model (an SE plugin or any other) on an ImageFolder with timm's own factories.

    python tools/train_timm.py --model se_resnet18_plugin --data-dir data/digits/imagefolder \\
        --num-classes 10 --img-size 32 --epochs 10 -b 64 [--config configs/timm/se_resnet18_digits.yaml]

Data is read as timm's train.py reads it: DIR/train/<class>/* and DIR/validation/<class>/* (or, when
there is no validation/, DIR/val/ and timm's other names for it); --train-split and --val-split name
other folders, looked up as timm's train.py looks them up (--val-split val also finds validation/).
Options have the names of timm's train.py; its options that this script lacks are refused by name.
A -c/--config YAML sets the defaults of these options (keys are option names, ``batch_size`` or
``batch-size``); the command line overrides it, and a key that is no option is an error. timm's
CheckpointSaver writes OUTPUT/last.pth.tar (a tmp file renamed into place), model_best.pth.tar and
checkpoint-N.pth.tar. A mistake in an option, the YAML or the data ends it before training with one
line on stderr and exit status 2 (--debug: with its traceback); so does a failure of the first
training step (a model that does not fit --img-size, -b 1 with BatchNorm ...), which leaves no
--output folder behind.
"""
from __future__ import annotations

import argparse
import os
import reprlib
import time
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any, Callable, Dict, Iterator, List, NoReturn, Optional, Sequence, Tuple

import torch

import se_plugins  # noqa: F401  (registers the se_*_plugin models in timm)
from se_plugins.cli import (USER_ERRORS, ArgumentParser, InputError, describe, non_negative_float, non_negative_int,
                            positive_float, positive_int, probability, run)
from se_plugins.extras import required
from se_plugins.io import Undo, check_output

with required('train_timm.py', 'timm'):
    import timm
    import yaml
    from timm.data import create_dataset, create_loader, resolve_data_config
    from timm.data.dataset_factory import _search_split  # how timm's train.py finds DIR/<split> (val for validation)
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import AverageMeter, CheckpointSaver, ModelEmaV3, NativeScaler, ParseKwargs, accuracy, random_seed

REQUIRED = ('model', 'data_dir', 'num_classes')
SPLITS = {'train': 'train', 'val': 'validation'}  # timm's train.py defaults of --train-split and --val-split
# Options of timm's train.py (1.0) that this script does not have; tests/test_train_timm.py checks them against it.
TIMM_ONLY = frozenset("""
    --dataset --class-map --dataset-download --pretrained --pretrained-path --initial-checkpoint --resume
    --no-resume-opt --gp --in-chans --input-size --mean --std --interpolation -vb --validation-batch-size
    --channels-last --grad-accum-steps --grad-checkpointing --torchscript --torchcompile --amp-dtype --amp-impl
    --model-dtype --device-modules --opt-eps --opt-betas --clip-grad --clip-mode --layer-decay --opt-kwargs
    --lr-base --lr-base-size --lr-base-scale --warmup-prefix --cooldown-epochs
    --decay-epochs --decay-milestones --decay-rate --patience-epochs --start-epoch --epoch-repeats --vflip
    --aa --aug-repeats --aug-splits --jsd-loss --bce-loss --reprob --remode --recount --mixup
    --cutmix --cutmix-minmax --mixup-prob --mixup-switch-prob --mixup-mode --mixup-off-epoch --train-interpolation
    --drop --drop-path --drop-block --sync-bn --dist-bn --split-bn --bn-momentum --bn-eps --model-ema-force-cpu
    --model-ema-warmup --worker-seeding --recovery-interval --pin-mem --no-prefetcher --experiment --eval-metric
    --tta --log-wandb
""".split())
USE_TIMM = "use timm's train.py through python -m se_plugins.timm.run train.py ..."
# create_model keywords that load weights (timm's train.py: --pretrained ...); this script trains from scratch.
WEIGHT_KWARGS = ('pretrained', 'pretrained_cfg', 'pretrained_cfg_overlay', 'checkpoint_path')
DEVICE_TYPES = ('cpu', 'cuda')
# What a model that does not fit its input (--model-kwargs, --img-size, -b) raises at its first step.
FIRST_STEP_ERRORS = (RuntimeError, ValueError, TypeError, AssertionError, AttributeError, IndexError)
MAX_SEED = 2 ** 32 - 1  # numpy's seeds (timm's random_seed seeds numpy too)
MAX_CONFIG_CHARS = 100_000  # a YAML that expands to more (aliases of aliases) is refused
SHORT = reprlib.Repr()  # values in messages: a YAML of aliases can expand to megabytes
SHORT.maxlevel, SHORT.maxdict, SHORT.maxlist, SHORT.maxtuple, SHORT.maxstring, SHORT.maxother = 3, 6, 6, 6, 60, 60
SHORT_CHARS = 200


def short(value: Any) -> str:
    """``repr(value)`` cut to at most about :data:`SHORT_CHARS` characters, for a one-line message."""
    text = SHORT.repr(value)
    return text if len(text) <= SHORT_CHARS else text[:SHORT_CHARS - 3] + '...'


def seed(text: str) -> int:
    """An ``argparse`` type: a seed numpy takes, an integer from 0 to 2**32 - 1."""
    try:
        value = non_negative_int(text)
    except argparse.ArgumentTypeError:
        value = None
    if value is None or value > MAX_SEED:
        raise argparse.ArgumentTypeError(f'must be an integer >= 0 and <= {MAX_SEED}; got {text!r}')
    return value


def momentum(text: str) -> float:
    """An ``argparse`` type: a momentum from 0 to below 1 (at 1 or more SGD diverges)."""
    try:
        value = non_negative_float(text)
    except argparse.ArgumentTypeError:
        value = None
    if value is None or not value < 1:
        raise argparse.ArgumentTypeError(f'must be a number >= 0 and < 1; got {text!r}')
    return value


def expands_beyond(value: Any, limit: int) -> bool:
    """Whether ``repr(value)`` (a loaded YAML) has more than about ``limit`` characters; stops once it has."""
    size, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            size += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            size += 2 + 2 * len(item)
            stack.extend(item)
        else:
            size += len(repr(item))
        if size > limit:
            return True
    return False


class ModelKwargs(ParseKwargs):
    """timm's ``ParseKwargs`` (``KEY=VALUE ...``, values read as Python literals); a malformed item is a usage error."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        bad = [item for item in values if item and ('=' not in item or not item.partition('=')[0])]
        if bad:
            raise argparse.ArgumentError(self, f'expected KEY=VALUE items; got {bad}')
        try:
            super().__call__(parser, namespace, values, option_string)
        except (SyntaxError, TypeError, ValueError) as err:  # e.g. "{[1]: 2}": an unhashable key
            raise argparse.ArgumentError(self, f'{short(values)}: {err}') from err


def build_parser() -> argparse.ArgumentParser:
    """The options; none is required here, so that --config can supply them."""
    parser = ArgumentParser(prog='train_timm.py', description=__doc__.splitlines()[0])
    add = parser.add_argument
    add('-c', '--config', help='YAML file of option defaults (unknown keys are an error)')
    add('--model', help="timm model name, e.g. se_resnet18_plugin (see timm.list_models('*_plugin'))")
    add('--model-kwargs', nargs='*', default={}, action=ModelKwargs,
        help="extra create_model keywords, e.g. se_cfg=\"{'ratio': 8}\"")
    add('--data-dir', help='ImageFolder root holding the split folders')
    add('--train-split', help='training folder in DIR (default: train, or timm\'s other name for it: training)')
    add('--val-split', help='validation folder in DIR (default: validation, or when absent val, valid, eval ...)')
    add('--num-classes', type=positive_int, help='number of classes; must match the class folders')
    add('--img-size', type=positive_int, help="input size (default: the model's pretrained_cfg)")
    add('--crop-pct', type=positive_float, help="validation centre-crop fraction (default: the model's)")
    add('--epochs', type=positive_int, default=10)
    add('-b', '--batch-size', type=positive_int, default=32)
    add('--opt', default='adamw', help='timm optimizer name (sgd, adamw, lamb ...)')
    add('--lr', type=positive_float, default=1e-3)
    add('--weight-decay', type=non_negative_float, default=0.05)
    add('--momentum', type=momentum, default=0.9, help='for SGD-like optimizers')
    add('--sched', default='cosine', help="timm scheduler name (cosine, step, ...; 'none' for a constant lr)")
    add('--sched-on-updates', action='store_true', help='step the scheduler (and warmup) every update, not epoch')
    add('--warmup-epochs', type=non_negative_int, default=0)
    add('--warmup-lr', type=non_negative_float, default=1e-5, help='learning rate the warmup starts from')
    add('--min-lr', type=non_negative_float, default=0.0)
    add('--smoothing', type=probability, default=0.1, help='label smoothing')
    add('--no-aug', action='store_true', help='no training augmentation (resize and centre crop only)')
    add('--scale', type=probability, nargs=2, default=(0.08, 1.0), help='RandomResizedCrop area range')
    add('--ratio', type=positive_float, nargs=2, default=(3 / 4, 4 / 3), help='RandomResizedCrop aspect range')
    add('--color-jitter', type=non_negative_float, default=0.4, help='brightness/contrast/saturation jitter')
    add('--hflip', type=probability, default=0.5, help='horizontal flip probability')
    add('--model-ema', action='store_true', help='track an EMA of the weights (ModelEmaV3) and rank by it')
    add('--model-ema-decay', type=probability, default=0.998)
    add('--amp', action='store_true', help='mixed precision (float16 on CUDA, bfloat16 on CPU)')
    add('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    add('-j', '--workers', type=non_negative_int, default=2, help='data loading processes')
    add('--output', default='output/train_timm', help='checkpoint folder')
    add('--checkpoint-hist', type=positive_int, default=3, help='epoch checkpoints kept')
    add('--log-interval', type=positive_int, default=20, help='steps between progress lines')
    add('--seed', type=seed, default=42, help=f'random seed, 0 to {MAX_SEED}')
    return parser


def refuse_timm_options(names: Sequence[str], where: str = '') -> None:
    """Raise InputError if ``names`` hold options of timm's train.py that this script lacks."""
    theirs = [name for name in names if name in TIMM_ONLY]
    if theirs:
        verb = 'is an option' if len(theirs) == 1 else 'are options'
        raise InputError(f"{where}{', '.join(theirs)} {verb} of timm's train.py that this script "
                         f'does not support; {USE_TIMM}')


def refuse_weight_kwargs(model_kwargs: Dict[str, Any]) -> None:
    """Raise InputError if --model-kwargs hold keywords that load weights (``pretrained=True`` ...)."""
    theirs = [name for name in model_kwargs if name in WEIGHT_KWARGS]
    if theirs:
        what = ('a keyword of timm.create_model that loads' if len(theirs) == 1
                else 'keywords of timm.create_model that load')
        raise InputError(f"--model-kwargs {', '.join(theirs)}: {what} weights, which this script does not support "
                         f'(it trains from scratch); {USE_TIMM}')


def parse_known(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """``parser.parse_args``, but an option of timm's train.py that we lack is refused by name."""
    args, extras = parser.parse_known_args(argv)
    refuse_timm_options([extra.split('=', 1)[0] for extra in extras if extra.startswith('-')])
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def read_config(parser: argparse.ArgumentParser, path: str) -> Dict[str, Any]:
    """The option defaults in the YAML file ``path``, checked against the options; a mistake is an InputError."""
    if not os.path.isfile(path):
        raise InputError(f"--config {path!r}: {'is a folder' if os.path.isdir(path) else 'no such file'}; "
                         'give a YAML file of option: value')
    config = load_yaml(path)
    normalised = {str(key).replace('-', '_'): value for key, value in config.items()}
    if len(normalised) < len(config):
        refuse_duplicates(path, list(config))
    known = set(vars(parser.parse_args([]))) - {'config', 'debug'}
    unknown = sorted(set(normalised) - known)
    refuse_timm_options(['--' + key.replace('_', '-') for key in unknown], f'--config {path!r}: ')
    if unknown:
        raise InputError(f'--config {path!r}: unknown key(s) {unknown}; allowed: {sorted(known)}')
    actions = {action.dest: action for action in parser._actions}
    return {key: config_value(actions[key], value, path) for key, value in normalised.items()}


def load_yaml(path: str) -> Dict[Any, Any]:
    """The mapping in the YAML file ``path`` ({} for an empty file); anything else is an InputError."""
    try:
        with open(path) as f:
            config = yaml.safe_load(f) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, 'problem_mark', None)
        line = f' at line {where.line + 1}' if where is not None else ''
        raise InputError(f'--config {path!r}: not valid YAML{line} ({getattr(err, "problem", None) or err}); '
                         'expected a mapping of option: value') from err
    if not isinstance(config, dict):
        raise InputError(f'--config {path!r}: expected a mapping of option: value')
    if expands_beyond(config, MAX_CONFIG_CHARS):
        raise InputError(f'--config {path!r}: expands to more than {MAX_CONFIG_CHARS} characters (YAML aliases?); '
                         'write the values out')
    return config


def refuse_duplicates(path: str, keys: List[Any]) -> NoReturn:
    """Raise InputError naming the keys of the YAML that are one option once ``-`` reads as ``_``."""
    spellings: Dict[str, List[str]] = {}
    for key in keys:
        spellings.setdefault(str(key).replace('-', '_'), []).append(str(key))
    twice = [' and '.join(names) for names in spellings.values() if len(names) > 1]
    raise InputError(f"--config {path!r}: {'; '.join(twice)} set the same option; keep one of each")


def config_value(action: argparse.Action, value: Any, path: str) -> Any:
    """``value`` of ``action`` from the YAML, converted and checked as the command line would be."""
    def wrong(expected: str) -> NoReturn:
        raise InputError(f'--config {path!r}: {action.dest}: {short(value)} is not {expected}')

    if action.nargs == 0:  # a flag (store_true)
        return value if isinstance(value, bool) else wrong('true or false')
    if isinstance(action, ParseKwargs):
        keywords = isinstance(value, dict) and all(isinstance(key, str) for key in value)
        return value if keywords else wrong('a mapping of keyword: value')
    if value is None:  # an empty value: the default, where that is None (--img-size: the model's)
        return value if action.default is None else wrong(f'a value; give one or remove the key '
                                                          f'(default {action.default!r})')
    many = isinstance(action.nargs, int)  # e.g. --scale LOW HIGH
    if many and not (isinstance(value, list) and len(value) == action.nargs):
        wrong(f'a list of {action.nargs} values')
    items = value if many else [value]
    if any(isinstance(item, (bool, dict, list)) for item in items):
        wrong('a single number or word')
    try:
        converted = [action.type(str(item)) if action.type else str(item) for item in items]
    except (argparse.ArgumentTypeError, TypeError, ValueError) as err:
        wrong(f'valid ({err})')
    return converted if many else converted[0]


def parse_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse ``argv`` over the --config defaults; exit with a usage error naming what is wrong."""
    args = parse_known(parser, argv)
    if args.config:
        parser.set_defaults(**read_config(parser, args.config))
        args = parse_known(parser, argv)
    missing = ['--' + name.replace('_', '-') for name in REQUIRED if getattr(args, name) is None]
    if missing:
        parser.error(f'missing {", ".join(missing)} (give them on the command line or in --config)')
    if not timm.is_model(args.model):
        raise InputError(f"--model {args.model!r}: unknown to timm; SE models: {timm.list_models('*_plugin')}")
    refuse_weight_kwargs(args.model_kwargs)
    check_device(args.device)
    for name in ('scale', 'ratio'):
        low, high = getattr(args, name)
        if low > high:
            raise InputError(f'--{name} {low} {high}: LOW is above HIGH; give LOW <= HIGH, '
                             f'e.g. --{name} {high} {low}')
    if args.min_lr > args.lr:
        raise InputError(f'--min-lr {args.min_lr}: above --lr {args.lr}; give a --min-lr <= --lr')
    if not args.output:
        raise InputError("--output '': empty; give the folder for the checkpoints")
    check_output(args.output, '--output', folder=True)
    return args


def check_device(name: str) -> None:
    """Raise InputError unless ``name`` is a CPU or an existing CUDA device."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f'--device {name!r}: not a torch device; use cpu, cuda or cuda:N') from None
    if device.type not in DEVICE_TYPES:
        raise InputError(f'--device {name!r}: this script trains on {" or ".join(DEVICE_TYPES)}, not '
                         f'{device.type}; use cpu, cuda or cuda:N')
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise InputError(f'--device {name!r}: no CUDA device on this machine; use --device cpu')
    count = torch.cuda.device_count() if device.type == 'cuda' else 0
    if device.index is not None and device.type == 'cuda' and device.index >= count:
        raise InputError(f'--device {name!r}: this machine has {count} CUDA device(s); '
                         f'use cuda:0 to cuda:{count - 1}')


def split_folder(args: argparse.Namespace, split: str) -> str:
    """The folder of ``split`` ('train' or 'val') that timm's train.py finds for --<split>-split or its default.

    timm's ``create_dataset(search_split=True)`` takes DIR/<name>, else another name of the split (for
    ``val``: validation, valid, eval ...).
    """
    given = getattr(args, f'{split}_split')
    root = _search_split(args.data_dir, SPLITS[split] if given is None else given)
    if os.path.isdir(root) and os.path.normpath(root) != os.path.normpath(args.data_dir):
        return root
    if given is not None:
        raise InputError(f'--{split}-split {given!r}: no folder {os.path.join(args.data_dir, given)!r} '
                         f'(expected DIR/{given}/<class>/*.png)')
    raise InputError(f"--data-dir {args.data_dir!r}: no {SPLITS[split]}/{' or val/' if split == 'val' else ''} "
                     'folder (expected DIR/train/<class>/*.png and DIR/validation/<class>/*.png or '
                     'DIR/val/<class>/*.png; --train-split and --val-split name other folders)')


def create_datasets(args: argparse.Namespace) -> Dict[str, Any]:
    """timm ImageFolder datasets of the train and val split folders, checked against --num-classes.

    ``args.train_split`` and ``args.val_split`` are set to the folder names found (saved in the checkpoints).
    """
    datasets, names = {}, {}
    for split in ('train', 'val'):
        root = split_folder(args, split)
        names[split] = os.path.relpath(root, args.data_dir)
        try:
            datasets[split] = create_dataset('', root=root, split=names[split], search_split=False,
                                             is_training=split == 'train')
        except RuntimeError as err:  # timm: "Found 0 images in subfolders of ..."
            raise InputError(f'--data-dir {args.data_dir!r}: {err}') from err
        check_first_image(datasets[split], f'--data-dir {args.data_dir!r}')
    args.train_split, args.val_split = names['train'], names['val']
    classes = {split: sorted(ds.reader.class_to_idx) for split, ds in datasets.items()}
    if classes['train'] != classes['val']:
        raise InputError(f"--data-dir {args.data_dir!r}: {names['train']} classes {classes['train']} "
                         f"differ from {names['val']} classes {classes['val']}")
    if len(classes['train']) != args.num_classes:
        raise InputError(f"--num-classes {args.num_classes} does not match the {len(classes['train'])} class "
                         f"folders of {os.path.join(args.data_dir, names['train'])}: {classes['train']}")
    return datasets


def check_first_image(dataset: Any, where: str) -> None:
    """An InputError if the first image file of ``dataset`` is no image (timm would skip it with a warning)."""
    from PIL import Image

    path = dataset.reader.samples[0][0]
    try:
        with Image.open(path):
            pass
    except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        raise InputError(f'{where}: {path}: not an image ({type(err).__name__}); '
                         'the class folders should hold only images') from err


def check_batch_size(args: argparse.Namespace, datasets: Dict[str, Any]) -> None:
    """An InputError if -b exceeds the training images: timm's loader would give no step at all."""
    images = len(datasets['train'])
    if args.batch_size > images:
        raise InputError(f'-b {args.batch_size}: larger than the {images} training images of '
                         f"{os.path.join(args.data_dir, args.train_split)} (timm's loader drops the last "
                         f'partial batch); use -b {images} or less')


def create_loaders(args: argparse.Namespace, datasets: Dict[str, Any], data_config: Dict[str, Any]) -> Dict[str, Any]:
    """timm's loaders of the datasets: the training one with the augmentation of --scale, --ratio, --hflip ..."""
    return {split: create_loader(
        dataset, batch_size=args.batch_size, is_training=split == 'train', no_aug=args.no_aug,
        scale=tuple(args.scale), ratio=tuple(args.ratio), hflip=args.hflip, color_jitter=args.color_jitter,
        num_workers=args.workers, use_prefetcher=False, **data_config) for split, dataset in datasets.items()}


def create_optimizer(args: argparse.Namespace, model: torch.nn.Module,
                     updates_per_epoch: int) -> Tuple[torch.optim.Optimizer, Any]:
    """timm's optimizer and scheduler of --opt and --sched; a name timm does not know is an InputError."""
    try:
        optimizer = create_optimizer_v2(model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay,
                                        momentum=args.momentum)
    except (AssertionError, ImportError, TypeError, ValueError) as err:  # timm: "Optimizer foo not found in
        what = describe(err).rstrip('.')  # registry", "CUDA required for APEX optimizers", apex not installed
        if '; ' not in what:
            what += '; give another --opt, e.g. adamw or sgd'
        raise InputError(f'--opt {args.opt!r}: {what}') from err
    try:
        scheduler = create_scheduler_v2(optimizer, sched=args.sched, num_epochs=args.epochs, min_lr=args.min_lr,
                                        warmup_lr=args.warmup_lr, warmup_epochs=args.warmup_epochs,
                                        step_on_epochs=not args.sched_on_updates,
                                        updates_per_epoch=updates_per_epoch)[0]
    except (TypeError, ValueError) as err:  # timm: "Unknown scheduler 'foo'."
        raise InputError(f'--sched {args.sched!r}: {err}') from err
    return optimizer, scheduler


def create_model(args: argparse.Namespace) -> torch.nn.Module:
    """``timm.create_model`` with --num-classes and --model-kwargs; a bad keyword (e.g. se_cfg) is an InputError."""
    try:
        return timm.create_model(args.model, num_classes=args.num_classes, **args.model_kwargs)
    except (AssertionError, RuntimeError, TypeError, ValueError) as err:
        what = describe(err).rstrip('.')
        if '; ' not in what:  # e.g. "object of type 'int' has no len()": say what would be right
            what += f'; give keywords that timm.create_model({args.model!r}, ...) takes'
        raise InputError(f'--model {args.model} --model-kwargs {short(args.model_kwargs)}: {what}') from err


@contextmanager
def first_update(args: argparse.Namespace) -> Iterator[Callable[[], None]]:
    """Until the yielded callable is called (after the first optimizer update), a failure is bad input.

    An error of the first step (a model that does not fit --img-size, --model-kwargs that build a
    broken model, -b 1 with BatchNorm) becomes one line naming --model; on bad input what the block
    wrote under --output (the folder itself where it was new) is removed. Later errors keep their
    traceback and the checkpoints stay.
    """
    with Undo(args.output) as undo:
        try:
            yield undo.keep
        except FIRST_STEP_ERRORS as err:
            if undo.kept or isinstance(err, USER_ERRORS):
                raise
            what = describe(err).rstrip('.')
            raise InputError(f'--model {args.model}: the first training step failed: {what}; '
                             'check --model-kwargs, --img-size and -b (--debug shows where)') from err


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Any, device: torch.device, autocast: Callable) -> Dict[str, float]:
    """Loss, top-1 and top-5 accuracy (%) of ``model`` over ``loader``."""
    model.eval()
    meters = {name: AverageMeter() for name in ('loss', 'top1', 'top5')}
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        with autocast():
            output = model(images).float()
        top1, top5 = accuracy(output, targets, topk=(1, 5))
        for name, value in zip(meters, (torch.nn.functional.cross_entropy(output, targets), top1, top5)):
            meters[name].update(value.item(), images.size(0))
    return {name: meter.avg for name, meter in meters.items()}


def train_one_epoch(model: torch.nn.Module, loader: Any, loss_fn: Callable, optimizer: torch.optim.Optimizer,
                    autocast: Callable, scaler: Optional[NativeScaler], ema: Optional[ModelEmaV3], scheduler: Any,
                    updates: int, log_prefix: str, log_interval: int,
                    after_update: Callable[[], None] = lambda: None) -> int:
    """One pass over ``loader``, printing progress; return the number of optimizer updates so far.

    ``after_update`` is called after each optimizer update (see :func:`first_update`).
    """
    model.train()
    device, loss_meter = next(model.parameters()).device, AverageMeter()
    for step, (images, targets) in enumerate(loader, 1):
        images, targets = images.to(device), targets.to(device)
        with autocast():
            loss = loss_fn(model(images), targets)
        optimizer.zero_grad()
        if scaler is not None:
            scaler(loss, optimizer)
        else:
            loss.backward()
            optimizer.step()
        after_update()
        updates += 1
        if ema is not None:
            ema.update(model, step=updates)
        if scheduler is not None:
            scheduler.step_update(updates)
        loss_meter.update(loss.item(), images.size(0))
        if step % log_interval == 0 or step == len(loader):
            print(f"{log_prefix} step {step}/{len(loader)} loss {loss_meter.avg:.4f} "
                  f"lr {optimizer.param_groups[0]['lr']:.2e}", flush=True)
    return updates


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Train, validate each epoch, save checkpoints; return the final validation metrics."""
    parser = build_parser()
    args = parse_args(parser, argv)
    random_seed(args.seed)
    device = torch.device(args.device)
    datasets = create_datasets(args)
    check_batch_size(args, datasets)
    model = create_model(args).to(device)
    data_config = resolve_data_config(dict(img_size=args.img_size, crop_pct=args.crop_pct), model=model)
    loaders = create_loaders(args, datasets, data_config)

    optimizer, scheduler = create_optimizer(args, model, len(loaders['train']))
    train_loss = LabelSmoothingCrossEntropy(args.smoothing) if args.smoothing else torch.nn.CrossEntropyLoss()
    amp_dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    autocast = partial(torch.autocast, device.type, dtype=amp_dtype) if args.amp else nullcontext
    scaler = NativeScaler(device.type) if args.amp and amp_dtype == torch.float16 else None
    ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None
    with first_update(args) as updated:  # bad input until the first update: one line, no --output left
        os.makedirs(args.output, exist_ok=True)
        saver = CheckpointSaver(model, optimizer, args=args, model_ema=ema, amp_scaler=scaler,
                                checkpoint_dir=args.output, recovery_dir=args.output, max_history=args.checkpoint_hist)
        num_params = sum(p.numel() for p in model.parameters())
        print(f"{args.model}: {num_params:,} parameters; {len(datasets['train'])} train / {len(datasets['val'])} "
              f"val images, {args.num_classes} classes; input {data_config['input_size']}; device {device}", flush=True)
        updates = 0
        for epoch in range(args.epochs):
            start = time.time()
            updates = train_one_epoch(model, loaders['train'], train_loss, optimizer, autocast, scaler, ema,
                                      scheduler, updates, f'epoch {epoch + 1}/{args.epochs}', args.log_interval,
                                      after_update=updated)
            if scheduler is not None:
                scheduler.step(epoch + 1)
            metrics = evaluate(model, loaders['val'], device, autocast)
            line = f"val loss {metrics['loss']:.4f} top-1 {metrics['top1']:.2f} top-5 {metrics['top5']:.2f}"
            if ema is not None:
                metrics = evaluate(ema.module, loaders['val'], device, autocast)
                line += f" | EMA top-1 {metrics['top1']:.2f} top-5 {metrics['top5']:.2f}"
            best, best_epoch = saver.save_checkpoint(epoch, metric=metrics['top1'])
            print(f'epoch {epoch + 1}/{args.epochs} {line} ({time.time() - start:.1f} s)', flush=True)
    ranked = 'EMA ' if ema is not None else ''  # with --model-ema, checkpoints are ranked by the EMA weights
    print(f"final val {ranked}top-1 {metrics['top1']:.2f} top-5 {metrics['top5']:.2f} "
          f"(best top-1 {best:.2f} at epoch {best_epoch + 1}); checkpoints in {args.output}", flush=True)
    return metrics


if __name__ == '__main__':
    run(main, 'train_timm.py', extra='timm')
