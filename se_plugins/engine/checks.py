"""Pre-flight checks and defaults shared by ``tools/train.py`` and ``tools/test.py``.

mmengine builds what a config describes and reports mistakes late or not at all: a typo in a
top-level ``--cfg-options`` key is silently ignored, and a head with fewer outputs than the
dataset has classes fails mid-epoch with an index error. These checks fail first, naming the
field, the value and what is allowed.
"""
from __future__ import annotations

import difflib
import inspect
import logging
import os
from typing import Any, Mapping, Optional, Sequence

import torch
from mmengine.config import Config, ConfigDict
from mmengine.device import is_mlu_available, is_npu_available
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

# Top-level keys mmengine's Runner reads besides its __init__ arguments (Runner.wrap_model,
# Runner.train, Runner._maybe_compile), and the keys of the config machinery itself.
RUNNER_CFG_KEYS = ('model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'compile',
                   'activation_checkpointing', 'efficient_conv_bn_eval', 'runner_type',
                   'custom_imports', 'gpu_ids')


def check_cfg_options(cfg: Config, options: Mapping[str, Any]) -> None:
    """Reject ``--cfg-options`` whose top-level key neither the config nor the Runner knows.

    Deeper keys need no check: they become constructor arguments, and mmengine's builders
    raise ``TypeError`` for unknown ones before training starts.

    Raises:
        ValueError: Naming the unknown key and the keys that exist.
    """
    known = set(cfg.keys()) | set(inspect.signature(Runner.__init__).parameters) | set(
        RUNNER_CFG_KEYS)
    known -= {'self', 'cfg'}
    for option in options:
        top = option.split('.', 1)[0]
        if top not in known:
            close = difflib.get_close_matches(top, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            raise ValueError(f'--cfg-options {option}: unknown top-level config key {top!r}{hint}; '
                             f'the config and the Runner know: {", ".join(sorted(known))}')


def check_amp_device() -> None:
    """Raise ``ValueError`` when ``--amp`` is asked for without a device mmengine's AMP supports."""
    if not (torch.cuda.is_available() or is_npu_available() or is_mlu_available()):
        raise ValueError('--amp needs a CUDA, NPU or MLU device (mmengine AmpOptimWrapper); '
                         'none is available on this machine: drop --amp')


def check_data_roots(cfg: Config, fields: Sequence[str]) -> None:
    """Raise ``FileNotFoundError`` naming the field if a dataset's local ``data_root`` is missing.

    Runs before anything is built, so a wrong path fails in seconds instead of after the
    model. Wrapped datasets (``dataset=``/``datasets=``, e.g. RepeatDataset) are checked too.

    Args:
        cfg: The merged config.
        fields: Dataloader fields to check, e.g. ``('train_dataloader', 'val_dataloader')``.
    """
    def check(dataset: Any, where: str) -> None:
        if not isinstance(dataset, Mapping):
            return
        root = dataset.get('data_root')
        if root and '://' not in str(root) and not os.path.isdir(root):
            raise FileNotFoundError(
                f'{where}.data_root={str(root)!r} is not a folder (resolved from '
                f'{os.getcwd()!r}); prepare the data or point --cfg-options '
                f'{where}.data_root=... at it')
        check(dataset.get('dataset'), f'{where}.dataset')
        for index, child in enumerate(dataset.get('datasets') or ()):
            check(child, f'{where}.datasets.{index}')

    for field in fields:
        check((cfg.get(field) or {}).get('dataset'), f'{field}.dataset')


def set_dataloader_defaults(cfg: Config, fields: Sequence[str], pin_memory: bool = True,
                            persistent_workers: Optional[bool] = None) -> None:
    """Fill dataloader options the config leaves unset, as MMPretrain's tools do.

    ``collate_fn`` defaults to ``default_collate``; ``pin_memory`` only where there is a GPU to
    pin for. ``persistent_workers`` (``None`` leaves it unset, as MMPretrain's ``test.py``
    does) only applies with ``num_workers > 0`` (DataLoader rejects it otherwise), and defaults
    to False in deterministic mode: mmengine reseeds non-persistent workers at every epoch
    (``mmengine.dataset.worker_init_fn``), which is what makes a resumed run repeat the
    augmentations of an uninterrupted one.

    Args:
        cfg: The config, changed in place.
        fields: Dataloader fields to fill, e.g. ``('train_dataloader', 'val_dataloader')``.
        pin_memory: False forces ``pin_memory=False`` (``--no-pin-memory``).
        persistent_workers: False forces ``persistent_workers=False``.
    """
    deterministic = bool((cfg.get('randomness') or {}).get('deterministic', False))
    for field in fields:
        loader = cfg.get(field)
        if loader is None:
            continue
        merged = ConfigDict(collate_fn=dict(type='default_collate'),
                            pin_memory=torch.cuda.is_available())
        if persistent_workers is not None and loader.get('num_workers', 0) > 0:
            merged.persistent_workers = not deterministic
        merged.update(loader)
        if not pin_memory:
            merged.pin_memory = False
        if persistent_workers is False:
            merged.persistent_workers = False
        cfg[field] = merged


def check_num_classes(model: torch.nn.Module, dataset: Any, field: str) -> None:
    """Raise ``ValueError`` if the model's head has fewer outputs than ``dataset`` has classes.

    Models without ``head.num_classes`` and datasets without ``metainfo['classes']`` pass.
    A head with more outputs than classes is allowed (e.g. an ImageNet head on a subset), with
    a warning.

    Args:
        model: The (possibly wrapped) model.
        dataset: The dataset of ``field``.
        field: The dataloader field, named in the message.
    """
    model = model.module if is_model_wrapper(model) else model
    num_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if num_classes is None or classes is None:
        return
    shown = ', '.join(map(str, classes[:12])) + (', ...' if len(classes) > 12 else '')
    message = (f'model.head.num_classes={num_classes} but {field}.dataset has {len(classes)} '
               f'classes ({shown})')
    if num_classes < len(classes):
        raise ValueError(f'{message}; set model.head.num_classes={len(classes)} (and '
                         f'data_preprocessor.num_classes if the config sets it)')
    if num_classes > len(classes):
        print_log(message, logger='current', level=logging.WARNING)


class DatasetCheckHook(Hook):
    """Check that the head fits the data once the datasets are built, before the first step."""

    def before_train(self, runner: Runner) -> None:
        """Check the training and validation sets."""
        check_num_classes(runner.model, runner.train_dataloader.dataset, 'train_dataloader')
        if runner.val_loop is not None:
            check_num_classes(runner.model, runner.val_loop.dataloader.dataset, 'val_dataloader')

    def before_test(self, runner: Runner) -> None:
        """Check the test set."""
        check_num_classes(runner.model, runner.test_loop.dataloader.dataset, 'test_dataloader')
