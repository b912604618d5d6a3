"""A trained classifier and an ImageFolder for the analysis tools: MMPretrain config or timm model.

``MODEL`` ending in ``.py`` is an MMPretrain config (built with mmengine, images through
the config's test pipeline and the model's data preprocessor); anything else is a timm
model name (images through timm's eval transform, sized as the checkpoint's training
arguments say when ``tools/train_timm.py`` wrote it). Frameworks are imported lazily;
importing ``se_plugins`` has already registered its models and ``se_cfg`` in both.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..cli import InputError, about, positive_float, positive_int
from ..convert import fit_to_model
from ..io import read_checkpoint, state_dict_of
from .excitation import se_layers

__all__ = ['Loaded', 'evaluate', 'load', 'subset']

# Training arguments of tools/train_timm.py that decide the eval transform.
_DATA_ARGS = ('img_size', 'input_size', 'crop_pct', 'mean', 'std', 'interpolation')
_IMAGE_FOLDER = 'expected an ImageFolder: DATA/<class>/<image>'


@dataclass
class Loaded:
    """What the tools need: the module holding the SE layers, its logits, labelled images (and their files)."""

    model: nn.Module
    logits: Callable[[torch.Tensor], torch.Tensor]
    dataset: Dataset
    class_names: List[str]
    paths: Sequence[str] = ()


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every analysis tool takes: the model, its weights and the data."""
    add = parser.add_argument
    add('model', help='MMPretrain config (*.py) or timm model name (e.g. se_resnet18_plugin)')
    add('checkpoint', help='trained weights')
    add('--data', required=True, help='ImageFolder root: DATA/<class>/<image>')
    add('--max-images', type=positive_int, help='use at most N images, evenly strided over the dataset')
    add('--batch-size', type=positive_int, default=50)
    add('--num-classes', type=positive_int, help='timm: classes of the checkpoint (default: its training args)')
    add('--img-size', type=positive_int, help="timm: input size (default: the checkpoint's training args)")
    add('--crop-pct', type=positive_float,
        help="timm: centre-crop fraction (default: the checkpoint's training args)")


def load_from_args(args: argparse.Namespace) -> Tuple['Loaded', Dataset]:
    """The model and the (subset of the) data that :func:`add_model_arguments`' arguments name.

    Every image of the subset is opened first, so that a file that is no image fails now, naming it.

    Raises:
        InputError: A model, checkpoint or data folder that cannot be used, named.
    """
    loaded = load(args.model, args.checkpoint, args.data, args.num_classes, args.img_size, args.crop_pct)
    dataset = subset(loaded.dataset, args.max_images)
    indices = dataset.indices if isinstance(dataset, Subset) else range(len(loaded.paths))
    _check_images([loaded.paths[i] for i in indices], args.data)
    return loaded, dataset


def load(model: str, checkpoint: str, data: str, num_classes: Optional[int] = None,
         img_size: Optional[int] = None, crop_pct: Optional[float] = None) -> Loaded:
    """Build ``model`` with the weights of ``checkpoint`` (eval mode) and the ImageFolder ``data``.

    Args:
        model: An MMPretrain config (``*.py``) or a timm model name.
        checkpoint: Its trained weights (mmengine, timm or plain state dict), which must fit it exactly.
        data: An ImageFolder root: ``DATA/<class>/<image>``.
        num_classes: timm only; default: the checkpoint's training arguments, else the class folders.
        img_size: timm only; default: the checkpoint's training arguments, else the model's.
        crop_pct: timm only; as ``img_size``.

    Raises:
        InputError: (or ``OSError``) ``model``, ``checkpoint`` or ``data`` cannot be used; the message names it.
    """
    loaded = (_mmpretrain(model, checkpoint, data) if model.endswith('.py')
              else _timm(model, checkpoint, data, num_classes, img_size, crop_pct))
    try:
        se_layers(loaded.model)
    except ValueError as err:
        raise InputError(f'MODEL {model!r}: {err}') from err
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


def _read(checkpoint: str) -> Mapping[str, Any]:
    """The checkpoint object, loaded with ``weights_only`` (plus timm's saved ``args``), checked to hold weights."""
    with about('CHECKPOINT'):
        saved = read_checkpoint(checkpoint)
        state_dict_of(saved, checkpoint)
    return saved


def _load_weights(model: nn.Module, saved: Mapping[str, Any], checkpoint: str) -> None:
    """``model.load_state_dict``, after a check that names every key that does not fit."""
    with about(f'CHECKPOINT: {checkpoint}'):
        model.load_state_dict(fit_to_model(state_dict_of(saved, checkpoint), model.state_dict(), strict=True))


def _check_folder(data: str) -> None:
    if not os.path.isdir(data):
        what = 'is a file, not a folder' if os.path.exists(data) else 'no such folder'
        raise InputError(f'--data {data!r}: {what}; {_IMAGE_FOLDER}')
    if not any(entry.is_dir() for entry in os.scandir(data)):
        raise InputError(f'--data {data!r}: no class folders in it; {_IMAGE_FOLDER}')


