"""scikit-learn's handwritten digits (1,797 real 8x8 scans) as an ImageFolder and CIFAR-10 batches.

The digits ship inside the scikit-learn wheel, so the demo needs no download. Images are
scaled from 16 grey levels to 0-255, upscaled to 32x32 RGB and split 80/20, stratified by
digit with a fixed seed, so every machine gets the same files. Each layout is written into a
temporary folder beside its target and renamed into place: a layout that exists is complete,
and preparing twice is a no-op. Each layout records its split (``.split.json``), so preparing
another split over it is refused rather than silently skipped.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]
Splits = Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]]  # name -> (images, labels, indices)

IMAGE_SIZE = 32
CLASSES = tuple(str(digit) for digit in range(10))
CIFAR10_FOLDER = 'cifar-10-batches-py'  # the name MMPretrain's CIFAR10 dataset reads
CIFAR10_TRAIN_BATCHES = 5
SPLIT_FILE = '.split.json'  # in each layout: the val_fraction and seed it was split with


def load_digit_splits(val_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Load the digits as uint8 RGB ``(N, 32, 32, 3)`` images, split into ``train`` and ``val``.

    Args:
        val_fraction: Share of each digit held out for ``val``.
        seed: Seed of the stratified split.

    Returns:
        ``{'train': (images, labels, indices), 'val': ...}``; ``indices`` index
        ``sklearn.datasets.load_digits()``.
    """
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    digits = load_digits()
    held_out = math.ceil(val_fraction * len(digits.target))  # as train_test_split rounds it
    if min(held_out, len(digits.target) - held_out) < len(CLASSES):
        low = len(CLASSES) / len(digits.target)
        raise ValueError(f'val_fraction {val_fraction} holds out {held_out} of {len(digits.target)} images; each '
                         f'split needs one image per digit at least: use {low:.4f} to {1 - low:.4f}')
    grey = np.round(digits.images * (255 / 16)).astype(np.uint8)
    images = np.stack([
        np.asarray(Image.fromarray(image).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
                   .convert('RGB')) for image in grey])
    indices = np.arange(len(images))
    train, val = train_test_split(indices, test_size=val_fraction, random_state=seed,
                                  stratify=digits.target)
    return {name: (images[split], digits.target[split], split)
            for name, split in (('train', np.sort(train)), ('val', np.sort(val)))}


def write_image_folder(splits: Splits, folder: Path) -> None:
    """Write ``folder/<split>/<digit>/<index>.png``, the layout of CustomDataset and timm."""
    from PIL import Image

    for name, (images, labels, indices) in splits.items():
        for image, label, index in zip(images, labels, indices):
            class_dir = folder / name / CLASSES[label]
            class_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(class_dir / f'{index:04d}.png')


def write_cifar10_layout(splits: Splits, folder: Path) -> None:
    """Write ``splits`` as the CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``).

    Same pickles as the official archive: ``data`` is ``(N, 3072)`` uint8 in
    channel-major order, ``labels`` a list of ints, ``batches.meta`` holds ``label_names``.
    """
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, images: np.ndarray, labels: np.ndarray, label: str) -> None:
        batch = dict(batch_label=label, labels=[int(x) for x in labels],
                     data=images.transpose(0, 3, 1, 2).reshape(len(images), -1),
                     filenames=[f'{i:04d}.png' for i in range(len(images))])
        with open(folder / name, 'wb') as f:
            pickle.dump(batch, f)

    images, labels, _ = splits['train']
    chunks = np.array_split(np.arange(len(images)), CIFAR10_TRAIN_BATCHES)
    for number, chunk in enumerate(chunks, 1):
        dump(f'data_batch_{number}', images[chunk], labels[chunk],
             f'training batch {number} of {CIFAR10_TRAIN_BATCHES}')
    dump('test_batch', *splits['val'][:2], 'testing batch 1 of 1')
    with open(folder / 'batches.meta', 'wb') as f:
        pickle.dump(dict(label_names=list(CLASSES), num_cases_per_batch=len(chunks[0]),
                         num_vis=IMAGE_SIZE * IMAGE_SIZE * 3), f)


# What a complete layout holds, by layout name.
LAYOUT_FILES = {'imagefolder': [f'{split}/{digit}' for split in ('train', 'val') for digit in CLASSES],
                CIFAR10_FOLDER: [f'data_batch_{n}' for n in range(1, CIFAR10_TRAIN_BATCHES + 1)]
                + ['test_batch', 'batches.meta']}


class LayoutError(ValueError):
    """A folder where a layout goes that is not one this module wrote with the split asked for."""


def check_layout(target: Path, split: Dict[str, float]) -> None:
    """Raise LayoutError unless ``target`` is a complete layout of this module, split as ``split`` says.

    Layouts written before the split was recorded have no ``.split.json`` and pass on their files.
    """
    missing = [name for name in LAYOUT_FILES[target.name] if not (target / name).exists()]
    if not target.is_dir() or missing:
        raise LayoutError(f'{target}: exists but is not a complete layout of prepare_digits '
                         f'({"not a folder" if not target.is_dir() else "no " + missing[0]}); '
                         'remove it or choose another --out')
    recorded = target / SPLIT_FILE
    if recorded.is_file() and json.loads(recorded.read_text()) != split:
        raise LayoutError(f'{target}: was split with {json.loads(recorded.read_text())}, not {split}; '
                         'remove it to prepare another split, or choose another --out')


def _write_atomically(target: Path, write: Callable[[Path], None], split: Dict[str, float]) -> bool:
    """Run ``write`` into a temporary sibling of ``target``, then rename it into place.

    Returns:
        False if ``target`` already existed (nothing written; checked by :func:`check_layout`), True otherwise.
    """
    if target.exists() or target.is_symlink():
        check_layout(target, split)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{target.name}.', dir=target.parent))
    try:
        write(tmp)
        (tmp / SPLIT_FILE).write_text(json.dumps(split))
        os.rename(tmp, target)
    except OSError:
        if not target.exists():  # a concurrent run that finished first is fine
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def prepare_digits(out: PathLike, cifar10: bool = True, val_fraction: float = 0.2,
                   seed: int = 0) -> Dict[str, Path]:
    """Prepare ``out/imagefolder`` and (if ``cifar10``) ``out/cifar-10-batches-py``.

    Args:
        out: Output folder, e.g. ``data/digits``.
        cifar10: Also write the CIFAR-10 python batches.
        val_fraction: Share of each digit held out for ``val``.
        seed: Seed of the stratified split.

    Returns:
        The path of each layout, by name (``'imagefolder'``, ``'cifar10'``).

    Raises:
        LayoutError: A layout in ``out`` is incomplete or was split otherwise.
        ValueError: ``val_fraction`` leaves a split without some digit.
    """
    out = Path(out)
    targets = {'imagefolder': (out / 'imagefolder', write_image_folder)}
    if cifar10:
        targets['cifar10'] = (out / CIFAR10_FOLDER, write_cifar10_layout)
    split = dict(val_fraction=val_fraction, seed=seed)
    for path, _ in targets.values():
        if path.exists() or path.is_symlink():
            check_layout(path, split)
    if all(path.exists() for path, _ in targets.values()):
        return {name: path for name, (path, _) in targets.items()}
    splits = load_digit_splits(val_fraction, seed)
    for path, write in targets.values():
        _write_atomically(path, lambda tmp, write=write: write(splits, tmp), split)
    return {name: path for name, (path, _) in targets.items()}
