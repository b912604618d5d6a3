"""A trained classifier and an ImageFolder for the analysis tools: MMPretrain config or timm model.

``MODEL`` ending in ``.py`` is an MMPretrain config (built with mmengine, images through
the config's test pipeline and the model's data preprocessor); anything else is a timm
model name (images through timm's eval transform, sized as the checkpoint's training
arguments say when ``tools/train_timm.py`` wrote it). Frameworks are imported lazily;
importing ``se_plugins`` has already registered its models and ``se_cfg`` in both.

Everything the tools read is checked before the work starts: the checkpoint and its training
arguments, the layout of the data folder, every image (decoded in full), and, for a config, its
test pipeline on the images. A mistake is an :class:`~se_plugins.cli.InputError` naming the input.
"""
from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..cli import InputError, about, describe, positive_float, positive_int
from ..convert import fit_to_model
from ..io import read_checkpoint, state_dict_of
from .excitation import foreign_se, se_layers

__all__ = ['Loaded', 'evaluate', 'load', 'subset']

# Training arguments of tools/train_timm.py that decide the eval transform.
_DATA_ARGS = ('img_size', 'input_size', 'crop_pct', 'mean', 'std', 'interpolation')
_IMAGE_FOLDER = 'expected an ImageFolder: DATA/<class>/<image>'
_SPLITS = ('val', 'valid', 'validation', 'test', 'train')  # the first present is the one to suggest
_SHOWN = 30  # class folders a message lists in full


@dataclass
class Loaded:
    """What the tools need: the module holding the SE layers, its logits, labelled images (and their files).

    ``read`` turns one image file into the model's input where its shape follows the image's size
    (an MMPretrain test pipeline); ``None`` where every image comes out alike (timm's eval transform).
    """

    model: nn.Module
    logits: Callable[[torch.Tensor], torch.Tensor]
    dataset: Dataset
    class_names: List[str]
    paths: Sequence[str] = ()
    read: Optional[Callable[[str], torch.Tensor]] = None


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every analysis tool takes: the model, its weights and the data."""
    add = parser.add_argument
    add('model', help='MMPretrain config (*.py) or timm model name (e.g. se_resnet18_plugin)')
    add('checkpoint', help='trained weights')
    add('--data', required=True, help='ImageFolder root: DATA/<class>/<image>')
    add('--max-images', type=positive_int, help='use at most N images, evenly strided over the dataset')
    add('--batch-size', type=positive_int, default=50)
    add('--num-classes', type=positive_int,
        help="timm: classes of the checkpoint (default: its training args, else its classifier's outputs)")
    add('--img-size', type=positive_int, help="timm: input size (default: the checkpoint's training args)")
    add('--crop-pct', type=positive_float,
        help="timm: centre-crop fraction (default: the checkpoint's training args)")


def load_from_args(args: argparse.Namespace) -> Tuple['Loaded', Dataset]:
    """The model and the (subset of the) data that :func:`add_model_arguments`' arguments name.

    Every image of the subset is decoded first, so that a file that is no image, or a damaged one,
    fails now, naming it; so do images whose sizes the config's test pipeline cannot batch.

    Raises:
        InputError: A model, checkpoint or data folder that cannot be used, named.
    """
    loaded = load(args.model, args.checkpoint, args.data, args.num_classes, args.img_size, args.crop_pct)
    dataset = subset(loaded.dataset, args.max_images)
    indices = dataset.indices if isinstance(dataset, Subset) else range(len(loaded.paths))
    sizes = _check_images([loaded.paths[i] for i in indices], args.data)
    if loaded.read is not None:
        _check_same_shape(loaded.read, sizes, args.data)
    return loaded, dataset


def load(model: str, checkpoint: str, data: str, num_classes: Optional[int] = None,
         img_size: Optional[int] = None, crop_pct: Optional[float] = None) -> Loaded:
    """Build ``model`` with the weights of ``checkpoint`` (eval mode) and the ImageFolder ``data``.

    Args:
        model: An MMPretrain config (``*.py``) or a timm model name.
        checkpoint: Its trained weights (mmengine, timm or plain state dict), which must fit it exactly.
        data: An ImageFolder root: ``DATA/<class>/<image>``.
        num_classes: timm only; default: the checkpoint's training arguments, else its classifier's outputs.
        img_size: timm only; default: the checkpoint's training arguments, else the model's.
        crop_pct: timm only; as ``img_size``.

    Raises:
        InputError: (or ``OSError``) ``model``, ``checkpoint`` or ``data`` cannot be used; the message names it.
    """
    if model.endswith('.py'):
        _refuse_timm_flags(num_classes=num_classes, img_size=img_size, crop_pct=crop_pct)
        loaded = _mmpretrain(model, checkpoint, data)
    else:
        loaded = _timm(model, checkpoint, data, num_classes, img_size, crop_pct)
    try:
        se_layers(loaded.model)
    except ValueError as err:
        raise InputError(f'MODEL {model!r}: {_twin_hint(model, loaded.model) or err}') from err
    loaded.model.eval()
    return loaded


def subset(dataset: Dataset, max_images: Optional[int]) -> Dataset:
    """At most ``max_images`` images, evenly strided so that every class keeps its share."""
    n = len(dataset)
    if max_images is None or max_images >= n:
        return dataset
    if max_images < 1:
        raise InputError(f'--max-images must be >= 1; got {max_images}')
    return Subset(dataset, torch.linspace(0, n - 1, max_images).round().long().tolist())


def _refuse_timm_flags(**flags: Any) -> None:
    """The flags of timm models are mistakes with an MMPretrain config: it would ignore them."""
    for name, value in flags.items():
        if value is not None:
            flag = '--' + name.replace('_', '-')
            where = ('the classes in model.head.num_classes' if name == 'num_classes'
                     else 'sizes in its test_pipeline (test_dataloader.dataset.pipeline)')
            raise InputError(f'{flag} {value}: is for timm models; an MMPretrain config sets {where}; drop {flag}')


def _twin_hint(name: str, model: nn.Module) -> Optional[str]:
    """For a timm model with timm's own SE: its ``se_*_plugin`` twin, whose SE the tools record."""
    if foreign_se(model) != "timm's SEModule":
        return None
    from ..timm import se_byobnet, se_regnet, se_resnet
    twins = {source: twin for module in (se_resnet, se_regnet, se_byobnet)
             for twin, source in module.TIMM_SOURCES.items()}
    twin = twins.get(name)
    if twin is None:
        return None
    return (f"its SE is timm's SEModule, which the tools do not record; use its twin {twin} "
            f"(timm.create_model('{twin}') loads {name} weights) with the checkpoint converted by "
            'tools/convert_checkpoint.py CHECKPOINT OUT.pth --to timm')