def _check_images(paths: Sequence[str], data: str) -> None:
    """Open every image file (its header only); a file that is no image is an InputError naming it."""
    from PIL import Image

    for path in paths:
        try:
            with Image.open(path):
                pass
        except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
            raise InputError(f'--data {data!r}: {path}: not an image ({type(err).__name__}); '
                             'the class folders should hold only images') from err


def _check_classes(num_outputs: int, class_names: List[str], data: str) -> None:
    if num_outputs != len(class_names):
        raise InputError(f'--data {data!r} has {len(class_names)} class folders {class_names[:10]} but the '
                         f'model predicts {num_outputs} classes; point --data at an ImageFolder of its classes')


def _timm(name: str, checkpoint: str, data: str, num_classes: Optional[int], img_size: Optional[int],
          crop_pct: Optional[float]) -> Loaded:
    import timm
    from timm.data import ImageDataset, create_transform, resolve_data_config

    if not timm.is_model(name):
        raise InputError(f"MODEL {name!r}: neither an MMPretrain config (*.py) nor a timm model; "
                         f"SE models: {timm.list_models('*_plugin')}")
    saved = _read(checkpoint)
    args = saved.get('args')
    train_args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    _check_folder(data)
    try:
        dataset = ImageDataset(data)
    except RuntimeError as err:  # timm: "Found 0 images in subfolders of ..."
        raise InputError(f'--data {data!r}: {err}') from err
    class_names = sorted(dataset.reader.class_to_idx, key=dataset.reader.class_to_idx.get)
    num_classes = num_classes or train_args.get('num_classes') or len(class_names)
    model = _create(timm, name, num_classes, train_args.get('model_kwargs') or {})
    _load_weights(model, saved, checkpoint)
    _check_classes(num_classes, class_names, data)
    data_args = {k: train_args[k] for k in _DATA_ARGS if train_args.get(k) is not None}
    data_args.update({k: v for k, v in dict(img_size=img_size, crop_pct=crop_pct).items() if v is not None})
    dataset.transform = create_transform(**resolve_data_config(data_args, model=model))
    paths = [path for path, _ in dataset.reader.samples]
    return Loaded(model, model, dataset, class_names, paths)


def _create(timm: Any, name: str, num_classes: int, kwargs: Dict[str, Any]) -> nn.Module:
    """``timm.create_model``; the checkpoint's ``model_kwargs`` that our models refuse (bad se_cfg) are named."""
    try:
        return timm.create_model(name, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as err:
        raise InputError(f'MODEL {name!r} with the checkpoint\'s model_kwargs {kwargs}: {err}') from err


class _PipelineImages(Dataset):
    """An ImageFolder read through an MMPretrain test pipeline: ``(uint8 CHW tensor, label)``."""

    def __init__(self, root: str, pipeline: Callable[[dict], dict]) -> None:
        from torchvision.datasets import ImageFolder

        _check_folder(root)
        try:
            self.folder = ImageFolder(root)  # sorted class folders, as MMPretrain's CustomDataset
        except FileNotFoundError as err:  # torchvision: "Found no valid file for the classes ..."
            raise InputError(f'--data {root!r}: {err}') from err
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, index: int) -> Any:
        path, label = self.folder.samples[index]
        return self.pipeline(dict(img_path=path))['inputs'], label


def _mmpretrain(config: str, checkpoint: str, data: str) -> Loaded:
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from ..engine import allow_mmengine_checkpoints
    from ..engine.checks import building, read_config

    cfg = read_config(config, ('model', 'test_dataloader'))
    with building(config):
        init_default_scope(cfg.get('default_scope', 'mmpretrain'))
        if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner does
            cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
        model = MODELS.build(cfg.model)
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    allow_mmengine_checkpoints()
    _load_weights(model, _read(checkpoint), checkpoint)
    dataset = _PipelineImages(data, pipeline)
    num_outputs = getattr(getattr(model, 'head', None), 'num_classes', None)
    if num_outputs is not None:
        _check_classes(num_outputs, dataset.folder.classes, data)

    def logits(images: torch.Tensor) -> torch.Tensor:
        return model(model.data_preprocessor({'inputs': images}, False)['inputs'], mode='tensor')

    paths = [path for path, _ in dataset.folder.samples]
    return Loaded(model, logits, dataset, list(dataset.folder.classes), paths)


@torch.no_grad()
def evaluate(loaded: Loaded, dataset: Dataset, batch_size: int = 50, desc: str = 'images',
             on_batch: Optional[Callable[[torch.Tensor], None]] = None) -> Dict[str, float]:
    """Top-1/top-5 accuracy (%) and mean cross-entropy of ``loaded`` on ``dataset``, with a progress bar.

    ``on_batch(labels)`` runs after each batch's forward (e.g. to collect recorded gates).
    """
    from tqdm import tqdm

    correct = {1: 0, 5: 0}
    seen, loss = 0, 0.0
    with tqdm(total=len(dataset), desc=desc, unit='img', dynamic_ncols=True) as bar:
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
