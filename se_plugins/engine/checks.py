"""Pre-flight checks and defaults shared by ``tools/train.py`` and ``tools/test.py``.

mmengine builds what a config describes and reports mistakes late or not at all: a typo in a
top-level ``--cfg-options`` key is silently ignored, a head with fewer outputs than the
dataset has classes fails mid-epoch with an index error, and a config it cannot build fails
with whatever the builder raised (a registry ``KeyError``, an unknown argument's ``TypeError``)
after the Runner has created its work_dir. These checks fail first, naming the field, the value
and what is allowed, as :class:`~se_plugins.cli.InputError`; :class:`Preflight` names the config
for the builders' errors and removes what the failed run wrote.
"""
from __future__ import annotations

import argparse
import difflib
import inspect
import logging
import os
import re
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.device import is_mlu_available, is_npu_available
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from ..cli import InputError, about
from ..convert import CheckpointError, fit_to_model
from ..io import Undo, read_checkpoint, state_dict_of

# Top-level keys mmengine's Runner reads besides its __init__ arguments (Runner.wrap_model,
# Runner.train, Runner._maybe_compile), and the keys of the config machinery itself.
RUNNER_CFG_KEYS = ('model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'compile',
                   'activation_checkpointing', 'efficient_conv_bn_eval', 'runner_type',
                   'custom_imports', 'gpu_ids')
# What each tool needs the config to define.
TRAIN_KEYS = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper')
TEST_KEYS = ('model', 'test_dataloader', 'test_cfg', 'test_evaluator')
CONFIG_SUFFIXES = ('.py', '.json', '.yaml', '.yml')  # mmengine's Config.fromfile
# What mmengine's builders raise for a config they cannot build (an unknown type is a KeyError of
# the registry, an unknown argument a TypeError, an empty data folder a RuntimeError, ...).
BUILD_ERRORS = (ArithmeticError, AssertionError, AttributeError, ImportError, IndexError, KeyError, RuntimeError,
                TypeError, ValueError)
RUN_FOLDER = re.compile(r'\d{8}_\d{6}')  # the log folder mmengine's Runner makes in work_dir: its timestamp