def _read(checkpoint: str) -> Mapping[str, Any]:
    """The checkpoint object, loaded with ``weights_only`` (plus timm's saved ``args``), checked to hold weights."""
    with about('CHECKPOINT'):
        saved = read_checkpoint(checkpoint)
        state_dict_of(saved, checkpoint)
    return saved


def _load_weights(model: nn.Module, saved: Mapping[str, Any], checkpoint: str) -> None:
    """``model.load_state_dict``, after a check that names every key that does not fit."""
    with about(f'CHECKPOINT: {checkpoint}'):
        state_dict = fit_to_model(state_dict_of(saved, checkpoint), model.state_dict(), strict=True)
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as err:  # a tensor that cannot be copied into a parameter
            raise InputError(f'{_copy_failure(err)}; save the trained weights as dense tensors: '
                             'torch.save(model.state_dict(), PATH)') from err


def _copy_failure(err: RuntimeError) -> str:
    """What ``load_state_dict``'s error says about the first tensor it could not copy."""
    found = re.search(r'parameter named "([^"]+)".*?exception occurred : \((.*)\)', str(err), re.S)
    if found is None:
        return f'cannot be loaded into the model ({describe(err)})'
    return f'{found[1]} cannot be loaded into the model ({found[2].rstrip(",").strip(chr(39) + chr(34))})'


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _chw(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 3 and all(map(_positive_int, value))


# Training arguments the tools read: what they must be, the argument of load() that overrides them, what to do.
_ARG_CHECKS = {
    'num_classes': (_positive_int, 'num_classes', 'override with --num-classes N'),
    'img_size': (_positive_int, 'img_size', 'override with --img-size N'),
    'input_size': (_chw, 'img_size', 'override with --img-size N'),
    'crop_pct': (_positive_number, 'crop_pct', 'override with --crop-pct F'),
    'model_kwargs': (lambda value: isinstance(value, Mapping), None,
                     'expected a dict of keyword arguments of timm.create_model'),
}


def _train_args(saved: Mapping[str, Any], checkpoint: str, overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """The training arguments ``tools/train_timm.py`` saved with the weights, checked where they are read.

    Args:
        saved: The checkpoint object.
        checkpoint: Its path.
        overrides: The arguments of :func:`load` by name; an argument given makes its training argument unread.
    """
    args = saved.get('args')
    if args is None:
        return {}
    if not isinstance(args, (argparse.Namespace, Mapping)):
        raise InputError(f'CHECKPOINT: {checkpoint}: its training args are a {type(args).__name__}; expected '
                         'an argparse.Namespace or a dict, as tools/train_timm.py saves them')
    args = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    for key, (valid, override, right) in _ARG_CHECKS.items():
        value = args.get(key)
        if value is not None and overrides.get(override) is None and not valid(value):
            raise InputError(f'CHECKPOINT: {checkpoint}: its training args have {key}={value!r}; {right}')
    return args


def _classifier_outputs(timm: Any, name: str, state_dict: Mapping[str, Any]) -> Optional[int]:
    """The number of classes the checkpoint's classifier (timm's ``classifier`` of the model) predicts."""
    cfg = timm.models.get_pretrained_cfg(name)
    keys = [cfg.classifier] if cfg is not None and isinstance(cfg.classifier, str) else []
    for key in [*keys, 'fc', 'head.fc', 'head', 'classifier']:
        weight = state_dict.get(f'{key}.weight')
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
            return weight.shape[0]
    return None


def _kind(err: BaseException) -> str:
    """The type of ``err`` as the user knows it: ``KeyError``, ``cv2.error``."""
    package = type(err).__module__.split('.')[0]
    return type(err).__name__ if package == 'builtins' else f'{package}.{type(err).__name__}'


def _check_folder(data: str) -> None:
    if not os.path.isdir(data):
        what = 'is a file, not a folder' if os.path.exists(data) else 'no such folder'
        raise InputError(f'--data {data!r}: {what}; {_IMAGE_FOLDER}')
    if not any(entry.is_dir() for entry in os.scandir(data)):
        raise InputError(f'--data {data!r}: no class folders in it; {_IMAGE_FOLDER}')


def _refuse_split_root(names: Sequence[str], data: str) -> None:
    """Class folders named train/val/test are the splits of an ImageFolder: point at one of them."""
    splits = [name for name in names if name.lower() in _SPLITS]
    if splits:
        pick = min(splits, key=lambda name: _SPLITS.index(name.lower()))
        raise InputError(f'--data {data!r}: looks like a split root ({", ".join(s + "/" for s in splits)}); '
                         f'point --data at {os.path.join(data, pick)}')


def _check_layout(paths: Sequence[str], data: str) -> None:
    """Every image lies in a class folder right under ``data`` (timm would label deeper ones by their leaf)."""
    for path in paths:
        parts = Path(os.path.relpath(path, data)).parts
        if len(parts) != 2:
            _refuse_split_root(sorted(entry.name for entry in os.scandir(data) if entry.is_dir()), data)
            where = 'outside the class folders' if len(parts) < 2 else f'{len(parts) - 2} folder(s) below its class'
            raise InputError(f'--data {data!r}: {os.path.join(*parts)} lies {where}; the class folders must '
                             f'hold the images themselves ({_IMAGE_FOLDER})')


def _pixels(err: Exception) -> str:
    found = re.search(r'\((\d+) pixels\)', str(err))
    return found[1] if found else 'too many'


def _check_images(paths: Sequence[str], data: str) -> Dict[Tuple[int, int], str]:
    """Decode every image file in full; a file that is no image, a damaged one, is an InputError naming it.

    Returns:
        The first file of each image size (width, height).
    """
    from PIL import Image

    sizes: Dict[Tuple[int, int], str] = {}
    for path in paths:
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as err:  # not an OSError
            raise InputError(f'--data {data!r}: {path}: too large ({_pixels(err)} pixels, more than PIL '
                             'decodes: a decompression bomb?); resize or remove it') from err
        except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
            raise InputError(f'--data {data!r}: {path}: not an image ({type(err).__name__}); '
                             'the class folders should hold only images') from err
        with image:
            try:
                image.load()
            except (OSError, ValueError, SyntaxError, EOFError) as err:  # truncated or corrupted data
                raise InputError(f'--data {data!r}: {path}: a damaged image, it does not decode '
                                 f'({describe(err)}); replace or remove it') from err
            sizes.setdefault(image.size, path)
    return sizes


def _check_same_shape(read: Callable[[str], torch.Tensor], sizes: Mapping[Tuple[int, int], str], data: str) -> None:
    """Images of every size come out of ``read`` in one shape, so that they can be batched."""
    (first_size, first), *others = sizes.items()
    if not others:
        return
    shape = tuple(read(first).shape)
    for size, path in others:
        other = tuple(read(path).shape)
        if other != shape:
            raise InputError(f"--data {data!r}: images of different sizes ({first} is {first_size[0]}x{first_size[1]}, "
                             f"{path} is {size[0]}x{size[1]}) leave the config's test pipeline in different shapes "
                             f'({shape} vs {other}); add a Resize or CenterCrop to its test_pipeline '
                             '(test_dataloader.dataset.pipeline), or give images of one size')


def _shown(names: Sequence[str]) -> str:
    """``names`` for a message: all of them, or the first and last where there are many."""
    names = list(names)
    if len(names) <= _SHOWN:
        return str(names)
    half = _SHOWN // 2
    return f'{str(names[:half])[:-1]}, ... {len(names) - 2 * half} more ..., {str(names[-half:])[1:]}'


def _check_classes(num_outputs: int, class_names: List[str], data: str) -> None:
    if num_outputs != len(class_names):
        _refuse_split_root(class_names, data)
        raise InputError(f'--data {data!r} has {len(class_names)} class folders {_shown(class_names)} but the '
                         f'model predicts {num_outputs} classes; point --data at an ImageFolder of its classes')


def _timm(name: str, checkpoint: str, data: str, num_classes: Optional[int], img_size: Optional[int],
          crop_pct: Optional[float]) -> Loaded:
    import timm
    from timm.data import ImageDataset, create_transform, resolve_data_config

    if not timm.is_model(name):
        raise InputError(f"MODEL {name!r}: neither an MMPretrain config (*.py) nor a timm model; "
                         f"SE models: {timm.list_models('*_plugin')}")
    saved = _read(checkpoint)
    train_args = _train_args(saved, checkpoint, dict(num_classes=num_classes, img_size=img_size, crop_pct=crop_pct))
    _check_folder(data)
    try:
        dataset = ImageDataset(data)
    except RuntimeError as err:  # timm: "Found 0 images in subfolders of ..."
        raise InputError(f'--data {data!r}: {err}') from err
    paths = [path for path, _ in dataset.reader.samples]
    _check_layout(paths, data)
    class_names = sorted(dataset.reader.class_to_idx, key=dataset.reader.class_to_idx.get)
    if num_classes is None:  # as the checkpoint has it: a mismatch is the data's
        outputs = _classifier_outputs(timm, name, state_dict_of(saved, checkpoint))
        num_classes = train_args.get('num_classes') or outputs or len(class_names)
        _check_classes(num_classes, class_names, data)
    model = _create(timm, name, num_classes, train_args.get('model_kwargs') or {})
    _load_weights(model, saved, checkpoint)
    _check_classes(num_classes, class_names, data)
    data_args = {k: train_args[k] for k in _DATA_ARGS if train_args.get(k) is not None}
    if img_size is not None:
        data_args.pop('input_size', None)  # timm reads input_size before img_size
    data_args.update({k: v for k, v in dict(img_size=img_size, crop_pct=crop_pct).items() if v is not None})
    try:
        dataset.transform = create_transform(**resolve_data_config(data_args, model=model))
    except (AssertionError, TypeError, ValueError) as err:  # e.g. a mean of two numbers
        raise InputError(f'CHECKPOINT: {checkpoint}: its training args {data_args} make no eval transform '
                         f'({type(err).__name__}: {describe(err)}); override them with --img-size N and '
                         '--crop-pct F') from err
    return Loaded(model, model, dataset, class_names, paths)


def _create(timm: Any, name: str, num_classes: int, kwargs: Mapping[str, Any]) -> nn.Module:
    """``timm.create_model``; the checkpoint's ``model_kwargs`` that our models refuse (bad se_cfg) are named."""
    try:
        return timm.create_model(name, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as err:
        raise InputError(f'MODEL {name!r} with the checkpoint\'s model_kwargs {kwargs}: {err}') from err


class _PipelineImages(Dataset):
    """An ImageFolder read through an MMPretrain test pipeline: ``(uint8 CHW tensor, label)``.

    A pipeline that fails on an image, or gives no ``inputs`` tensor, is an InputError naming ``config``.
    """

    def __init__(self, root: str, pipeline: Callable[[dict], dict], config: str) -> None:
        from torchvision.datasets import ImageFolder

        _check_folder(root)
        try:
            self.folder = ImageFolder(root)  # sorted class folders, as MMPretrain's CustomDataset
        except FileNotFoundError as err:  # torchvision: "Found no valid file for the classes ..."
            raise InputError(f'--data {root!r}: {err}') from err
        self.pipeline = pipeline
        self.config = config

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, index: int) -> Any:
        path, label = self.folder.samples[index]
        return self.read(path), label

    def read(self, path: str) -> torch.Tensor:
        """The model's input for the image file ``path``."""
        where = f'{self.config}: its test_dataloader.dataset.pipeline'
        try:
            out = self.pipeline(dict(img_path=path))
        except Exception as err:  # any transform's: the config's (or the image's) mistake, not ours
            raise InputError(f'{where} fails on {path} ({_kind(err)}: {describe(err)}); fix the config, or '
                             'that image if the pipeline cannot read it (--debug shows where)') from err
        inputs = out.get('inputs') if isinstance(out, dict) else None
        if not isinstance(inputs, torch.Tensor):
            gives = sorted(out) if isinstance(out, dict) else type(out).__name__
            raise InputError(f"{where} gives no 'inputs' tensor (it gives {gives}); end it with "
                             "dict(type='PackInputs')")
        return inputs


def _mmpretrain(config: str, checkpoint: str, data: str) -> Loaded:
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from ..engine import allow_mmengine_checkpoints
    from ..engine.checks import building, read_config

    cfg = read_config(config, ('model', 'test_dataloader'))
    with building(config, fix='fix the config'):
        init_default_scope(cfg.get('default_scope', 'mmpretrain'))
        if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner does
            cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
        model = MODELS.build(cfg.model)
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    allow_mmengine_checkpoints()
    _load_weights(model, _read(checkpoint), checkpoint)
    dataset = _PipelineImages(data, pipeline, config)
    paths = [path for path, _ in dataset.folder.samples]
    if all(name.lower() in _SPLITS for name in dataset.folder.classes) and any(
            len(Path(os.path.relpath(path, data)).parts) > 2 for path in paths):  # MMPretrain reads nested images
        _refuse_split_root(dataset.folder.classes, data)
    num_outputs = getattr(getattr(model, 'head', None), 'num_classes', None)
    if num_outputs is not None:
        _check_classes(num_outputs, dataset.folder.classes, data)
    first = dataset.folder.samples[0][0]
    _check_images([first], data)
    dataset.read(first)  # the test pipeline, once, before the work

    def logits(images: torch.Tensor) -> torch.Tensor:
        return model(model.data_preprocessor({'inputs': images}, False)['inputs'], mode='tensor')

    return Loaded(model, logits, dataset, list(dataset.folder.classes), paths, dataset.read)


@torch.no_grad()
def evaluate(loaded: Loaded, dataset: Dataset, batch_size: int = 50, desc: str = 'images',
             on_batch: Optional[Callable[[torch.Tensor], None]] = None) -> Dict[str, float]:
    """Top-1/top-5 accuracy (%) and mean cross-entropy of ``loaded`` on ``dataset``, with a progress bar.

    ``on_batch(labels)`` runs after each batch's forward (e.g. to collect recorded gates). The bar shows
    on a terminal only, so that a log (or the one line of a failed run) holds no bar.
    """
    from tqdm import tqdm

    correct = {1: 0, 5: 0}
    seen, loss = 0, 0.0
    with tqdm(total=len(dataset), desc=desc, unit='img', dynamic_ncols=True, disable=None) as bar:
        for images, labels in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            logits = loaded.logits(images).float()
            loss += nn.functional.cross_entropy(logits, labels, reduction='sum').item()
            top = logits.topk(min(5, len(loaded.class_names)), dim=1).indices
            hits = top == labels[:, None]
            correct[1] += hits[:, 0].sum().item()
            correct[5] += hits.any(1).sum().item()
            seen += len(labels)
            if on_batch is not None:
                on_batch(labels)
            bar.update(len(labels))
    seen = max(seen, 1)
    return {'images': seen, 'top1': 100.0 * correct[1] / seen, 'top5': 100.0 * correct[5] / seen, 'loss': loss / seen}