def _first_line(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else err
    lines = str(text).strip().splitlines()
    return f'{type(err).__name__}: {lines[0] if lines else ""}'.rstrip(': ')


def read_config(path: str, needed: Sequence[str]) -> Config:
    """``Config.fromfile(path)``; a file that is missing, unreadable or lacks ``needed`` keys is an InputError.

    A config is Python that mmengine runs: whatever it raises (a syntax error, a missing
    ``_base_``, a bad import) is the config's mistake, reported with its first line.
    """
    if os.path.isdir(path):
        raise InputError(f'{path}: is a folder; give a config file ({", ".join(CONFIG_SUFFIXES)})')
    if not os.path.isfile(path):
        raise InputError(f'{path}: config not found (no such file); give an MMPretrain config such as '
                         'configs/demo/se-resnet18_1xb32_digits.py')
    if not path.endswith(CONFIG_SUFFIXES):
        raise InputError(f'{path}: not a config file; mmengine reads {", ".join(CONFIG_SUFFIXES)}')
    try:
        with warnings.catch_warnings():
            # mmengine resolves ``mmpretrain::`` bases through pkg_resources, whose deprecation is not for our user.
            warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
            cfg = Config.fromfile(path)
    except (Exception, SystemExit) as err:  # a config may even call sys.exit
        raise InputError(f'{path}: cannot be read: {_first_line(err)}; fix the config') from err
    missing = [key for key in needed if cfg.get(key) is None]
    if missing:
        raise InputError(f'{path}: defines no {", ".join(missing)}; this tool needs {", ".join(needed)} '
                         "(a config usually gets them from its _base_ list)")
    return cfg


class CfgOptions(DictAction):
    """mmengine's ``DictAction`` (``KEY=VALUE ...``), whose malformed items are usage errors."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        bad = [item for item in values if '=' not in item or not item.partition('=')[0]]
        if bad:
            raise argparse.ArgumentError(self, f'expected KEY=VALUE items; got {bad}')
        try:
            super().__call__(parser, namespace, values, option_string)
        except (AssertionError, ValueError) as err:  # DictAction's own checks, e.g. imbalanced brackets
            raise argparse.ArgumentError(self, f'{values}: {err}') from err


def check_load_from(cfg: Config, flag: str) -> Optional[Mapping[str, torch.Tensor]]:
    """Read the checkpoint the run starts from (``load_from``, resumed where ``resume``) before the Runner.

    mmengine reads it after building the model and the data; a bad file fails here in a second.

    Returns:
        Its weights, for :func:`check_load_from_fits` once the model is built; None without a local file.

    Raises:
        InputError: (or ``OSError``) The file is missing or unreadable, holds no weights, or (to
            resume) is no training checkpoint; the message starts with ``flag``.
    """
    path = cfg.get('load_from')
    if not path or '://' in str(path):
        return None
    with about(flag):
        saved = read_checkpoint(path)
        if cfg.get('resume'):
            check_resumable(saved, path)
        return state_dict_of(saved, path)


def check_resumable(checkpoint: Any, path: str) -> None:
    """Raise InputError unless ``checkpoint`` is one mmengine's Runner can resume (weights, meta, optimizer)."""
    missing = [key for key in ('state_dict', 'meta', 'optimizer')
               if not isinstance(checkpoint, Mapping) or key not in checkpoint]
    if missing:
        raise InputError(f'{path}: not a training checkpoint of tools/train.py (no {", ".join(missing)}); '
                         'resume from an epoch_N.pth of a work dir, or start from weights with '
                         f'--cfg-options load_from={path}')


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` without a value resumes: mmengine's latest in ``work_dir`` (None if none)."""
    from mmengine.runner import find_latest_checkpoint
    return find_latest_checkpoint(work_dir) if os.path.isdir(work_dir) else None


def check_load_from_fits(model: torch.nn.Module, weights: Optional[Mapping[str, torch.Tensor]], cfg: Config,
                         flag: str) -> None:
    """Raise InputError unless ``weights`` (of :func:`check_load_from`), which the run starts from, fit ``model``.

    mmengine loads ``load_from`` leniently and only logs what does not fit, so a checkpoint of another
    width trains from scratch, and a resumed one fails at its first step. Resuming needs every key and shape
    (:func:`check_checkpoint_fits`); starting from weights may leave keys out (a plain ResNet into an SE
    model, a backbone without its head) and may change the head (fine-tuning to other classes), but any other
    shape that differs, or a checkpoint none of whose keys is the model's, is refused.
    """
    if weights is None:
        return
    path = cfg.get('load_from')
    with about(flag):
        if cfg.get('resume'):
            check_checkpoint_fits(model, weights, path)
            return
        model = model.module if is_model_wrapper(model) else model
        ours = model.state_dict()
        shared = [key for key in weights if key in ours]
        shapes = [f'{key} checkpoint {tuple(weights[key].shape)} vs model {tuple(ours[key].shape)}'
                  for key in shared if weights[key].shape != ours[key].shape and not key.startswith('head.')]
        if not shared:
            raise CheckpointError(f'{path}: none of its {len(weights)} keys is a key of the model (e.g. '
                                  f'{next(iter(weights))} vs {next(iter(ours))}); convert it first '
                                  '(tools/convert_checkpoint.py --to mmpretrain)')
        if shapes:
            raise CheckpointError(f'{path}: {len(shapes)} weight(s) outside the head have other shapes than the '
                                  f'model\'s (e.g. {shapes[0]}); another depth or width? Use a checkpoint of '
                                  'this architecture\n  ' + '\n  '.join(shapes))


def check_checkpoint_fits(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], flag: str) -> None:
    """Raise InputError unless ``state_dict`` has ``model``'s keys and shapes (mmengine would only warn)."""
    model = model.module if is_model_wrapper(model) else model
    with about(flag):
        fit_to_model(state_dict, model.state_dict(), strict=True)


FIX = 'fix the config or --cfg-options'


def build_error(config: str, err: BaseException, fix: str = FIX, what: str = 'cannot be built') -> InputError:
    """The InputError for ``err``, raised by mmengine while it built (or first ran) what ``config`` describes.

    ``fix`` says what the user can change (a tool without ``--cfg-options`` names its own flags).
    """
    return InputError(f'{config}: {what}: {_first_line(err)}; {fix} (--debug shows where)')


@contextmanager
def building(config: str, fix: str = FIX) -> Iterator[None]:
    """An error of :data:`BUILD_ERRORS` in the block (an mmengine builder's) is an InputError naming ``config``."""
    try:
        yield
    except BUILD_ERRORS as err:
        if isinstance(err, InputError):
            raise
        raise build_error(config, err, fix) from err


class Preflight(Undo):
    """From building the Runner to its first iteration: a builder's error names the config, and no file stays.

    A context manager over ``work_dir`` (see :class:`~se_plugins.io.Undo`). While armed, an error
    of :data:`BUILD_ERRORS` becomes an InputError naming ``config`` (as in :func:`building`); on
    any bad input, what the run wrote into ``work_dir`` (its log folder, the dumped config) is
    removed. :class:`DatasetCheckHook` disarms it (:meth:`keep`) once its checks pass, just
    before the first iteration.
    """

    def __init__(self, config: str, work_dir: str) -> None:
        dump = os.path.basename(config)  # the Runner's dump of the merged config
        super().__init__(work_dir, ours=lambda name: name == dump or RUN_FOLDER.fullmatch(name) is not None)
        self.config = config
        self.what = 'cannot be built'

    def started(self) -> None:
        """The Runner is built and runs its first step: an error now is the config's too, until :meth:`keep`."""
        self.what = 'fails in its first step'

    def __exit__(self, kind: Optional[type], err: Optional[BaseException], tb: Any) -> None:
        if self.kept or not isinstance(err, (*BUILD_ERRORS, OSError)) or isinstance(err, InputError):
            super().__exit__(kind, err, tb)
            return
        mapped = build_error(self.config, err, what=self.what)
        super().__exit__(InputError, mapped, tb)
        raise mapped from err


def check_cfg_options(cfg: Config, options: Mapping[str, Any]) -> None:
    """Reject ``--cfg-options`` whose top-level key neither the config nor the Runner knows.

    Deeper keys need no check: they become constructor arguments, and mmengine's builders
    raise ``TypeError`` for unknown ones before training starts.

    Raises:
        InputError: Naming the unknown key and the keys that exist.
    """
    known = set(cfg.keys()) | set(inspect.signature(Runner.__init__).parameters) | set(
        RUNNER_CFG_KEYS)
    known -= {'self', 'cfg'}
    for option in options:
        top = option.split('.', 1)[0]
        if top == 'custom_imports':
            raise InputError(f'--cfg-options {option}: mmengine imports custom_imports when it reads the config '
                             'file, so here it would do nothing; set it in the config')
        if top not in known:
            close = difflib.get_close_matches(top, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            raise InputError(f'--cfg-options {option}: unknown top-level config key {top!r}{hint}; '
                             f'the config and the Runner know: {", ".join(sorted(known))}')


def merge_cfg_options(cfg: Config, options: Mapping[str, Any]) -> None:
    """``cfg.merge_from_dict(options)`` after :func:`check_cfg_options`; what mmengine cannot merge is named.

    Raises:
        InputError: An unknown top-level key, or an option mmengine cannot merge (a key below a value
            that is no dict, a list index out of range).
    """
    check_cfg_options(cfg, options)
    for option, value in options.items():
        try:
            cfg.merge_from_dict({option: value})
        except BUILD_ERRORS as err:
            raise InputError(f'--cfg-options {option}={value!r}: cannot be merged into the config '
                             f'({_first_line(err)}); check the key path against the config') from err


# Launchers of mmengine's init_dist and the environment each reads (set by torchrun, srun or mpirun).
LAUNCHER_ENV = {'pytorch': ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
                'mpi': ('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE')}
LAUNCHED_BY = {'pytorch': 'torchrun (tools/dist_train.sh, tools/dist_test.sh)', 'slurm': 'srun',
               'mpi': 'mpirun'}


def check_launcher(launcher: str) -> None:
    """Raise InputError if ``--launcher`` names a launcher whose environment this process lacks."""
    missing = [name for name in LAUNCHER_ENV.get(launcher, ()) if name not in os.environ]
    if missing:
        raise InputError(f'--launcher {launcher}: {", ".join(missing)} not set, so this process was not started '
                         f'by {LAUNCHED_BY[launcher]}; start it that way or use --launcher none')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_config_values(cfg: Config, loaders: Sequence[str]) -> None:
    """Raise InputError naming the field where a value the tools read has the wrong type or range.

    mmengine reads these without checking (``work_dir`` and ``load_from`` as paths, dataloaders and
    ``randomness`` as dicts, ``num_workers`` as a count, ``max_epochs``/``max_iters`` as a count) and
    fails on them with an unrelated error, or mid-way.
    """
    for key in ('work_dir', 'load_from'):
        value = cfg.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f'{key}={value!r}: not a path; give a string (a folder for work_dir, a checkpoint '
                             'file for load_from)')
    for key in ('randomness', 'train_cfg', *loaders):
        value = cfg.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise InputError(f'{key}={value!r}: not a dict; give dict(...) of its settings, as the base configs do')
    for key in loaders:
        workers = (cfg.get(key) or {}).get('num_workers', 0)
        if not _is_int(workers) or workers < 0:
            raise InputError(f'{key}.num_workers={workers!r}: not a number of processes; give an integer >= 0')
    for key, what in (('train_cfg.max_epochs', 'epochs'), ('train_cfg.max_iters', 'iterations'),
                      ('train_cfg.val_interval', 'epochs (or iterations) between validations'),
                      ('auto_scale_lr.base_batch_size', 'images per step')):
        section, name = key.split('.')
        value = (cfg.get(section) or {}).get(name) if isinstance(cfg.get(section), Mapping) else None
        if value is not None and (not _is_int(value) or value < 1):
            raise InputError(f'{key}={value!r}: not a number of {what}; give an integer >= 1')
    check_optimizer_type(cfg)


def check_optimizer_type(cfg: Config) -> None:
    """Raise InputError if ``optim_wrapper.optimizer.type`` names no optimizer of MMPretrain's registry.

    mmengine reports it as ``TypeError: None is not a callable object``, which names nothing.
    """
    wrapper = cfg.get('optim_wrapper')
    optimizer = wrapper.get('optimizer') if isinstance(wrapper, Mapping) else None
    name = optimizer.get('type') if isinstance(optimizer, Mapping) else None
    if not isinstance(name, str):
        return
    try:
        from mmpretrain.registry import OPTIMIZERS
    except ImportError:
        return
    if OPTIMIZERS.get(name) is None:
        known = sorted(OPTIMIZERS.module_dict) + sorted(OPTIMIZERS.parent.module_dict if OPTIMIZERS.parent else ())
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        raise InputError(f'optim_wrapper.optimizer.type={name!r}: no such optimizer{hint}; give one of '
                         f'{", ".join(sorted(set(known))[:20])} ...')


def check_work_dir(cfg: Config, config: str, flag: str) -> None:
    """Raise InputError if the Runner's dump of the merged config into ``work_dir`` would overwrite ``config``."""
    dump = os.path.join(cfg.work_dir, os.path.basename(config))
    if os.path.exists(dump) and os.path.samefile(dump, config):
        raise InputError(f'{flag} {cfg.work_dir!r}: holds {config} itself, which the Runner would overwrite with '
                         'its dump of the merged config; choose another folder')


def check_amp_device() -> None:
    """Raise ``InputError`` when ``--amp`` is asked for without a device mmengine's AMP supports."""
    if not (torch.cuda.is_available() or is_npu_available() or is_mlu_available()):
        raise InputError('--amp needs a CUDA, NPU or MLU device (mmengine AmpOptimWrapper); '
                         'none is available on this machine: drop --amp')


def check_data_roots(cfg: Config, fields: Sequence[str]) -> None:
    """Raise ``FileNotFoundError`` naming the field if a dataset's local ``data_root`` is missing.

    Runs before anything is built, so a wrong path fails in seconds instead of after the
    model. A string ``data_prefix`` (or its ``img_path``) must be a folder in ``data_root`` too.
    Wrapped datasets (``dataset=``/``datasets=``, e.g. RepeatDataset) are checked too.

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
        prefix = dataset.get('data_prefix')
        prefix = prefix.get('img_path') if isinstance(prefix, Mapping) else prefix
        folder = os.path.join(root or '', prefix) if isinstance(prefix, str) and prefix else None
        if folder and '://' not in folder and not os.path.isdir(folder):
            raise FileNotFoundError(
                f'{where}.data_prefix={prefix!r}: no folder {folder!r} in data_root; expected '
                f'DATA_ROOT/{prefix}/<class>/<image>, or point --cfg-options {where}.data_prefix=... at it')
        ann = dataset.get('ann_file')
        ann_path = os.path.join(root or '', ann) if isinstance(ann, str) and ann else None
        if ann_path and '://' not in ann_path and not os.path.isfile(ann_path):
            raise FileNotFoundError(
                f'{where}.ann_file={ann!r}: no file {ann_path!r}; give the annotation list, or ann_file=\'\' '
                'to read the class folders')
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
    """Raise ``InputError`` if the model's head has fewer outputs than ``dataset`` has classes.

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
        raise InputError(f'{message}; set model.head.num_classes={len(classes)} (and '
                         f'data_preprocessor.num_classes if the config sets it)')
    if num_classes > len(classes):
        print_log(message, logger='current', level=logging.WARNING)


def check_first_image(dataset: Any, field: str) -> None:
    """Raise InputError if ``dataset``'s first image file does not decode (a folder of non-images).

    Reads the file as MMPretrain's ``LoadImageFromFile`` does, outside the pipeline (which would
    draw random numbers); datasets of arrays (CIFAR-10) and remote files pass.
    """
    if not hasattr(dataset, 'get_data_info') or len(dataset) == 0:
        return
    path = dataset.get_data_info(0).get('img_path')
    if not isinstance(path, str) or '://' in path:
        return
    import mmcv
    from mmengine.fileio import get

    try:
        image = mmcv.imfrombytes(get(path))
    except Exception:  # cv2 or PIL on bytes that are no image
        image = None
    if image is None:
        raise InputError(f'{field}.dataset: {path}: not an image that can be decoded; the dataset '
                         'folder should hold only images (JPEG, PNG, ...)')


def check_topk(evaluator: Any, dataset: Any, field: str) -> None:
    """Raise InputError if an accuracy metric of ``evaluator`` asks for more top-k than ``dataset`` has classes.

    mmpretrain's Accuracy fails on it after the whole epoch or test set has run.
    """
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    for metric in getattr(evaluator, 'metrics', None) or ():
        topk = getattr(metric, 'topk', None)
        if classes is not None and topk and max(topk) > len(classes):
            evaluator_field = field.replace('dataloader', 'evaluator')
            raise InputError(f'{evaluator_field}: topk={tuple(topk)} but {field}.dataset has {len(classes)} classes; '
                             f'give top-k values of at most {len(classes)}, e.g. topk=(1, )')


def check_same_classes(classes: Optional[Sequence[str]], dataset: Any, field: str, source: str) -> None:
    """Raise InputError if ``dataset`` has other classes than ``classes`` (those of ``source``).

    A label is a class's place in the list: a class folder missing from one split shifts the labels of
    the others, and the accuracy is computed against the wrong ones.
    """
    theirs = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if classes is None or theirs is None or list(classes) == list(theirs):
        return
    odd = sorted(set(classes) ^ set(theirs), key=str)
    raise InputError(f'{field}.dataset: classes {list(theirs)[:12]} differ from those of {source} '
                     f'({len(classes)}; differing: {odd[:12]}); labels are places in the class list, so give '
                     'both the same class folders')


class DatasetCheckHook(Hook):
    """Check the data against the model, before the first step; disarm the pre-flight after it.

    Args:
        checked: Called once the first iteration has run (e.g. :meth:`Preflight.keep`).
        started: Called when the checks have passed, before the first iteration (:meth:`Preflight.started`).
        classes: The classes the model was trained on (a test checkpoint's ``dataset_meta``), if known.
    """

    def __init__(self, checked: Callable[[], None] = lambda: None, started: Callable[[], None] = lambda: None,
                 classes: Optional[Sequence[str]] = None) -> None:
        self.checked = checked
        self.started = started
        self.classes = classes

    def _check(self, runner: Runner, field: str, dataset: Any, evaluator: Any = None) -> None:
        check_num_classes(runner.model, dataset, field)
        check_first_image(dataset, field)
        check_topk(evaluator, dataset, field)

    def before_train(self, runner: Runner) -> None:
        """Check the training and validation sets."""
        train = runner.train_dataloader.dataset
        self._check(runner, 'train_dataloader', train)
        if runner.val_loop is not None:
            val = runner.val_loop.dataloader.dataset
            self._check(runner, 'val_dataloader', val, runner.val_loop.evaluator)
            check_same_classes((train.metainfo or {}).get('classes'), val, 'val_dataloader',
                               'train_dataloader.dataset')
        self.started()

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        """The first step has run: from now on, errors are mmengine's."""
        self.checked()

    def before_test(self, runner: Runner) -> None:
        """Check the test set (against the checkpoint's classes where it names them)."""
        test = runner.test_loop.dataloader.dataset
        self._check(runner, 'test_dataloader', test, runner.test_loop.evaluator)
        check_same_classes(self.classes, test, 'test_dataloader', 'the checkpoint (its dataset_meta)')
        self.started()

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        """The first batch has run."""
        self.checked()
